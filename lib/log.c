#include "log.h"

#include "alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

static struct {
    enum log_dest dest;
    int level;
    int facility;
    int fd;               /* stderr or the log file */
    char *path;           /* for LOG_DEST_FILE */
    int access_fd;        /* -1: off or to main log */
    bool access_to_main;
    char *access_path;
    bool created, access_created;   /* this process made the file at the last (re)open */
    char ident[32];
    char role[32];
} L = { LOG_DEST_STDERR, LOG_LVL_INFO, LOG_DAEMON, 2, NULL, -1, true, NULL, false, false,
        "tlsoffd", "" };

static const char *const level_names[] = { "error", "warning", "notice", "info", "debug" };
static const int level_prio[] = { LOG_ERR, LOG_WARNING, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

int log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_LVL_DEBUG; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

const char *log_level_name(int level)
{
    return level >= 0 && level <= LOG_LVL_DEBUG ? level_names[level] : "?";
}

int log_facility_parse(const char *name)
{
    static const struct { const char *n; int f; } fac[] = {
        { "daemon", LOG_DAEMON }, { "user", LOG_USER }, { "auth", LOG_AUTH },
        { "authpriv", LOG_AUTHPRIV }, { "local0", LOG_LOCAL0 }, { "local1", LOG_LOCAL1 },
        { "local2", LOG_LOCAL2 }, { "local3", LOG_LOCAL3 }, { "local4", LOG_LOCAL4 },
        { "local5", LOG_LOCAL5 }, { "local6", LOG_LOCAL6 }, { "local7", LOG_LOCAL7 },
    };
    for (size_t i = 0; i < sizeof fac / sizeof fac[0]; i++)
        if (strcmp(name, fac[i].n) == 0)
            return fac[i].f;
    return -1;
}

void log_init_stderr(const char *ident)
{
    snprintf(L.ident, sizeof L.ident, "%s", ident);
    L.dest = LOG_DEST_STDERR;
    L.fd = 2;
}

void log_set_role(const char *role)
{
    snprintf(L.role, sizeof L.role, "%s", role);
}

#define LOG_OPEN_FLAGS (O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

/* Opens base in the directory dfd: a new file if there is none (*created),
 * else the one there, never through a symbolic link. O_NONBLOCK: a FIFO
 * without a reader fails instead of blocking. */
static int open_in_dir(int dfd, const char *base, bool *created)
{
    for (int tries = 0; tries < 3; tries++) {
        int fd = openat(dfd, base, LOG_OPEN_FLAGS | O_CREAT | O_EXCL, 0640);
        *created = fd >= 0;
        if (fd < 0 && errno == EEXIST)
            fd = openat(dfd, base, LOG_OPEN_FLAGS);
        if (fd >= 0 || errno != ENOENT)
            return fd;
        /* removed between the two opens: try again */
    }
    return -1;
}

/* Only a regular file with no other name is a log file: another name could
 * be any file of the system, linked there by whoever may write the
 * directory. Clears O_NONBLOCK. 0, or -1 with the reason in err. */
static int check_log_file(int fd, const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "log file '%s': %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "log file '%s' is not a regular file: refusing it", path);
        return -1;
    }
    if (st.st_nlink != 1) {
        snprintf(err, errlen, "log file '%s' has %ju hard links: refusing it (another name of "
                 "it could be any file)", path, (uintmax_t)st.st_nlink);
        return -1;
    }
    return fcntl(fd, F_SETFL, O_APPEND);
}

/*
 * A log file, opened as safely as root can in a directory that others may
 * write to: relative to the directory's fd, never following a symbolic
 * link, only a regular file; *created says whether this open made it
 * (only such a file may be given to another user).
 */
static int open_append(const char *path, bool *created, char *err, size_t errlen)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : NULL;
    int dfd = open(dir ? dir : ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    int fd = dfd >= 0 && *base ? open_in_dir(dfd, base, created) : -1;
    if (fd < 0 && dfd >= 0 && !*base)
        errno = EISDIR;
    if (fd < 0 && errno == ELOOP)
        snprintf(err, errlen, "log file '%s' is a symbolic link: refusing to follow it", path);
    else if (fd < 0 && errno == ENXIO)
        snprintf(err, errlen, "log file '%s' is not a regular file: refusing it", path);
    else if (fd < 0)
        snprintf(err, errlen, "cannot open log file '%s': %s", path, strerror(errno));
    else if (check_log_file(fd, path, err, errlen) < 0) {
        close(fd);
        fd = -1;
    }
    if (dfd >= 0)
        close(dfd);
    free(dir);
    return fd;
}

static void replace_str(char **dst, const char *src)
{
    free(*dst);
    *dst = src ? xstrdup(src) : NULL;
}

int log_open(const char *dest, int facility, int level, const char *access,
             char *err, size_t errlen)
{
    int fd = 2, afd = -1;
    bool created = false, access_created = false;
    enum log_dest d;

    if (strcmp(dest, "stderr") == 0)
        d = LOG_DEST_STDERR;
    else if (strcmp(dest, "syslog") == 0)
        d = LOG_DEST_SYSLOG;
    else {
        d = LOG_DEST_FILE;
        if ((fd = open_append(dest, &created, err, errlen)) < 0)
            return -1;
    }
    if (access && *access && (afd = open_append(access, &access_created, err, errlen)) < 0) {
        if (d == LOG_DEST_FILE)
            close(fd);
        return -1;
    }
    log_close();
    L.dest = d;
    L.fd = fd;
    L.level = level;
    L.facility = facility;
    replace_str(&L.path, d == LOG_DEST_FILE ? dest : NULL);
    L.access_fd = afd;
    L.created = created;
    L.access_created = access_created;
    L.access_to_main = access == NULL;
    replace_str(&L.access_path, afd >= 0 ? access : NULL);
    if (d == LOG_DEST_SYSLOG)
        openlog(L.ident, LOG_PID | LOG_NDELAY, facility);
    return 0;
}

static int reopen_one(int *fd, bool *created, const char *path, char *err, size_t errlen)
{
    int nfd = open_append(path, created, err, errlen);
    if (nfd < 0)
        return -1;
    /* dup2 keeps the fd number, so every process sharing it is not affected
     * in the middle of a write. */
    dup2(nfd, *fd);
    close(nfd);
    return 0;
}

int log_reopen(char *err, size_t errlen)
{
    int rc = 0;
    if (L.dest == LOG_DEST_FILE && reopen_one(&L.fd, &L.created, L.path, err, errlen) < 0)
        rc = -1;
    if (L.access_fd >= 0 &&
        reopen_one(&L.access_fd, &L.access_created, L.access_path, err, errlen) < 0)
        rc = -1;
    return rc;
}

void log_close(void)
{
    if (L.dest == LOG_DEST_FILE && L.fd > 2)
        close(L.fd);
    if (L.dest == LOG_DEST_SYSLOG)
        closelog();
    if (L.access_fd >= 0)
        close(L.access_fd);
    L.dest = LOG_DEST_STDERR;
    L.fd = 2;
    L.access_fd = -1;
}

/* Gives fd (path) to uid if this process just made it; else says when the
 * file is not uid's, since a worker running as uid cannot reopen it. */
static void give_file(int fd, bool *created, const char *what, const char *path, uid_t uid,
                      gid_t gid)
{
    struct stat st;
    if (*created && fchown(fd, uid, gid) < 0)
        log_warning("cannot give the %s %s to uid %d: %s", what, path, (int)uid,
                    strerror(errno));
    else if (!*created && fstat(fd, &st) == 0 && st.st_uid != uid)
        log_warning("the %s %s already existed and belongs to uid %d, not %d: left as it is; "
                    "workers may not be able to reopen it", what, path, (int)st.st_uid,
                    (int)uid);
    *created = false;
}

void log_chown(uid_t uid, gid_t gid)
{
    if (L.dest == LOG_DEST_FILE)
        give_file(L.fd, &L.created, "log file", L.path, uid, gid);
    if (L.access_fd >= 0)
        give_file(L.access_fd, &L.access_created, "access log", L.access_path, uid, gid);
}

bool log_to_stderr(void)
{
    return L.dest == LOG_DEST_STDERR;
}

bool log_enabled(int level)
{
    return level <= L.level;
}

static size_t stamp(char *buf, size_t len)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
    return n;
}

static void write_line(int fd, char *buf, size_t n, size_t cap)
{
    if (n >= cap - 1)
        n = cap - 2;
    buf[n++] = '\n';
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        break;      /* a log line is never worth blocking or retrying for */
    }
}

void log_vmsg(int level, const char *fmt, va_list ap)
{
    char buf[2048];
    size_t n = 0;
    int saved = errno;

    if (!log_enabled(level))
        return;
    if (L.dest == LOG_DEST_SYSLOG) {
        if (L.role[0])
            n = (size_t)snprintf(buf, sizeof buf, "%s: ", L.role);
        vsnprintf(buf + n, sizeof buf - n, fmt, ap);
        syslog(level_prio[level], "%s", buf);
        errno = saved;
        return;
    }
    n = stamp(buf, sizeof buf);
    n += (size_t)snprintf(buf + n, sizeof buf - n, " %s[%d]%s%s %s: ", L.ident,
                          (int)getpid(), L.role[0] ? " " : "", L.role, level_names[level]);
    int m = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
    if (m > 0)
        n += (size_t)m;
    write_line(L.fd, buf, n, sizeof buf);
    errno = saved;
}

void log_msg(int level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
    va_end(ap);
}

void log_access(bool failed, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (L.access_fd >= 0) {
        char buf[2048];
        size_t n = stamp(buf, sizeof buf);
        buf[n++] = ' ';
        int m = vsnprintf(buf + n, sizeof buf - n, fmt, ap);
        if (m > 0)
            n += (size_t)m;
        write_line(L.access_fd, buf, n, sizeof buf);
    } else if (L.access_to_main || failed) {
        log_vmsg(failed ? LOG_LVL_NOTICE : LOG_LVL_INFO, fmt, ap);
    }
    va_end(ap);
}
