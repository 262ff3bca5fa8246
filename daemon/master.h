/*
 * master — forks the workers and the prober and keeps them alive; answers
 * signals (HUP reload, USR2 upgrade, QUIT graceful, TERM/INT fast, USR1
 * reopen); rotates ticket keys. It never touches client traffic.
 */
#ifndef TLSOFFD_MASTER_H
#define TLSOFFD_MASTER_H

#include "runtime.h"

/* Runs until stopped; returns the exit status. ready_fd, if >= 0, is
 * written to and closed once the workers run. *pidfile is the pidfile's
 * path (a USR2 upgrade renames it to PATH.oldbin, and sets it). */
int master_run(struct runtime *rt, int ready_fd, char **pidfile);

#endif
