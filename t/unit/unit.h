/* Shared helpers for the Check unit tests: one suite per lib/ module. */
#ifndef TLSOFFD_UNIT_H
#define TLSOFFD_UNIT_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/socket.h>
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

/* A peer's address, IPv4 or IPv6, port 0. */
static inline struct sockaddr_storage unit_peer(const char *ip)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    memset(&ss, 0, sizeof ss);
    if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1)
        s4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, ip, &s6->sin6_addr) == 1)
        s6->sin6_family = AF_INET6;
    else
        ck_abort_msg("bad test address %s", ip);
    return ss;
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
