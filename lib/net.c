#include "net.h"
#include "clock.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int net_poll_timeout(int64_t deadline)
{
    int64_t left = deadline - clock_now_ms();
    if (left <= 0)
        return 0;
    return left > NET_POLL_MAX_MS ? NET_POLL_MAX_MS : (int)left;
}

int net_poll(struct pollfd *fds, nfds_t n, int64_t deadline)
{
    return net_poll_until(fds, n, deadline, NULL);
}

int net_poll_until(struct pollfd *fds, nfds_t n, int64_t deadline, const struct net_stop *stop)
{
    for (;;) {
        if (stop && *stop->flag)
            return EINTR;
        int ms = net_poll_timeout(deadline);
        if (ms == 0)
            return ETIMEDOUT;
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };
        int rc = stop ? ppoll(fds, n, &ts, stop->mask) : poll(fds, n, ms);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return errno;
    }
}

int net_wait(int fd, short events, int64_t deadline)
{
    struct pollfd p = { .fd = fd, .events = events };
    return net_poll(&p, 1, deadline);
}

static enum net_err classify(int err)
{
    switch (err) {
    case 0: return NET_OK;
    case ECONNREFUSED: case ECONNRESET: return NET_REFUSED;
    case ETIMEDOUT: return NET_TIMEOUT;
    case ENETUNREACH: case EHOSTUNREACH: case ENETDOWN: case EHOSTDOWN:
        return NET_UNREACHABLE;
    default: return NET_ERROR;
    }
}

/* Connects fd to a by deadline: 0 or an errno value (ETIMEDOUT). */
static int connect_by(int fd, const struct addr *a, int64_t deadline)
{
    if (connect(fd, (const struct sockaddr *)&a->sa, a->len) == 0)
        return 0;
    if (errno != EINPROGRESS)
        return errno;
    int err = net_wait(fd, POLLOUT, deadline);
    if (err)
        return err;
    socklen_t sl = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
        err = errno;
    return err;
}

int net_connect(const struct addr *a, int64_t deadline, enum net_err *why, char *reason,
                size_t reasonlen)
{
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = fd < 0 ? errno : 0;
    if (fd >= 0) {
        net_tune(fd);
        err = connect_by(fd, a, deadline);
    }
    *why = classify(err);
    if (err == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    snprintf(reason, reasonlen, "%s", err == ETIMEDOUT ? "connect timed out" : strerror(err));
    return -1;
}

const char *net_err_outcome(enum net_err e)
{
    switch (e) {
    case NET_OK: return "ok";
    case NET_REFUSED: return "backend-refused";
    case NET_TIMEOUT: return "backend-timeout";
    case NET_UNREACHABLE: return "backend-unreachable";
    default: return "backend-error";
    }
}

int net_send_all(int fd, const void *buf, size_t len, int64_t deadline, char *reason,
                 size_t reasonlen)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            int err = errno;
            snprintf(reason, reasonlen, "send: %s", strerror(err));
            return err;
        }
        int err = net_wait(fd, POLLOUT, deadline);
        if (err == ETIMEDOUT)
            snprintf(reason, reasonlen, "send timed out");
        else if (err)
            snprintf(reason, reasonlen, "poll: %s", strerror(err));
        if (err)
            return err;
    }
    return 0;
}

void net_tune(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
}
