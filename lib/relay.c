#include "relay.h"
#include "clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "net.h"

struct dir {
    /* Down: one recv() fills it. Up: one record (RELAY_BUF) a read, and the
     * records already here join it, so that one send() takes several. */
    unsigned char buf[RELAY_BUF_SIZE];
    size_t len, off;        /* bytes buffered; bytes of them already sent */
    bool eof;               /* the source is done */
    bool shut;              /* the destination was told (SHUT_WR / close_notify) */
};

struct state {
    struct tls_conn *c;
    int b;
    struct tls_conn *bt;    /* TLS to the backend, or NULL */
    struct dir up, down;    /* up: client -> backend; down: backend -> client */
    short cev, bev;         /* poll events wanted on the client / backend */
    bool cin, bin;          /* the client / backend may have bytes to read: a read is
                             * tried only then (after poll() said so, or while a read
                             * did not drain the socket), not on every turn */
    int64_t delivered_at;   /* when a byte last reached the other side (ms): the idle
                             * timeout counts from here, not from the last wake-up */
    bool quiet_armed;       /* o->quiet_ms applies: a delivery since the last try */
    const struct relay_opts *o;
    struct relay_result *res;
};

__attribute__((format(printf, 3, 4)))
static int fail(struct state *s, enum relay_end end, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s->res->end = end;
    vsnprintf(s->res->reason, sizeof s->res->reason, fmt, ap);
    va_end(ap);
    return -1;
}

static int tls_fail(struct state *s, struct tls_conn *c, enum tls_io r, const char *op)
{
    char why[128];
    bool client = c == s->c;
    if (r == TLS_IO_TIMEOUT)
        return fail(s, RELAY_IDLE_TIMEOUT, "%s write timed out", client ? "client" : "backend");
    tls_conn_error(c, -1, why, sizeof why);
    s->res->end = client ? RELAY_CLIENT_ERROR : RELAY_BACKEND_ERROR;
    snprintf(s->res->reason, sizeof s->res->reason, "%s %s: %s", client ? "client" : "backend",
             op, why);
    return -1;
}

static void delivered(struct state *s)
{
    s->delivered_at = s->res->delivered_at = clock_now_ms();
    s->quiet_armed = s->o->quiet_ms > 0;
    if (s->o->delivered_at)
        __atomic_store_n(s->o->delivered_at, s->delivered_at, __ATOMIC_RELAXED);
}

/* Poll events a TLS call asked for. */
static short want(enum tls_io r)
{
    return r == TLS_IO_WANT_READ ? POLLIN : r == TLS_IO_WANT_WRITE ? POLLOUT : 0;
}

/* Sends to the backend; returns bytes taken (0: blocked), -1 on error. */
static ssize_t backend_send(struct state *s, const unsigned char *p, size_t n)
{
    if (s->bt) {
        enum tls_io r = tls_conn_write(s->bt, p, n);
        if (r == TLS_IO_OK)
            return (ssize_t)n;
        if (r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE) {
            s->bev |= want(r);
            return 0;
        }
        return tls_fail(s, s->bt, r, "write");
    }
    ssize_t w = send(s->b, p, n, MSG_NOSIGNAL);
    if (w >= 0)
        return w;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        s->bev |= POLLOUT;
        return 0;
    }
    return fail(s, RELAY_BACKEND_ERROR, "backend write: %s", strerror(errno));
}

/* Reads from the backend; returns bytes (0: EOF), -2 when blocked, -1 on error. */
static ssize_t backend_recv(struct state *s, unsigned char *p, size_t n)
{
    if (s->bt) {
        size_t got = 0;
        enum tls_io r = tls_conn_read(s->bt, p, n, &got);
        if (r == TLS_IO_OK) {
            if (tls_conn_drained(s->bt) && !tls_conn_pending(s->bt))
                s->bin = false;
            return (ssize_t)got;
        }
        if (r == TLS_IO_CLOSED)
            return 0;
        if (r == TLS_IO_WANT_READ || r == TLS_IO_WANT_WRITE) {
            s->bin = false;
            s->bev |= want(r);
            return -2;
        }
        return tls_fail(s, s->bt, r, "read");
    }
    ssize_t got = recv(s->b, p, n, 0);
    if (got >= 0) {
        if ((size_t)got < n)
            s->bin = false;             /* drained */
        return got;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        s->bin = false;
        s->bev |= POLLIN;
        return -2;
    }
    return fail(s, RELAY_BACKEND_ERROR, "backend read: %s", strerror(errno));
}

/* Records already received join the first one: one send() for several;
 * a close_notify among them ends the input, as it does for the first. */
static void join_records(struct state *s, struct dir *d)
{
    size_t n = 0;
    while (s->cin && d->len + RELAY_BUF <= sizeof d->buf) {
        enum tls_io r = tls_conn_read(s->c, d->buf + d->len, RELAY_BUF, &n);
        if (r == TLS_IO_CLOSED)
            d->eof = true;          /* sent after the bytes before it */
        if (r == TLS_IO_WANT_READ || r == TLS_IO_CLOSED)
            s->cin = false;         /* the next turn polls, or shuts down */
        if (r != TLS_IO_OK)
            return;                 /* an error: the next turn's read reports it */
        d->len += n;
        if (tls_conn_drained(s->c) && !tls_conn_pending(s->c))
            s->cin = false;
    }
}

/* Client -> backend. Returns 1 if bytes moved, 0 if blocked, -1 on error. */
static int pump_up(struct state *s)
{
    struct dir *d = &s->up;
    int moved = 0;
    if (!d->eof && d->len == 0 && !s->cin && !tls_conn_pending(s->c)) {
        s->cev |= POLLIN;
    } else if (!d->eof && d->len == 0) {
        size_t n = 0;
        enum tls_io r = tls_conn_read(s->c, d->buf, RELAY_BUF, &n);
        if (r == TLS_IO_OK) {
            d->len = n;
            d->off = 0;
            moved = 1;
            if (tls_conn_drained(s->c) && !tls_conn_pending(s->c))
                s->cin = false;
            join_records(s, d);
        } else if (r == TLS_IO_WANT_READ) {
            s->cin = false;
            s->cev |= POLLIN;
        } else if (r == TLS_IO_WANT_WRITE) {
            s->cev |= POLLOUT;
        } else if (r == TLS_IO_CLOSED) {
            d->eof = true;
        } else {
            return tls_fail(s, s->c, r, "read");
        }
    }
    if (d->off < d->len) {
        ssize_t n = backend_send(s, d->buf + d->off, d->len - d->off);
        if (n < 0)
            return -1;
        if (n > 0) {
            d->off += (size_t)n;
            s->res->to_backend += (uint64_t)n;
            delivered(s);
            moved = 1;
            if (d->off == d->len)
                d->len = d->off = 0;
        }
    }
    if (d->eof && d->len == 0 && !d->shut) {
        if (s->bt)
            tls_conn_close_notify(s->bt);
        shutdown(s->b, SHUT_WR);
        d->shut = true;
    }
    return moved;
}

/* Backend -> client. */
static int pump_down(struct state *s)
{
    struct dir *d = &s->down;
    int moved = 0;
    if (!d->eof && d->len == 0 && !s->bin && !(s->bt && tls_conn_pending(s->bt))) {
        s->bev |= POLLIN;
    } else if (!d->eof && d->len == 0) {
        ssize_t n = backend_recv(s, d->buf, sizeof d->buf);
        if (n > 0) {
            d->len = (size_t)n;
            moved = 1;
        } else if (n == 0) {
            d->eof = true;
        } else if (n == -1) {
            return -1;
        }
    }
    if (d->len > 0) {
        /* wolfSSL keeps a partly sent record itself; on WANT_WRITE the same
         * buffer is offered again. */
        enum tls_io r = tls_conn_write(s->c, d->buf, d->len);
        if (r == TLS_IO_OK) {
            s->res->to_client += d->len;
            delivered(s);
            d->len = 0;
            moved = 1;
        } else if (r == TLS_IO_WANT_WRITE) {
            s->cev |= POLLOUT;
        } else if (r == TLS_IO_WANT_READ) {
            s->cev |= POLLIN;
        } else {
            return tls_fail(s, s->c, r, "write");
        }
    }
    if (d->eof && d->len == 0 && !d->shut) {
        tls_conn_close_notify(s->c);
        shutdown(tls_conn_fd(s->c), SHUT_WR);
        d->shut = true;
    }
    return moved;
}

static void (*idle_hook)(void);
static int idle_hook_ms;

#define PAGE_BYTES 4096

/* Gives the whole pages inside [p, p+n) back to the kernel (they read as
 * zeros when touched again). */
static void release(void *p, size_t n)
{
    uintptr_t mask = PAGE_BYTES - 1;
    uintptr_t a = ((uintptr_t)p + mask) & ~mask;
    uintptr_t b = ((uintptr_t)p + n) & ~mask;
    if (b > a)
        madvise((void *)a, b - a, MADV_DONTNEED);
}

/* A quiet connection: the buffers that hold nothing go back. */
static void release_empty_buffers(struct state *s)
{
    if (s->up.len == 0)
        release(s->up.buf, sizeof s->up.buf);
    if (s->down.len == 0)
        release(s->down.buf, sizeof s->down.buf);
    struct tls_conn *t[2] = { s->c, s->bt };
    for (int i = 0; i < 2; i++) {
        size_t cap;
        uint8_t *rbuf = t[i] ? tls_conn_idle_readahead(t[i], &cap) : NULL;
        if (rbuf)
            release(rbuf, cap);
    }
}

/*
 * Asked to shed: a connection quiet for shed_idle_ms ends with a
 * close_notify to the client (-1); a busier one goes on (0: the request
 * came late, the connection woke up meanwhile).
 */
static int shed_requested(struct state *s)
{
    int64_t quiet = clock_now_ms() - s->delivered_at;
    *s->o->shed->flag = 0;
    if (quiet < s->o->shed_idle_ms)
        return 0;
    tls_conn_close_notify(s->c);
    return fail(s, RELAY_SHED, "shed after %.1fs idle: every worker was busy",
                (double)quiet / 1000.0);
}

void relay_set_idle_hook(void (*fn)(void), int after_ms)
{
    idle_hook = fn;
    idle_hook_ms = after_ms;
}

/*
 * Waits until a side may move bytes again: 0, or -1 with the end in s->res
 * when no byte was delivered for idle seconds, whatever woke the worker
 * meanwhile (a record that arrives a byte at a time is not progress). A
 * connection quiet for the idle hook's time first gives back its empty
 * buffers (once per relay_run).
 */
/* Nothing buffered either way, in the relay or in TLS, and no side closed. */
static bool relay_empty(const struct state *s)
{
    return s->up.len == 0 && s->down.len == 0 && !s->up.eof && !s->down.eof &&
           !tls_conn_pending(s->c);
}

/* The next deadline of a wait: the idle timeout, the idle hook, going quiet. */
static int64_t next_deadline(const struct state *s, bool hooked, int64_t idle_at)
{
    int64_t at = idle_at;
    if (!hooked && s->delivered_at + idle_hook_ms < at)
        at = s->delivered_at + idle_hook_ms;
    if (s->quiet_armed && s->delivered_at + s->o->quiet_ms < at)
        at = s->delivered_at + s->o->quiet_ms;
    return at;
}

static int wait_turn(struct state *s, bool *hooked)
{
    struct pollfd p[2] = { { .fd = tls_conn_fd(s->c), .events = s->cev },
                           { .fd = s->b, .events = s->bev } };
    int64_t idle_at = s->delivered_at + (int64_t)(s->o->idle * 1000.0);
    /* While the client is sending, keep the deadline for TLS writes
     * (close_notify, blocked records) one idle period ahead. */
    tls_conn_set_deadline(s->c, idle_at);
    if (s->bt)
        tls_conn_set_deadline(s->bt, idle_at);
    int err;
    for (;;) {
        int64_t at = next_deadline(s, *hooked, idle_at);
        err = net_poll_until(p, 2, at, s->o->shed);
        if (err != ETIMEDOUT || at == idle_at)
            break;
        if (s->quiet_armed && clock_now_ms() - s->delivered_at >= s->o->quiet_ms) {
            if (relay_empty(s)) {
                s->res->end = RELAY_QUIET;
                return -1;
            }
            s->quiet_armed = false;     /* not empty: again after the next delivery */
        }
        if (!*hooked && clock_now_ms() - s->delivered_at >= idle_hook_ms) {
            *hooked = true;         /* quiet for a while: then the rest of idle */
            release_empty_buffers(s);
            idle_hook();
        }
    }
    if (err == EINTR)
        return shed_requested(s);
    if (err == ETIMEDOUT)
        return fail(s, RELAY_IDLE_TIMEOUT, "no data delivered either way for %gs", s->o->idle);
    if (err)
        return fail(s, RELAY_CLIENT_ERROR, "poll: %s", strerror(err));
    /* Readable, or an error or hang-up the next read or write reports. */
    if (p[0].revents & (POLLIN | POLLERR | POLLHUP))
        s->cin = true;
    if (p[1].revents & (POLLIN | POLLERR | POLLHUP))
        s->bin = true;
    return 0;
}

void relay_run(struct tls_conn *client, int backend, struct tls_conn *backend_tls,
               const struct relay_opts *o, struct relay_result *res)
{
    bool hooked = idle_hook == NULL;
    /* 2 x RELAY_BUF_SIZE (128 KiB) of buffers: not on the stack. */
    static __thread struct state s;

    memset(res, 0, sizeof *res);
    s.c = client;
    s.b = backend;
    s.bt = backend_tls;
    s.res = res;
    s.o = o;
    s.up.len = s.up.off = s.down.len = s.down.off = 0;
    s.up.eof = s.up.shut = s.down.eof = s.down.shut = false;
    s.cin = s.bin = true;
    delivered(&s);          /* the handshake's last byte, or o->since */
    if (o->since > 0)
        s.delivered_at = res->delivered_at = o->since;
    tls_conn_set_nonblock(client, true);
    if (backend_tls)
        tls_conn_set_nonblock(backend_tls, true);

    for (;;) {
        s.cev = s.bev = 0;
        int a = pump_up(&s);
        if (a < 0)
            return;
        int b = pump_down(&s);
        if (b < 0)
            return;
        if (s.up.shut && s.down.shut) {
            res->end = RELAY_DONE;
            return;
        }
        if (a == 0 && b == 0 && wait_turn(&s, &hooked) < 0)
            return;         /* nothing moved, and nothing will */
    }
}

const char *relay_end_outcome(enum relay_end e)
{
    switch (e) {
    case RELAY_DONE: return "ok";
    case RELAY_IDLE_TIMEOUT: return "idle-timeout";
    case RELAY_CLIENT_ERROR: return "client-error";
    case RELAY_BACKEND_ERROR: return "backend-error";
    case RELAY_SHED: return "shed";
    case RELAY_QUIET: return "ok";         /* still open: parked, or relayed again */
    }
    return "?";
}
