/*
 * threadstack — the stack size to ask for a thread that needs `want` bytes
 * of stack of its own.
 *
 * glibc carves the static TLS of every loaded object (__thread variables,
 * and an optimised wolfSSL has 1.4 MB of them) out of each new thread's
 * stack, so a stack size set with pthread_attr_setstacksize must include it.
 */
#ifndef TLSOFFD_THREADSTACK_H
#define TLSOFFD_THREADSTACK_H

#include <stddef.h>

/* want bytes plus the static TLS of the objects loaded now. */
size_t threadstack_size(size_t want);

#endif
