/*
 * upgrade — the USR2 hand-over and the pidfile; see upgrade.h.
 */
#include "upgrade.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

#define UPGRADE_ENV     "TLSOFFD_UPGRADE"
#define UPGRADE_MAX_FDS 256         /* listeners handed over */
#define UPGRADE_ENV_MAX 4096

static struct {
    int ready, segment;
    int listen[UPGRADE_MAX_FDS];
    size_t nlisten;
} inherit = { .ready = -1, .segment = -1 };

static char self_path[PATH_MAX];
static char **self_argv;

void upgrade_remember_self(char **argv)
{
    self_argv = argv;
    if (!realpath(argv[0], self_path)) {
        ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
        self_path[n > 0 ? n : 0] = '\0';
    }
}

static void parse_listeners(char *list)
{
    char *save = NULL;
    for (char *f = strtok_r(list, ",", &save); f && inherit.nlisten < UPGRADE_MAX_FDS;
         f = strtok_r(NULL, ",", &save))
        inherit.listen[inherit.nlisten++] = atoi(f);
}

bool upgrade_inherit(void)
{
    const char *env = getenv(UPGRADE_ENV);
    if (!env)
        return false;
    char *copy = xstrdup(env), *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (strncmp(t, "ready=", 6) == 0)
            inherit.ready = atoi(t + 6);
        else if (strncmp(t, "shm=", 4) == 0)
            inherit.segment = atoi(t + 4);
        else if (strncmp(t, "listen=", 7) == 0)
            parse_listeners(t + 7);
    }
    free(copy);
    unsetenv(UPGRADE_ENV);
    return true;
}

int upgrade_take_listener(const struct addr *a)
{
    for (size_t i = 0; i < inherit.nlisten; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = inherit.listen[i];
        if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
            continue;
        if (len == a->len && memcmp(&ss, &a->sa, len) == 0) {
            inherit.listen[i] = -1;
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            return fd;
        }
    }
    return -1;
}

int upgrade_take_segment(void)
{
    int fd = inherit.segment;
    inherit.segment = -1;
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

int upgrade_finish_inherit(void)
{
    for (size_t i = 0; i < inherit.nlisten; i++)
        if (inherit.listen[i] >= 0)
            close(inherit.listen[i]);
    inherit.nlisten = 0;
    return inherit.ready;
}

int upgrade_exec(int segment_fd, const int *listen_fds, size_t nlisten, int ready_fd)
{
    static char env[UPGRADE_ENV_MAX];       /* putenv keeps the pointer */
    size_t off = (size_t)snprintf(env, sizeof env, "%s=ready=%d shm=%d listen=", UPGRADE_ENV,
                                  ready_fd, segment_fd);
    fcntl(ready_fd, F_SETFD, 0);
    fcntl(segment_fd, F_SETFD, 0);
    for (size_t i = 0; i < nlisten && off < sizeof env - 16; i++) {
        fcntl(listen_fds[i], F_SETFD, 0);
        off += (size_t)snprintf(env + off, sizeof env - off, "%s%d", i ? "," : "",
                                listen_fds[i]);
    }
    putenv(env);
    execv(self_path, self_argv);
    fprintf(stderr, "tlsoffd: cannot run %s: %s\n", self_path, strerror(errno));
    return -1;
}

/* The locked pidfile: the master's alone, closed in every child. */
static int pidfile_fd = -1;

void pidfile_close_in_child(void)
{
    if (pidfile_fd >= 0)
        close(pidfile_fd);
    pidfile_fd = -1;
}

/*
 * The pidfile is locked for the master's whole life, so a second instance
 * can tell a live one (lock held) from a stale file (lock free). Never
 * through a symbolic link: root writes there.
 */
/* Opens (or creates) the pidfile; a missing directory just above it, as
 * /run/tlsoffd after a boot without systemd's RuntimeDirectory, is made. */
static int open_pidfile(const char *path)
{
    const int flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
    int fd = open(path, flags, 0644);
    if (fd < 0 && errno == ENOENT) {
        char *dir = xstrdup(path), *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            if (mkdir(dir, 0755) == 0 || errno == EEXIST)
                fd = open(path, flags, 0644);
        }
        int e = errno;
        free(dir);
        errno = e;
    }
    return fd;
}

int pidfile_open(const char *path, char *err, size_t errlen)
{
    struct stat st;
    int fd = open_pidfile(path);
    if (fd < 0) {
        snprintf(err, errlen, "pidfile '%s': %s", path,
                 errno == ELOOP ? "a symbolic link: refusing to follow it" : strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "pidfile '%s': not a regular file", path);
        close(fd);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(err, errlen, "pidfile '%s' is locked: tlsoffd is already running as pid %s",
                 path, buf[0] ? buf : "?");
        close(fd);
        return -1;
    }
    return pidfile_fd = fd;
}

/* The new pidfile beside the old: made by this call (a file or link left
 * there is removed first, never written through), mode 0644 whatever the
 * umask, locked. */
static int create_new(const char *tmp)
{
    const int flags = O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    int fd = open(tmp, flags, 0644);
    if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)   /* left by a master that died */
        fd = open(tmp, flags, 0644);
    if (fd < 0)
        return -1;
    if (fchmod(fd, 0644) < 0 || flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        unlink(tmp);
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/*
 * No reader ever sees an empty or partial file: a new file next to it,
 * locked, then renamed over it. The lock on the old file is held until
 * the new one is in place, so a second instance never finds the path
 * unlocked.
 */
int pidfile_write(int fd, const char *path)
{
    char buf[32], tmp[PATH_MAX + 32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    int nfd = create_new(tmp);
    if (nfd < 0 || write(nfd, buf, (size_t)n) != n || rename(tmp, path) < 0) {
        log_warning("cannot write the pidfile %s: %s; writing it in place", path,
                    strerror(errno));
        if (nfd >= 0) {
            unlink(tmp);
            close(nfd);
        }
        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
            log_warning("cannot write the pidfile: %s", strerror(errno));
        return pidfile_fd = fd;
    }
    close(fd);
    return pidfile_fd = nfd;
}

void pidfile_rename(char **path, bool to_oldbin)
{
    static const char suffix[] = ".oldbin";
    if (!*path || !**path)
        return;
    size_t n = strlen(*path);
    char *to;
    if (to_oldbin) {
        to = xmalloc(n + sizeof suffix);
        memcpy(to, *path, n);
        memcpy(to + n, suffix, sizeof suffix);
    } else {
        size_t base = n - (sizeof suffix - 1);
        if (n < sizeof suffix - 1 || strcmp(*path + base, suffix) != 0)
            return;
        to = xstrndup(*path, base);
    }
    if (rename(*path, to) < 0) {
        log_error("cannot rename the pidfile %s to %s: %s", *path, to, strerror(errno));
        free(to);
        return;
    }
    free(*path);
    *path = to;
}
