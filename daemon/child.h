/*
 * child — what every process the master forks does before its own work:
 * its name in the log, its signals, a fresh random generator, and its
 * confinement (chroot, group, user) with the parent-death signal armed
 * after it, since a credential change clears that signal.
 *
 * Used by the worker and the prober; the master only uses
 * child_check_identity() at start-up.
 */
#ifndef TLSOFFD_CHILD_H
#define TLSOFFD_CHILD_H

#include <stddef.h>
#include <sys/types.h>

#include "config.h"

/* A child's signal handlers; NULL: SIGTERM/SIGINT kill, the others are ignored. */
struct child_signals {
    void (*quit)(int);      /* SIGQUIT: graceful stop (no SA_RESTART: wakes a blocked call) */
    void (*usr1)(int);      /* SIGUSR1: reopen the logs */
    void (*term)(int);      /* SIGTERM and SIGINT */
    void (*shed)(int);      /* SIGUSR2: shed the connection; blocked, except in the
                             * waits that take it (net_poll_until) */
};

/*
 * Right after fork: the master's pidfile fd closed, the log role, the
 * process name (if name), the signals, an unblocked mask, the RNG reseeded, and the parent-death
 * signal. Exits quietly if master (the pid that forked us) is already
 * gone.
 */
void child_begin(pid_t master, const char *role, const char *name,
                 const struct child_signals *sigs);

/* Chroot, group, user, then the parent-death signal again; exits with
 * status 1 after a log line if any of it fails. */
void child_confine(const struct config *cfg);

/* The out-of-memory handler of a child: it logs the failure and exits
 * with EXIT_OOM (the master replaces the process). */
void child_out_of_memory(size_t size, const char *file, int line);

/* Checks, before anything starts, what child_confine() will need: 0, or
 * -1 with the reason in err. Logs a warning if the children would run as
 * root (no user, and we are root). */
int child_check_identity(const struct config *cfg, char *err, size_t errlen);

#endif
