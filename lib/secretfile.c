#include "secretfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int secretfile_check(int fd, const char *path, char *err, size_t errlen)
{
    struct stat st;
    uid_t me = geteuid();
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "'%s': %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "'%s' is not a regular file", path);
        return -1;
    }
    if (st.st_uid != 0 && st.st_uid != me) {
        if (me == 0)
            snprintf(err, errlen, "'%s' belongs to user ID %d, not to root: chown root it",
                     path, (int)st.st_uid);
        else
            snprintf(err, errlen, "'%s' belongs to user ID %d, not to root or to user ID %d "
                     "(tlsoffd's): chown it", path, (int)st.st_uid, (int)me);
        return -1;
    }
    if (st.st_mode & (S_IRGRP | S_IWGRP | S_IROTH | S_IWOTH)) {
        snprintf(err, errlen, "'%s' may be read or written by %s (mode %04o): chmod go-rw it",
                 path, st.st_mode & (S_IROTH | S_IWOTH) ? "anyone" : "its group",
                 (unsigned)(st.st_mode & 07777));
        return -1;
    }
    return 0;
}

int secretfile_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "'%s': %s", path, strerror(errno));
        return -1;
    }
    if (secretfile_check(fd, path, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}
