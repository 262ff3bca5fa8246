/*
 * upgrade — the USR2 hand-over between an old and a new master, and the
 * pidfile that names the master.
 *
 * The old master runs the binary again with TLSOFFD_UPGRADE in its
 * environment ("ready=FD shm=FD listen=FD,FD,..."): the new master takes
 * the listening sockets and the shared segment from there, and reports on
 * the ready pipe once its workers run. The pidfile moves to PATH.oldbin
 * while both run.
 */
#ifndef TLSOFFD_UPGRADE_H
#define TLSOFFD_UPGRADE_H

#include <stdbool.h>
#include <stddef.h>

#include "addr.h"

/* Remembers how this program was started (for the exec of an upgrade). */
void upgrade_remember_self(char **argv);

/* Reads what an old master handed over, if we are the new master of a
 * USR2 (and clears it from the environment). Returns whether we are. */
bool upgrade_inherit(void);
/* The inherited listening socket bound to a, taken (-1 if none). */
int upgrade_take_listener(const struct addr *a);
/* The inherited shared segment's fd, taken (-1 if none). */
int upgrade_take_segment(void);
/* The pipe to report readiness on (-1 if none); closes the inherited
 * listeners nobody took (no longer configured). */
int upgrade_finish_inherit(void);

/* In a child of the master: runs the binary again as the new master,
 * handing over segment_fd and the listeners; it reports on ready_fd.
 * Returns only on failure. */
int upgrade_exec(int segment_fd, const int *listen_fds, size_t nlisten, int ready_fd);

/* Opens and locks the pidfile (held for the master's life): the fd, or
 * -1 with the reason in err (a live instance holds the lock). */
int pidfile_open(const char *path, char *err, size_t errlen);
/* Writes our pid atomically (a new file of mode 0644, renamed over the
 * old); returns the fd that now holds the lock. */
int pidfile_write(int fd, const char *path);
/* In a child of the master, right after fork: closes its copy of the
 * pidfile's fd (the master keeps the lock), so that no worker can write
 * a pid there for root to signal. */
void pidfile_close_in_child(void);
/* Renames *path to PATH.oldbin (to_oldbin) or back, and updates *path. */
void pidfile_rename(char **path, bool to_oldbin);

#endif
