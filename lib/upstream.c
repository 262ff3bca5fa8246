#include "upstream.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "listen.h"

const struct server_conf *upstream_pick(const struct upstream_conf *up)
{
    return &up->servers[0];
}

static enum upstream_err classify(int err)
{
    switch (err) {
    case ECONNREFUSED: case ECONNRESET: return UPSTREAM_REFUSED;
    case ETIMEDOUT: return UPSTREAM_TIMEOUT;
    case ENETUNREACH: case EHOSTUNREACH: case ENETDOWN: case EHOSTDOWN:
        return UPSTREAM_UNREACHABLE;
    default: return UPSTREAM_ERROR;
    }
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int upstream_connect(const struct addr *a, double timeout, enum upstream_err *why,
                     char *reason, size_t len)
{
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    if (fd < 0) {
        err = errno;
        goto fail;
    }
    listen_tune_conn(fd);
    if (connect(fd, (const struct sockaddr *)&a->sa, a->len) == 0)
        goto ok;
    if (errno != EINPROGRESS) {
        err = errno;
        goto fail;
    }
    int64_t deadline = now_ms() + (int64_t)(timeout * 1000);
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            err = ETIMEDOUT;
            goto fail;
        }
        struct pollfd p = { .fd = fd, .events = POLLOUT };
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            err = errno;
            goto fail;
        }
        if (rc > 0)
            break;
    }
    socklen_t sl = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) < 0)
        err = errno;
    if (err)
        goto fail;
ok:
    *why = UPSTREAM_OK;
    return fd;
fail:
    if (fd >= 0)
        close(fd);
    *why = classify(err);
    snprintf(reason, len, "%s", err == ETIMEDOUT ? "connect timed out" : strerror(err));
    return -1;
}

const char *upstream_err_outcome(enum upstream_err e)
{
    switch (e) {
    case UPSTREAM_OK: return "ok";
    case UPSTREAM_REFUSED: return "backend-refused";
    case UPSTREAM_TIMEOUT: return "backend-timeout";
    case UPSTREAM_UNREACHABLE: return "backend-unreachable";
    default: return "backend-error";
    }
}
