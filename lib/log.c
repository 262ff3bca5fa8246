#include "log.h"

#include "alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    char ident[32];
    char role[32];
} L = { LOG_DEST_STDERR, LOG_LVL_INFO, LOG_DAEMON, 2, NULL, -1, true, NULL,
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

static int open_append(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "cannot open log file '%s': %s", path, strerror(errno));
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
    enum log_dest d;

    if (strcmp(dest, "stderr") == 0)
        d = LOG_DEST_STDERR;
    else if (strcmp(dest, "syslog") == 0)
        d = LOG_DEST_SYSLOG;
    else {
        d = LOG_DEST_FILE;
        if ((fd = open_append(dest, err, errlen)) < 0)
            return -1;
    }
    if (access && *access && (afd = open_append(access, err, errlen)) < 0) {
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
    L.access_to_main = access == NULL;
    replace_str(&L.access_path, afd >= 0 ? access : NULL);
    if (d == LOG_DEST_SYSLOG)
        openlog(L.ident, LOG_PID | LOG_NDELAY, facility);
    return 0;
}

static int reopen_one(int *fd, const char *path, char *err, size_t errlen)
{
    int nfd = open_append(path, err, errlen);
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
    if (L.dest == LOG_DEST_FILE && reopen_one(&L.fd, L.path, err, errlen) < 0)
        rc = -1;
    if (L.access_fd >= 0 && reopen_one(&L.access_fd, L.access_path, err, errlen) < 0)
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

void log_chown(uid_t uid, gid_t gid)
{
    if (L.dest == LOG_DEST_FILE && fchown(L.fd, uid, gid) < 0)
        log_warning("cannot give the log file to uid %d: %s", (int)uid, strerror(errno));
    if (L.access_fd >= 0 && fchown(L.access_fd, uid, gid) < 0)
        log_warning("cannot give the access log to uid %d: %s", (int)uid, strerror(errno));
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
