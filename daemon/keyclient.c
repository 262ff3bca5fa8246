/*
 * keyclient — the signer of the processes without keys; see keyclient.h.
 */
#include "keyclient.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "keyproto.h"
#include "passfd.h"

enum { SENT_OK = 0, BROKEN = -1, GAVE_UP = -2 };

struct keyclient {
    pthread_mutex_t lock;   /* the prober's checks run in threads: one request at a time */
    int rendezvous;         /* the configuration's: channels go to the key processes here */
    int chan;               /* ours; -1: none yet */
    int timeout_ms;
};

static struct keyclient client = { PTHREAD_MUTEX_INITIALIZER, -1, -1, 0 };

/* Waits for events on fd until deadline: 0, or -1 (the time is up). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - clock_now_ms();
        struct pollfd p = { .fd = fd, .events = events };
        if (left <= 0)
            return -1;
        int r = poll(&p, 1, (int)left);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

/* A new channel, handed to whichever key process reads the rendezvous. */
static int open_channel(struct keyclient *c, int64_t deadline, char *why, size_t n)
{
    int sv[2];
    struct keyproto_hello hello = { KEYPROTO_MAGIC };
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
        snprintf(why, n, "socketpair: %s", strerror(errno));
        return -1;
    }
    int rc;
    while ((rc = passfd_send(c->rendezvous, &hello, sizeof hello, &sv[1], 1)) < 0 &&
           (errno == EAGAIN || errno == EINTR) && wait_fd(c->rendezvous, POLLOUT, deadline) == 0)
        ;
    int e = errno;
    close(sv[1]);
    if (rc < 0) {
        close(sv[0]);
        snprintf(why, n, "no key process answers (%s)",
                 e == EAGAIN ? "timed out" : strerror(e));
        return -1;
    }
    c->chan = sv[0];
    return 0;
}

/* One request and its reply on the channel. */
static int exchange(struct keyclient *c, const struct keyproto_req *rq,
                    struct keyproto_rep *rep, int64_t deadline, char *why, size_t n)
{
    const char *bad;
    ssize_t r;
    while ((r = send(c->chan, rq, keyproto_req_size(rq), MSG_NOSIGNAL)) < 0 &&
           (errno == EAGAIN || errno == EINTR) && wait_fd(c->chan, POLLOUT, deadline) == 0)
        ;
    if (r < 0)
        return errno == EAGAIN ? GAVE_UP : BROKEN;
    for (;;) {
        if (wait_fd(c->chan, POLLIN, deadline) < 0) {
            snprintf(why, n, "no signature within keys.timeout (%d ms)", c->timeout_ms);
            return GAVE_UP;
        }
        r = recv(c->chan, rep, sizeof *rep, MSG_TRUNC);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            return BROKEN;          /* that key process is gone */
        if (keyproto_parse_rep(rep, (size_t)r, rq->id, rep, &bad) < 0) {
            snprintf(why, n, "a bad reply from the key process: %s", bad);
            return GAVE_UP;
        }
        return SENT_OK;
    }
}

static int sign_locked(struct keyclient *c, const struct keyproto_req *rq,
                       struct keyproto_rep *rep, char *why, size_t n)
{
    int64_t deadline = clock_now_ms() + c->timeout_ms;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->chan < 0 && open_channel(c, deadline, why, n) < 0)
            return -1;
        int r = exchange(c, rq, rep, deadline, why, n);
        if (r == SENT_OK)
            return 0;
        close(c->chan);             /* a late reply must not answer the next request */
        c->chan = -1;
        if (r == GAVE_UP)
            return -1;
    }
    snprintf(why, n, "the key process went away twice during one signature");
    return -1;
}

static int sign(void *arg, const struct keyproto_req *rq, struct keyproto_rep *rep, char *why,
                size_t n)
{
    struct keyclient *c = arg;
    pthread_mutex_lock(&c->lock);
    int rc = sign_locked(c, rq, rep, why, n);
    pthread_mutex_unlock(&c->lock);
    return rc;
}

void keyclient_start(const struct runtime *rt)
{
    if (rt->key_fd[0] < 0)
        return;
    client.rendezvous = rt->key_fd[0];
    client.timeout_ms = (int)(rt->cfg->keys.timeout * 1000);
    tls_set_signer(sign, &client);
}
