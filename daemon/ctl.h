/*
 * ctl — tlsoffd -s: talks to the running master named by the pidfile,
 * with a signal, or reads its counters from the shared segment.
 */
#ifndef TLSOFFD_CTL_H
#define TLSOFFD_CTL_H

#include "config.h"

/* Runs the command what ("stats", "reload", "hup", ...); returns the
 * program's exit status (enum exit_status). */
int ctl_send(const struct config *cfg, const char *what);

#endif
