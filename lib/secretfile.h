/*
 * secretfile — opening a file that holds a secret (a session-ticket key,
 * a private key) the way ssh opens a private key: only if nobody but its
 * owner can read or write it, and its owner is root or this process's
 * effective user.
 */
#ifndef TLSOFFD_SECRETFILE_H
#define TLSOFFD_SECRETFILE_H

#include <stddef.h>

/*
 * Checks the open file fd, named path in messages: a regular file, owned
 * by root or by geteuid(), that group and others may neither read nor
 * write (mode & 066 == 0; execute bits do not matter). 0, or -1 with the
 * reason in err: a sentence that starts with 'path' in quotes and says
 * how to fix it, for the caller to prefix ("ticket key file %s").
 */
int secretfile_check(int fd, const char *path, char *err, size_t errlen);

/* Opens path read-only (close-on-exec; a FIFO fails at once instead of
 * blocking) and checks it as above: the fd, or -1 with the reason in err
 * ("'path': No such file or directory" and the like). */
int secretfile_open(const char *path, char *err, size_t errlen);

#endif
