/*
 * alloc — allocation that never returns NULL; see alloc.h for the policy.
 */
#include "alloc.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#else
#include <malloc.h>
#endif


static void oom_exit(size_t size, const char *file, int line)
{
    fprintf(stderr, "out of memory: %zu bytes at %s:%d; exiting\n", size, file, line);
    exit(EXIT_FAILURE);
}

static alloc_oom_fn oom_handler = oom_exit;
static int fail_next;

void alloc_trim(void)
{
#ifdef HAVE_JEMALLOC
    char purge[32];
    snprintf(purge, sizeof purge, "arena.%d.purge", MALLCTL_ARENAS_ALL);
    mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    mallctl(purge, NULL, NULL, NULL, 0);
#else
    malloc_trim(0);
#endif
}

alloc_oom_fn alloc_set_oom_handler(alloc_oom_fn fn)
{
    alloc_oom_fn before = oom_handler;
    oom_handler = fn ? fn : oom_exit;
    return before;
}

void alloc_fail_next(void)
{
    fail_next = 1;
}

bool alloc_fail_next_if(const char *trigger)
{
    if (!trigger || !*trigger || unlink(trigger) < 0)
        return false;
    fail_next = 1;
    return true;
}

/* Whether this call is the one alloc_fail_next() asked to fail. */
static int injected(void)
{
    int yes = fail_next;
    fail_next = 0;
    return yes;
}

/* p, or (when it is NULL) the handler's verdict. */
static void *checked(void *p, size_t size, const char *file, int line)
{
    if (!p) {
        oom_handler(size, file, line);
        abort();                /* a handler that returns breaks the contract */
    }
    return p;
}

void *alloc_malloc(size_t size, const char *file, int line)
{
    return checked(injected() ? NULL : malloc(size ? size : 1), size, file, line);
}

void *alloc_calloc(size_t n, size_t size, const char *file, int line)
{
    void *p = injected() ? NULL : calloc(n ? n : 1, size ? size : 1);
    return checked(p, n * size, file, line);
}

/* On failure p stays the caller's (and is leaked if the handler exits). */
void *alloc_realloc(void *p, size_t size, const char *file, int line)
{
    return checked(injected() ? NULL : realloc(p, size ? size : 1), size, file, line);
}

void *alloc_reallocarray(void *p, size_t n, size_t size, const char *file, int line)
{
    if (size && n > SIZE_MAX / size)
        return checked(NULL, SIZE_MAX, file, line);
    return alloc_realloc(p, n * size, file, line);
}

char *alloc_strdup(const char *s, const char *file, int line)
{
    return checked(injected() ? NULL : strdup(s), strlen(s) + 1, file, line);
}

char *alloc_strndup(const char *s, size_t n, const char *file, int line)
{
    return checked(injected() ? NULL : strndup(s, n), n + 1, file, line);
}
