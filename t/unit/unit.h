/* Shared helpers for the Check unit tests: one suite per lib/ module. */
#ifndef TLSOFFD_UNIT_H
#define TLSOFFD_UNIT_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes text to a fresh temporary file; returns its path (static buffer per call site
 * is not needed: the caller frees). */
static inline char *unit_tempfile(const char *text)
{
    char *path = strdup("/tmp/tlsoffd-unit-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t len = strlen(text);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* A file in the test certificate directory (made by t/mkcerts). */
static inline const char *unit_cert(const char *name)
{
    static char buf[8][512];
    static int i;
    const char *dir = getenv("TLSOFFD_CERTS");
    i = (i + 1) % 8;
    snprintf(buf[i], sizeof buf[i], "%s/%s", dir ? dir : "build/t/certs", name);
    return buf[i];
}

#define UNIT_MAIN(suite_fn)                                        \
    int main(void)                                                 \
    {                                                              \
        SRunner *sr = srunner_create(suite_fn());                  \
        srunner_run_all(sr, CK_NORMAL);                            \
        int failed = srunner_ntests_failed(sr);                    \
        srunner_free(sr);                                          \
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;               \
    }

#endif
