#include "probe.h"
#include "clock.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/error-ssl.h>

#include "alloc.h"
#include "net.h"
#include "probe_http.h"
#include "tls_policy.h"

__attribute__((format(printf, 3, 4)))
static void say(char *buf, size_t len, const char *fmt, ...);

static void say(char *buf, size_t len, const char *fmt, ...)
{
    if (!buf || len == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

/* ---- I/O under one deadline ---- */

struct io {
    int fd;
    WOLFSSL *ssl;               /* NULL: plain */
    int64_t deadline;           /* ms, CLOCK_MONOTONIC */
    double timeout;             /* for the reason */
    char *reason;
    size_t rlen;
};

enum io_rc { IO_OK = 0, IO_EOF = 1, IO_ERR = -1 };

/* The probe's words for a timeout, which net says as ETIMEDOUT. */
static void say_timed_out(struct io *c)
{
    say(c->reason, c->rlen, "timed out after %gs", c->timeout);
}

/* Waits for events on the fd until the deadline. */
static enum io_rc wait_fd(struct io *c, short events)
{
    int err = net_wait(c->fd, events, c->deadline);
    if (err == 0)
        return IO_OK;
    if (err == ETIMEDOUT)
        say_timed_out(c);
    else
        say(c->reason, c->rlen, "poll: %s", strerror(err));
    return IO_ERR;
}

/* wolfSSL's reason for ret from a call on c->ssl. */
static void tls_reason(struct io *c, int ret, int sys)
{
    int e = wolfSSL_get_error(c->ssl, ret);
    char w[WOLFSSL_MAX_ERROR_SZ];
    if (e == SOCKET_ERROR_E && sys != 0 && sys != EAGAIN && sys != EWOULDBLOCK)
        say(c->reason, c->rlen, "TLS: %s", strerror(sys));
    else if (e == SOCKET_PEER_CLOSED_E || e == WOLFSSL_ERROR_ZERO_RETURN)
        say(c->reason, c->rlen, "TLS: connection closed by peer");
    else
        say(c->reason, c->rlen, "TLS: %s (%d)", wolfSSL_ERR_error_string((unsigned long)e, w), e);
}

/* Waits as wolfSSL asks after ret; IO_ERR with the reason otherwise. */
static enum io_rc tls_wait(struct io *c, int ret, int sys)
{
    int e = wolfSSL_get_error(c->ssl, ret);
    if (e == WOLFSSL_ERROR_WANT_READ)
        return wait_fd(c, POLLIN);
    if (e == WOLFSSL_ERROR_WANT_WRITE)
        return wait_fd(c, POLLOUT);
    tls_reason(c, ret, sys);
    return IO_ERR;
}

static enum io_rc write_all(struct io *c, const char *buf, size_t len)
{
    if (!c->ssl) {
        int err = net_send_all(c->fd, buf, len, c->deadline, c->reason, c->rlen);
        if (err == ETIMEDOUT)
            say_timed_out(c);
        return err ? IO_ERR : IO_OK;
    }
    for (size_t off = 0; off < len;) {
        errno = 0;
        int ret = wolfSSL_write(c->ssl, buf + off, (int)(len - off));
        if (ret > 0)
            off += (size_t)ret;
        else if (tls_wait(c, ret, errno) != IO_OK)
            return IO_ERR;
    }
    return IO_OK;
}

/* Reads some bytes: IO_OK with *got > 0, IO_EOF, or IO_ERR with the reason. */
static enum io_rc read_some(struct io *c, char *buf, size_t len, size_t *got)
{
    for (;;) {
        if (c->ssl) {
            errno = 0;
            int ret = wolfSSL_read(c->ssl, buf, (int)len);
            if (ret > 0) {
                *got = (size_t)ret;
                return IO_OK;
            }
            int sys = errno, e = wolfSSL_get_error(c->ssl, ret);
            /* A close_notify, or a plain FIN (many servers send none). */
            if (e == WOLFSSL_ERROR_ZERO_RETURN || e == SOCKET_PEER_CLOSED_E)
                return IO_EOF;
            if (tls_wait(c, ret, sys) != IO_OK)
                return IO_ERR;
            continue;
        }
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n > 0) {
            *got = (size_t)n;
            return IO_OK;
        }
        if (n == 0)
            return IO_EOF;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            if (wait_fd(c, POLLIN) != IO_OK)
                return IO_ERR;
            continue;
        }
        say(c->reason, c->rlen, "read: %s", strerror(errno));
        return IO_ERR;
    }
}

/* ---- TLS ---- */

/* How long a probe waits, at most, for the server's close_notify, and how
 * much of what else is in flight it reads (and drops) on the way. */
#define CLOSE_GRACE_MS 250
#define CLOSE_SKIP_MAX 65536
#define CLOSE_READ_SIZE 4096

static enum io_rc tls_start(struct io *c, const struct probe_conf *pc)
{
    if (!(c->ssl = wolfSSL_new(pc->tls_ctx))) {
        say(c->reason, c->rlen, "TLS: out of memory");
        return IO_ERR;
    }
    /* wolfSSL's own socket I/O over the non-blocking fd: it answers "want
     * read/write" and we poll. Set explicitly, in case the context has
     * other callbacks. */
    wolfSSL_SSLSetIORecv(c->ssl, EmbedReceive);
    wolfSSL_SSLSetIOSend(c->ssl, EmbedSend);
    wolfSSL_SetIOWriteFlags(c->ssl, MSG_NOSIGNAL);
    if (wolfSSL_set_fd(c->ssl, c->fd) != WOLFSSL_SUCCESS) {
        say(c->reason, c->rlen, "TLS: cannot attach the socket");
        return IO_ERR;
    }
    if (pc->sni && *pc->sni) {
        if (wolfSSL_UseSNI(c->ssl, WOLFSSL_SNI_HOST_NAME, pc->sni,
                           (unsigned short)strlen(pc->sni)) != WOLFSSL_SUCCESS) {
            say(c->reason, c->rlen, "TLS: cannot set the server name");
            return IO_ERR;
        }
    }
    const char *name = pc->check_name && *pc->check_name ? pc->check_name : pc->sni;
    if (pc->verify_name && wolfSSL_check_domain_name(c->ssl, name) != WOLFSSL_SUCCESS) {
        say(c->reason, c->rlen, "TLS: cannot set the name to verify");
        return IO_ERR;
    }
    for (;;) {
        errno = 0;
        int ret = wolfSSL_connect(c->ssl);
        if (ret == WOLFSSL_SUCCESS)
            return IO_OK;
        if (tls_wait(c, ret, errno) != IO_OK)
            return IO_ERR;
    }
}

/*
 * Sends close_notify and gives the server a moment to answer it, so that
 * neither side resets the connection. Best effort: the verdict stands.
 * (In this build wolfSSL_shutdown returns 0 while the peer's close_notify
 * is missing, without "want read"; reading until EOF is what waits for it.)
 */
static void tls_close(struct io *c)
{
    char scratch[PROBE_REASON_MAX], buf[CLOSE_READ_SIZE];
    struct io q = *c;
    int64_t grace = clock_now_ms() + CLOSE_GRACE_MS;
    if (q.deadline > grace)
        q.deadline = grace;
    q.reason = scratch;
    q.rlen = sizeof scratch;
    for (;;) {
        int ret = wolfSSL_shutdown(q.ssl);
        if (ret == WOLFSSL_SUCCESS)
            return;             /* theirs had come already */
        if (ret == WOLFSSL_SHUTDOWN_NOT_DONE)
            break;              /* ours is sent */
        if (tls_wait(&q, ret, 0) != IO_OK)
            return;
    }
    /* Their close_notify (or EOF), skipping what else is in flight. */
    for (size_t total = 0; total < CLOSE_SKIP_MAX;) {
        size_t got = 0;
        if (read_some(&q, buf, sizeof buf, &got) != IO_OK)
            return;
        total += got;
    }
}

/* ---- the probes ---- */

static bool bad_text(const char *s)
{
    return s && strpbrk(s, "\r\n") != NULL;
}

/* Runs the HTTP exchange on an open connection. */
static bool http_exchange(struct io *c, const struct probe_conf *pc, const struct addr *a)
{
    char req[2048], host[ADDR_STRLEN];
    const char *h = pc->host && *pc->host ? pc->host
                  : pc->sni && *pc->sni ? pc->sni
                  : addr_format((const struct sockaddr *)&a->sa, host, sizeof host);
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: tlsoffd-health\r\n"
                     "Connection: close\r\n\r\n",
                     pc->path && *pc->path ? pc->path : "/", h);
    if (n < 0 || (size_t)n >= sizeof req) {
        say(c->reason, c->rlen, "bad probe: the request is longer than %zu bytes", sizeof req);
        return false;
    }
    if (write_all(c, req, (size_t)n) != IO_OK)
        return false;

    char *buf = xmalloc(PROBE_HTTP_MAX);
    size_t len = 0;
    bool ok = false;
    for (;;) {
        size_t got = 0;
        enum io_rc rc = read_some(c, buf + len, PROBE_HTTP_MAX - len, &got);
        if (rc == IO_ERR)
            break;
        len += got;
        enum probe_reply_end how = rc == IO_EOF ? PROBE_REPLY_EOF
                                 : len == PROBE_HTTP_MAX ? PROBE_REPLY_CAP : PROBE_REPLY_OPEN;
        enum probe_verdict v = probe_http_verdict(pc, buf, len, how, c->reason, c->rlen);
        if (v != PROBE_MORE) {
            ok = v == PROBE_PASS;
            break;
        }
    }
    free(buf);
    return ok;
}

/* Whether pc can be run; false with "bad probe: ..." if not. */
static bool usable(const struct probe_conf *pc, char *reason, size_t rlen)
{
    bool tls = pc->type == PROBE_TLS || (pc->type == PROBE_HTTP && pc->tls_ctx);
    if (pc->type != PROBE_TCP && pc->type != PROBE_HTTP && pc->type != PROBE_TLS)
        say(reason, rlen, "bad probe: unknown type %d", (int)pc->type);
    else if (!(pc->timeout > 0) || pc->timeout > PROBE_TIMEOUT_MAX_S)
        say(reason, rlen, "bad probe: timeout %g is not in (0, %d] s", pc->timeout,
            PROBE_TIMEOUT_MAX_S);
    else if (pc->type == PROBE_TLS && !pc->tls_ctx)
        say(reason, rlen, "bad probe: TLS probe without a TLS context");
    else if (tls && pc->verify_name && !(pc->sni && *pc->sni)
             && !(pc->check_name && *pc->check_name))
        say(reason, rlen, "bad probe: verify_name without a name (sni or check_name)");
    else if (pc->type == PROBE_HTTP && (bad_text(pc->path) || bad_text(pc->host)))
        say(reason, rlen, "bad probe: CR or LF in the path or host");
    else
        return true;
    return false;
}

void probe_run(const struct probe_conf *pc, const struct addr *a, struct probe_result *r)
{
    struct io c = { .fd = -1, .timeout = pc->timeout, .reason = r->reason,
                    .rlen = sizeof r->reason };
    enum net_err why;
    char sys[PROBE_REASON_MAX];

    r->ok = false;
    r->reason[0] = '\0';
    if (pc->type == PROBE_NONE) {
        r->ok = true;
        say(r->reason, sizeof r->reason, "no probe");
        return;
    }
    if (!usable(pc, r->reason, sizeof r->reason))
        return;
    bool tls = pc->type == PROBE_TLS || (pc->type == PROBE_HTTP && pc->tls_ctx);

    c.deadline = clock_deadline_ms(pc->timeout);
    c.fd = net_connect(a, c.deadline, &why, sys, sizeof sys);
    if (c.fd < 0) {
        if (why == NET_TIMEOUT)
            say(r->reason, sizeof r->reason, "connect: timed out after %gs", pc->timeout);
        else
            say(r->reason, sizeof r->reason, "connect: %s", sys);
        return;
    }

    switch (pc->type) {
    case PROBE_TCP:
        r->ok = true;
        say(r->reason, sizeof r->reason, "TCP connect");
        break;
    case PROBE_TLS:
        if (tls_start(&c, pc) == IO_OK) {
            r->ok = true;
            say(r->reason, sizeof r->reason, "TLS handshake (%s)", wolfSSL_get_version(c.ssl));
            tls_close(&c);
        }
        break;
    case PROBE_HTTP:
        if (tls && tls_start(&c, pc) != IO_OK)
            break;
        r->ok = http_exchange(&c, pc, a);
        if (tls)
            tls_close(&c);
        break;
    default:
        break;
    }
    if (c.ssl) {
        wolfSSL_free(c.ssl);
        /* Failures leave entries in this thread's error queue. */
        wolfSSL_ERR_clear_error();
    }
    close(c.fd);
}

/* ---- client contexts ---- */

WOLFSSL_CTX *probe_tls_ctx_new(const char *ca_file, bool verify, char *err, size_t errlen)
{
    struct tls_client_policy p = { .suites = TLS_POLICY_PROBE_SUITES, .verify = verify,
                                   .ca_file = ca_file, .ca_name = "CA file" };
    WOLFSSL_CTX *ctx = tls_policy_client_ctx(&p, err, errlen);
    if (ctx)
        wolfSSL_CTX_set_session_cache_mode(ctx, WOLFSSL_SESS_CACHE_OFF);   /* never resumes */
    return ctx;
}
