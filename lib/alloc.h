/*
 * alloc — the one allocation family of tlsoffd's own code.
 *
 * Owns: what happens when memory runs out. x*() never return NULL: on
 * failure they pass the size and the call site to the process's
 * out-of-memory handler, which does not return. The daemon sets the policy
 * per process role: the master at start-up logs and exits with status 1
 * (daemon/main.c); a reload in the master fails and the old configuration
 * stays (daemon/runtime.c); a worker ends the one connection it serves: it
 * exits and the master replaces it (daemon/worker.c). Callers therefore
 * never test for NULL.
 *
 * For tests, alloc_fail_next() makes the next x*() call fail as if memory
 * had run out, and alloc_fail_next_if() does so when a file says so.
 */
#ifndef TLSOFFD_ALLOC_H
#define TLSOFFD_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

/* Called after a failed allocation of size bytes at file:line; must not return. */
typedef void (*alloc_oom_fn)(size_t size, const char *file, int line);

/* Installs the handler (NULL: the default, which writes to standard error
 * and exits with status 1). */
/* Returns the one it replaces. */
alloc_oom_fn alloc_set_oom_handler(alloc_oom_fn fn);
/* The next allocation through this family fails (fault injection). */
void alloc_fail_next(void);
/* The same, if a file exists at trigger and this call removes it (so of
 * several processes that look, one takes it). Returns whether it did;
 * NULL or "": never. */
bool alloc_fail_next_if(const char *trigger);

/*
 * Gives the allocator's free pages back to the kernel (jemalloc: flush
 * this thread's cache, purge every arena; glibc: malloc_trim). For a
 * process that goes quiet, such as a worker holding an idle connection:
 * the pages freed since it last ran stay dirty otherwise, counted as its
 * own memory, until the allocator's decay gets to them.
 */
void alloc_trim(void);

void *alloc_malloc(size_t size, const char *file, int line);
void *alloc_calloc(size_t n, size_t size, const char *file, int line);
void *alloc_realloc(void *p, size_t size, const char *file, int line);
/* realloc of n elements of size bytes each, with the product checked. */
void *alloc_reallocarray(void *p, size_t n, size_t size, const char *file, int line);
char *alloc_strdup(const char *s, const char *file, int line);
char *alloc_strndup(const char *s, size_t n, const char *file, int line);

#define xmalloc(size)             alloc_malloc((size), __FILE__, __LINE__)
#define xcalloc(n, size)          alloc_calloc((n), (size), __FILE__, __LINE__)
#define xrealloc(p, size)         alloc_realloc((p), (size), __FILE__, __LINE__)
#define xreallocarray(p, n, size) alloc_reallocarray((p), (n), (size), __FILE__, __LINE__)
#define xstrdup(s)                alloc_strdup((s), __FILE__, __LINE__)
#define xstrndup(s, n)            alloc_strndup((s), (n), __FILE__, __LINE__)

#endif
