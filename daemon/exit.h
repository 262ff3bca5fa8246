/*
 * exit — the exit statuses of tlsoffd and of its child processes
 * (the program's are documented in tlsoffd(8), EXIT STATUS).
 */
#ifndef TLSOFFD_EXIT_H
#define TLSOFFD_EXIT_H

enum exit_status {
    EXIT_OK = 0,
    EXIT_FAIL = 1,      /* configuration, certificates, or a run-time error */
    EXIT_USAGE = 2,     /* an unknown option or an extra argument */
    EXIT_OOM = 3,       /* a child: out of memory (a worker drops its one connection) */
};

/* Tests: a path; a file there makes the next connection, or the next
 * reload, fail an allocation (tlsoffd(8), ENVIRONMENT). */
#define ALLOC_FAIL_ENV "TLSOFFD_TEST_ALLOC_FAIL"

#endif
