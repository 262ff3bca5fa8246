/*
 * keys — the key processes (OpenBSD relayd's "ca" is the model): the only
 * processes that hold private keys. The master never loads one; workers
 * and the prober have their signatures made here (keyclient.h).
 *
 * A key process loads every key of its configuration (PEM files,
 * decrypted with their key_password_file; PKCS#11 tokens, logged in with
 * theirs) and proves each matches its certificate while it is still root,
 * then makes itself undumpable (no ptrace, no core, no /proc/PID/mem for
 * the workers' user), lets go of everything else the master had (the
 * listeners, the shared segment, the rendezvous's sending end), confines
 * itself (the configured chroot, or an empty directory it removes) and
 * drops to the configured user. Then it answers only well-formed "sign
 * this with key N" requests (keyproto.h), each on the channel it came on;
 * a channel that sends anything else is closed.
 *
 * Several key processes (keys.processes) share one rendezvous: a channel
 * goes to whichever reads it first.
 */
#ifndef TLSOFFD_KEYS_H
#define TLSOFFD_KEYS_H

#include <stddef.h>
#include <sys/types.h>

#include "runtime.h"

/* How many key processes cfg runs: 0 if its keys are not isolated (or it
 * has none). */
int keys_processes(const struct config *cfg);

/*
 * Loads and proves every key of cfg in a child process that then exits,
 * so that the caller never holds one: for tlsoffd -t and the start-up,
 * whose errors go to the terminal. 0, or -1 with the first error in err.
 */
int keys_check(const struct config *cfg, char *err, size_t errlen);

/*
 * Forks a key process for rt and waits until it has loaded its keys and
 * confined itself (or failed): its pid, or -1 with the reason in err.
 * close_fd: a descriptor of the caller's the child closes (-1: none).
 */
pid_t keys_start(struct runtime *rt, pid_t master, int close_fd, char *err, size_t errlen);

#endif
