/*
 * health — the prober process: checks every server of every upstream that
 * has health checks and writes the verdicts into the upstream table.
 */
#ifndef TLSOFFD_HEALTH_H
#define TLSOFFD_HEALTH_H

#include <sys/types.h>

#include "runtime.h"

/* Forks the prober if any upstream has health checks: its pid, 0 if none
 * is needed, -1 on error. */
pid_t health_start(struct runtime *rt);

#endif
