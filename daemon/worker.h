/*
 * worker — one connection at a time: accept, TLS handshake, connect to the
 * backend, relay, log, and accept again.
 */
#ifndef TLSOFFD_WORKER_H
#define TLSOFFD_WORKER_H

#include <sys/types.h>

#include "runtime.h"

/* In a child of master: serves as worker id (its scoreboard slot) until
 * told to stop or workers.max_connections is reached. */
void worker_run(struct runtime *rt, int id, pid_t master) __attribute__((noreturn));

#endif
