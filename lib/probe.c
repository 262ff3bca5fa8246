#include "probe.h"
#include "clock.h"

#include <errno.h>
#include <link.h>
#include <limits.h>
#include <poll.h>
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

#include "tls_policy.h"
#include "upstream.h"

#define DEFAULT_EXPECT_LO 200
#define DEFAULT_EXPECT_HI 399

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

/* Up to max bytes of s as printable ASCII, for quoting a reply in a reason. */
static const char *excerpt(const char *s, size_t n, size_t max, char *out, size_t outlen)
{
    size_t k = 0;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n')
            break;
        out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[k] = '\0';
    return out;
}

/* ---- judging an HTTP reply ---- */

enum verdict { V_PASS, V_FAIL, V_MORE };

/* Why the bytes judged end where they do. */
enum reply_end {
    END_OPEN,       /* more may come: undecided is V_MORE */
    END_EOF,        /* the server closed, or probe_http_judge */
    END_CAP,        /* PROBE_HTTP_MAX bytes read */
};

/* The end of the line starting at p (the LF), or NULL if there is none. */
static const char *line_end(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* A line's content length without its CR. */
static size_t line_len(const char *p, const char *lf)
{
    size_t n = (size_t)(lf - p);
    return n > 0 && p[n - 1] == '\r' ? n - 1 : n;
}

static bool name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

struct reply {
    int status;
    const char *body;           /* the bytes after the header block */
    size_t body_len;            /* as present in the buffer */
    bool chunked;
    bool has_length;
    size_t length;              /* Content-Length */
};

/*
 * The status line at *pp. V_PASS: r->status set, *pp past it; V_FAIL:
 * reason set; V_MORE: the line is not all there yet.
 */
static enum verdict parse_status(const char **pp, const char *end, struct reply *r,
                                 char *reason, size_t rlen)
{
    static const char proto[] = "HTTP/1.";
    const char *p = *pp;
    size_t n = (size_t)(end - p), plen = sizeof proto - 1;
    char ex[48];

    if (n == 0)
        return V_MORE;
    if (memcmp(p, proto, n < plen ? n : plen) != 0) {
        say(reason, rlen, "bad HTTP reply: no status line ('%s')",
            excerpt(p, n, 32, ex, sizeof ex));
        return V_FAIL;
    }
    /* "HTTP/1.1 200" + one of SP CR LF: 13 bytes before we can decide. */
    if (n < plen + 6)
        return V_MORE;
    const char *v = p + plen, *c = v + 2;
    if (v[0] < '0' || v[0] > '9' || v[1] != ' ') {
        say(reason, rlen, "bad HTTP reply: no status line ('%s')",
            excerpt(p, n, 32, ex, sizeof ex));
        return V_FAIL;
    }
    for (int i = 0; i < 3; i++)
        if (c[i] < '0' || c[i] > '9') {
            say(reason, rlen, "bad HTTP reply: bad status code ('%s')",
                excerpt(p, n, 32, ex, sizeof ex));
            return V_FAIL;
        }
    if ((c[3] != ' ' && c[3] != '\r' && c[3] != '\n') || c[0] == '0') {
        say(reason, rlen, "bad HTTP reply: bad status code ('%s')",
            excerpt(p, n, 32, ex, sizeof ex));
        return V_FAIL;
    }
    r->status = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
    const char *lf = line_end(c + 3, end);
    if (!lf) {
        *pp = NULL;             /* status known, line not complete */
        return V_PASS;
    }
    *pp = lf + 1;
    return V_PASS;
}

static bool parse_length(const char *v, size_t n, size_t *out)
{
    size_t x = 0;
    if (n == 0 || n > 15)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

/*
 * The header lines from *pp to the empty line. V_PASS: *pp past the empty
 * line; V_MORE: no empty line yet.
 */
static enum verdict parse_headers(const char **pp, const char *end, struct reply *r,
                                  char *reason, size_t rlen)
{
    const char *p = *pp;
    char ex[48];
    for (;;) {
        const char *lf = line_end(p, end);
        if (!lf)
            return V_MORE;
        size_t n = line_len(p, lf);
        if (n == 0) {
            *pp = lf + 1;
            return V_PASS;
        }
        if (p[0] == ' ' || p[0] == '\t') {     /* obsolete folding: part of the last value */
            p = lf + 1;
            continue;
        }
        const char *colon = memchr(p, ':', n);
        if (!colon || colon == p) {
            say(reason, rlen, "bad HTTP reply: bad header line ('%s')",
                excerpt(p, n, 32, ex, sizeof ex));
            return V_FAIL;
        }
        const char *name = p, *val = colon + 1;
        size_t nn = (size_t)(colon - p), vn = n - nn - 1;
        trim(&name, &nn);
        trim(&val, &vn);
        if (name_is(name, nn, "content-length")) {
            size_t x;
            if (!parse_length(val, vn, &x) || (r->has_length && x != r->length)) {
                say(reason, rlen, "bad HTTP reply: bad Content-Length ('%s')",
                    excerpt(val, vn, 32, ex, sizeof ex));
                return V_FAIL;
            }
            r->has_length = true;
            r->length = x;
        } else if (name_is(name, nn, "transfer-encoding")) {
            /* The last coding is what frames the body. */
            r->chunked = vn >= 7 && strncasecmp(val + vn - 7, "chunked", 7) == 0;
        }
        p = lf + 1;
    }
}

/*
 * Decodes the chunked body in r into out (at least body_len bytes).
 * Returns the decoded length; *complete tells whether the last chunk was
 * seen, *bad whether the framing is broken.
 */
static size_t dechunk(const struct reply *r, char *out, bool *complete, bool *bad)
{
    const char *p = r->body, *end = r->body + r->body_len;
    size_t k = 0;
    *complete = *bad = false;
    while (p < end) {
        const char *lf = line_end(p, end);
        size_t sz = 0, i = 0, n = lf ? line_len(p, lf) : (size_t)(end - p);
        if (!lf && n > 0 && p[n - 1] == '\r')
            n--;                /* the LF is still to come */
        for (; i < n && i < 16; i++) {
            char ch = p[i];
            int d = ch >= '0' && ch <= '9' ? ch - '0'
                  : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                  : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
            if (d < 0)
                break;
            sz = sz * 16 + (size_t)d;
        }
        /* Hex digits, then the end of the line or an extension. */
        if (i == 16 || (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t')) {
            *bad = true;
            return k;
        }
        if (!lf)
            return k;           /* the size line is cut off */
        if (i == 0) {
            *bad = true;
            return k;
        }
        p = lf + 1;
        if (sz == 0) {
            /* Trailers, then an empty line. */
            for (;;) {
                const char *tl = line_end(p, end);
                if (!tl)
                    return k;
                if (line_len(p, tl) == 0) {
                    *complete = true;
                    return k;
                }
                p = tl + 1;
            }
        }
        size_t have = (size_t)(end - p);
        if (sz > have) {
            memcpy(out + k, p, have);
            return k + have;
        }
        memcpy(out + k, p, sz);
        k += sz;
        p += sz;
        /* The CRLF after the data. */
        if (p < end && *p == '\r')
            p++;
        if (p < end) {
            if (*p != '\n') {
                *bad = true;
                return k;
            }
            p++;
        }
    }
    return k;
}

static void expected(const struct probe_conf *pc, int *lo, int *hi)
{
    *lo = pc->expect_lo;
    *hi = pc->expect_hi;
    if (*lo == 0 && *hi == 0) {
        *lo = DEFAULT_EXPECT_LO;
        *hi = DEFAULT_EXPECT_HI;
    }
}

/*
 * The verdict on buf[0..len). Unless how is END_OPEN nothing more will
 * come, so anything still undecided fails as truncated.
 */
static enum verdict judge(const struct probe_conf *pc, const char *buf, size_t len,
                          enum reply_end how, char *reason, size_t rlen)
{
    bool final = how != END_OPEN;
    const char *p = buf, *end = buf + len;
    struct reply r;
    enum verdict v;
    int lo, hi;

    expected(pc, &lo, &hi);
    if (len == 0) {
        if (final)
            say(reason, rlen, "bad HTTP reply: empty reply");
        return final ? V_FAIL : V_MORE;
    }
    for (;;) {
        memset(&r, 0, sizeof r);
        v = parse_status(&p, end, &r, reason, rlen);
        if (v == V_FAIL)
            return V_FAIL;
        if (v == V_MORE) {
            if (final)
                say(reason, rlen, "truncated reply: incomplete status line");
            return final ? V_FAIL : V_MORE;
        }
        bool interim = r.status >= 100 && r.status < 200 && r.status != 101;
        if (!interim && (r.status < lo || r.status > hi)) {
            if (lo == hi)
                say(reason, rlen, "HTTP status %d (expected %d)", r.status, lo);
            else
                say(reason, rlen, "HTTP status %d (expected %d-%d)", r.status, lo, hi);
            return V_FAIL;
        }
        if (!p) {
            if (final)
                say(reason, rlen, "truncated reply: incomplete status line");
            return final ? V_FAIL : V_MORE;
        }
        v = parse_headers(&p, end, &r, reason, rlen);
        if (v == V_FAIL)
            return V_FAIL;
        if (v == V_MORE) {
            if (final)
                say(reason, rlen, "truncated reply: no end of headers in %zu bytes", len);
            return final ? V_FAIL : V_MORE;
        }
        if (!interim)
            break;
        /* An interim reply: the real one follows. */
    }

    const char *want = pc->body && *pc->body ? pc->body : NULL;
    if (!want) {
        say(reason, rlen, "HTTP %d", r.status);
        return V_PASS;
    }

    r.body = p;
    r.body_len = (size_t)(end - p);
    bool bodyless = r.status == 204 || r.status == 304 || (r.status >= 100 && r.status < 200);
    const char *body = r.body;
    size_t blen = r.body_len, due = 0;
    bool complete = false, bad = false;
    char *decoded = NULL;
    char ex[48];

    if (bodyless) {
        blen = 0;
        complete = true;
    } else if (r.chunked) {
        decoded = malloc(r.body_len ? r.body_len : 1);
        if (decoded) {
            blen = dechunk(&r, decoded, &complete, &bad);
            body = decoded;
        } else {
            complete = false;           /* out of memory: search the raw bytes */
        }
    } else if (r.has_length) {
        due = r.length;
        if (blen >= r.length) {
            blen = r.length;
            complete = true;
        }
    }

    bool found = memmem(body, blen, want, strlen(want)) != NULL;
    free(decoded);
    if (found) {
        say(reason, rlen, "HTTP %d", r.status);
        return V_PASS;
    }
    if (bad) {
        say(reason, rlen, "bad HTTP reply: bad chunked body");
        return V_FAIL;
    }
    if (!complete && !final)
        return V_MORE;
    excerpt(want, strlen(want), 40, ex, sizeof ex);
    if (complete || (!r.chunked && !r.has_length && how == END_EOF))
        say(reason, rlen, "body does not contain '%s'", ex);
    else if (r.chunked)
        say(reason, rlen, "body does not contain '%s' (chunked body cut off after %zu bytes)",
            ex, blen);
    else if (r.has_length)
        say(reason, rlen, "body does not contain '%s' (only %zu of %zu bytes read)", ex, blen,
            due);
    else
        say(reason, rlen, "body does not contain '%s' (searched the first %zu bytes)", ex, blen);
    return V_FAIL;
}

bool probe_http_judge(const struct probe_conf *pc, const char *buf, size_t len,
                      char *reason, size_t reasonlen)
{
    if (!buf)
        len = 0;
    return judge(pc, buf ? buf : "", len, END_EOF, reason, reasonlen) == V_PASS;
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

/* Waits for events on the fd until the deadline. */
static enum io_rc wait_fd(struct io *c, short events)
{
    for (;;) {
        int64_t left = c->deadline - clock_now_ms();
        if (left <= 0) {
            say(c->reason, c->rlen, "timed out after %gs", c->timeout);
            return IO_ERR;
        }
        struct pollfd p = { .fd = c->fd, .events = events };
        int rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
        if (rc > 0)
            return IO_OK;
        if (rc < 0 && errno != EINTR) {
            say(c->reason, c->rlen, "poll: %s", strerror(errno));
            return IO_ERR;
        }
    }
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
    size_t off = 0;
    while (off < len) {
        if (c->ssl) {
            errno = 0;
            int ret = wolfSSL_write(c->ssl, buf + off, (int)(len - off));
            if (ret > 0) {
                off += (size_t)ret;
                continue;
            }
            if (tls_wait(c, ret, errno) != IO_OK)
                return IO_ERR;
            continue;
        }
        ssize_t n = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(c, POLLOUT) != IO_OK)
                return IO_ERR;
            continue;
        }
        say(c->reason, c->rlen, "send: %s", n < 0 ? strerror(errno) : "nothing sent");
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

/* How long a probe waits, at most, for the server's close_notify. */
#define CLOSE_GRACE_MS 250

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
        if (pc->verify_name && wolfSSL_check_domain_name(c->ssl, pc->sni) != WOLFSSL_SUCCESS) {
            say(c->reason, c->rlen, "TLS: cannot set the name to verify");
            return IO_ERR;
        }
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
    char scratch[PROBE_REASON_MAX], buf[4096];
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
    for (size_t total = 0; total < 65536;) {
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

    char *buf = malloc(PROBE_HTTP_MAX);
    size_t len = 0;
    bool ok = false;
    if (!buf) {
        say(c->reason, c->rlen, "out of memory");
        return false;
    }
    for (;;) {
        size_t got = 0;
        enum io_rc rc = read_some(c, buf + len, PROBE_HTTP_MAX - len, &got);
        if (rc == IO_ERR)
            break;
        len += got;
        enum reply_end how = rc == IO_EOF ? END_EOF : len == PROBE_HTTP_MAX ? END_CAP : END_OPEN;
        enum verdict v = judge(pc, buf, len, how, c->reason, c->rlen);
        if (v != V_MORE) {
            ok = v == V_PASS;
            break;
        }
    }
    free(buf);
    return ok;
}

void probe_run(const struct probe_conf *pc, const struct addr *a, struct probe_result *r)
{
    struct io c = { .fd = -1, .timeout = pc->timeout, .reason = r->reason,
                    .rlen = sizeof r->reason };
    enum upstream_err why;
    char sys[PROBE_REASON_MAX];

    r->ok = false;
    r->reason[0] = '\0';
    if (pc->type == PROBE_NONE) {
        r->ok = true;
        say(r->reason, sizeof r->reason, "no probe");
        return;
    }
    if (pc->type != PROBE_TCP && pc->type != PROBE_HTTP && pc->type != PROBE_TLS) {
        say(r->reason, sizeof r->reason, "bad probe: unknown type %d", (int)pc->type);
        return;
    }
    if (!(pc->timeout > 0) || pc->timeout > 86400) {
        say(r->reason, sizeof r->reason, "bad probe: timeout %g is not in (0, 86400] s",
            pc->timeout);
        return;
    }
    bool tls = pc->type == PROBE_TLS || (pc->type == PROBE_HTTP && pc->tls_ctx);
    if (pc->type == PROBE_TLS && !pc->tls_ctx) {
        say(r->reason, sizeof r->reason, "bad probe: TLS probe without a TLS context");
        return;
    }
    if (tls && pc->verify_name && !(pc->sni && *pc->sni)) {
        say(r->reason, sizeof r->reason, "bad probe: verify_name without a server name (sni)");
        return;
    }
    if (pc->type == PROBE_HTTP && (bad_text(pc->path) || bad_text(pc->host))) {
        say(r->reason, sizeof r->reason, "bad probe: CR or LF in the path or host");
        return;
    }

    c.deadline = clock_now_ms() + (int64_t)(pc->timeout * 1000 + 0.5);
    c.fd = upstream_connect(a, pc->timeout, &why, sys, sizeof sys);
    if (c.fd < 0) {
        if (why == UPSTREAM_TIMEOUT)
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

static int add_static_tls(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_TLS) {
            size_t align = ph->p_align ? ph->p_align : 1;
            *(size_t *)arg += (ph->p_memsz + align - 1) / align * align;
        }
    }
    return 0;
}

size_t probe_thread_stack(size_t want)
{
    size_t tls = 0;
    dl_iterate_phdr(add_static_tls, &tls);
    return want + tls;
}
