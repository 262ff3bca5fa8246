#include "unit.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <time.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "probe.h"
#include "threadstack.h"

/* ---- loopback servers ---- */

enum behaviour {
    SERVE_REPLY,        /* read the request, send reply (in pieces), maybe hold, close */
    SERVE_SILENT,       /* accept, never answer; wait for the client to go */
    SERVE_DRIP,         /* read the request, send reply 1 byte per 100 ms */
    SERVE_CLOSE,        /* read the request, close without a reply */
    SERVE_RESET,        /* read the request, reset */
    SERVE_TLS,          /* a TLS handshake; with reply, an HTTP exchange over it */
};

struct srv {
    int lfd;
    struct addr a;
    pthread_t th;
    enum behaviour how;
    const char *reply;
    size_t reply_len;
    int pieces;         /* send the reply in this many pieces, 30 ms apart */
    bool hold;          /* after the reply, keep the connection until the client closes */
    bool no_read;       /* send the reply without reading a request */
    WOLFSSL_CTX *tls;
    char request[2048];
    size_t request_len;
    int accept_ret;     /* wolfSSL_accept's result (SERVE_TLS) */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Reads until the end of the request's headers, the client's EOF or 5 s. */
static void read_request(struct srv *s, int fd)
{
    while (s->request_len < sizeof s->request - 1) {
        ssize_t n = recv(fd, s->request + s->request_len, sizeof s->request - 1 - s->request_len,
                         0);
        if (n <= 0)
            break;
        s->request_len += (size_t)n;
        s->request[s->request_len] = '\0';
        if (strstr(s->request, "\r\n\r\n"))
            break;
    }
}

/* Waits (at most 5 s) until the client closes or resets. */
static void wait_client_gone(int fd)
{
    char b[4096];
    double end = now_s() + 5;
    while (now_s() < end) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 100) > 0 && recv(fd, b, sizeof b, 0) <= 0)
            return;
    }
}

static void send_pieces(struct srv *s, int fd)
{
    int k = s->pieces > 1 ? s->pieces : 1;
    size_t off = 0;
    for (int i = 0; i < k && off < s->reply_len; i++) {
        size_t n = i == k - 1 ? s->reply_len - off : s->reply_len / (size_t)k;
        if (n == 0)
            continue;
        ssize_t w = send(fd, s->reply + off, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        off += (size_t)w;
        if (k > 1)
            sleep_ms(30);
        if (w < (ssize_t)n)
            i--;                /* a short write: send the rest as another piece */
    }
}

static void serve_tls(struct srv *s, int fd)
{
    WOLFSSL *ssl = wolfSSL_new(s->tls);
    ck_assert_ptr_nonnull(ssl);
    wolfSSL_set_fd(ssl, fd);
    wolfSSL_SetIOWriteFlags(ssl, MSG_NOSIGNAL);
    s->accept_ret = wolfSSL_accept(ssl);
    if (s->accept_ret == WOLFSSL_SUCCESS && s->reply) {
        while (s->request_len < sizeof s->request - 1 && !strstr(s->request, "\r\n\r\n")) {
            int n = wolfSSL_read(ssl, s->request + s->request_len,
                                 (int)(sizeof s->request - 1 - s->request_len));
            if (n <= 0)
                break;
            s->request_len += (size_t)n;
            s->request[s->request_len] = '\0';
        }
        wolfSSL_write(ssl, s->reply, (int)s->reply_len);
    }
    if (s->accept_ret == WOLFSSL_SUCCESS)
        wolfSSL_shutdown(ssl);
    wolfSSL_free(ssl);
}

static void *serve(void *arg)
{
    struct srv *s = arg;
    struct pollfd p = { .fd = s->lfd, .events = POLLIN };
    if (poll(&p, 1, 10000) <= 0)
        return NULL;
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    struct timeval tv = { 5, 0 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    switch (s->how) {
    case SERVE_REPLY:
        if (!s->no_read)
            read_request(s, fd);
        send_pieces(s, fd);
        if (s->hold)
            wait_client_gone(fd);
        break;
    case SERVE_SILENT:
        wait_client_gone(fd);
        break;
    case SERVE_DRIP:
        read_request(s, fd);
        for (size_t i = 0; i < s->reply_len; i++) {
            if (send(fd, s->reply + i, 1, MSG_NOSIGNAL) != 1)
                break;
            sleep_ms(100);
        }
        break;
    case SERVE_CLOSE:
        if (!s->no_read)
            read_request(s, fd);
        break;
    case SERVE_RESET: {
        read_request(s, fd);
        struct linger l = { 1, 0 };
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        break;
    }
    case SERVE_TLS:
        serve_tls(s, fd);
        break;
    }
    close(fd);
    wc_ecc_fp_free();           /* this thread's FP_ECC cache */
    return NULL;
}

/* A loopback listener on a free port, not yet serving. */
static void srv_listen(struct srv *s)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&s->a.sa;
    memset(&s->a, 0, sizeof s->a);
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->a.len = sizeof *sin;
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(s->lfd, 0);
    ck_assert_int_eq(bind(s->lfd, (struct sockaddr *)sin, sizeof *sin), 0);
    ck_assert_int_eq(listen(s->lfd, 16), 0);
    socklen_t sl = sizeof *sin;
    ck_assert_int_eq(getsockname(s->lfd, (struct sockaddr *)sin, &sl), 0);
}

static void srv_start(struct srv *s, enum behaviour how, const char *reply)
{
    s->how = how;
    s->reply = reply;
    s->reply_len = reply ? strlen(reply) : 0;
    srv_listen(s);
    ck_assert_int_eq(pthread_create(&s->th, NULL, serve, s), 0);
}

static void srv_stop(struct srv *s)
{
    pthread_join(s->th, NULL);
    close(s->lfd);
}

/* A server context; version 0 = TLS 1.2 or 1.3, else only that version. */
static WOLFSSL_CTX *server_ctx_v(const char *cert, const char *key, int version)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(wolfSSL_CTX_set_min_proto_version(ctx, version ? version : TLS1_2_VERSION),
                     WOLFSSL_SUCCESS);
    if (version)
        ck_assert_int_eq(wolfSSL_CTX_set_max_proto_version(ctx, version), WOLFSSL_SUCCESS);
    wolfSSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    ck_assert_int_eq(wolfSSL_CTX_use_certificate_chain_file(ctx, unit_cert(cert)),
                     WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_CTX_use_PrivateKey_file(ctx, unit_cert(key), WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    return ctx;
}

static WOLFSSL_CTX *server_ctx(const char *cert, const char *key)
{
    return server_ctx_v(cert, key, 0);
}

static struct probe_conf http_conf(double timeout)
{
    struct probe_conf pc = { .type = PROBE_HTTP, .timeout = timeout, .path = "/healthz",
                             .host = "example.test", .expect_lo = 200, .expect_hi = 399 };
    return pc;
}

#define OK_REPLY "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nConnection: close\r\n\r\nstatus: OK\r\n"

/* ---- TCP ---- */

START_TEST(tcp_ok)
{
    struct srv s = { 0 };
    srv_start(&s, SERVE_SILENT, NULL);
    struct probe_conf pc = { .type = PROBE_TCP, .timeout = 2 };
    struct probe_result r;
    probe_run(&pc, &s.a, &r);
    ck_assert_msg(r.ok, "%s", r.reason);
    ck_assert_str_eq(r.reason, "TCP connect");
    srv_stop(&s);
}
END_TEST

START_TEST(tcp_refused)
{
    struct srv s = { 0 };
    srv_listen(&s);
    close(s.lfd);               /* nothing listens there now */
    struct probe_conf pc = { .type = PROBE_TCP, .timeout = 2 };
    struct probe_result r;
    probe_run(&pc, &s.a, &r);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "connect: Connection refused");
}
END_TEST

START_TEST(tcp_connect_timeout)
{
    /* A listener with a full accept queue drops SYNs: connects hang. */
    struct srv s = { 0 };
    srv_listen(&s);
    ck_assert_int_eq(listen(s.lfd, 0), 0);
    struct probe_conf pc = { .type = PROBE_TCP, .timeout = 0.3 };
    struct probe_result r = { 0 };
    int held[8], n = 0;
    double took = 0;
    for (; n < 8; n++) {
        /* Fill the queue with connections that stay open. */
        held[n] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(held[n], (struct sockaddr *)&s.a.sa, s.a.len);
        sleep_ms(20);
        double t0 = now_s();
        probe_run(&pc, &s.a, &r);
        took = now_s() - t0;
        if (!r.ok)
            break;
    }
    ck_assert_msg(!r.ok, "never timed out");
    ck_assert_str_eq(r.reason, "connect: timed out after 0.3s");
    ck_assert_msg(took >= 0.25 && took < 0.8, "took %.3f s", took);
    for (int i = 0; i <= n && i < 8; i++)
        close(held[i]);
    close(s.lfd);
}
END_TEST

/* ---- HTTP ---- */

START_TEST(http_ok)
{
    struct srv s = { 0 };
    srv_start(&s, SERVE_REPLY, OK_REPLY);
    struct probe_conf pc = http_conf(2);
    struct probe_result r;
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert_msg(r.ok, "%s", r.reason);
    ck_assert_str_eq(r.reason, "HTTP 200");
    ck_assert_str_eq(s.request, "GET /healthz HTTP/1.1\r\nHost: example.test\r\n"
                                "User-Agent: tlsoffd-health\r\nConnection: close\r\n\r\n");
}
END_TEST

START_TEST(http_defaults)
{
    /* No path, host or range: "/", the address, 200-399. */
    struct srv s = { 0 };
    srv_start(&s, SERVE_REPLY, "HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n");
    struct probe_conf pc = { .type = PROBE_HTTP, .timeout = 2 };
    struct probe_result r;
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert_msg(r.ok, "%s", r.reason);
    ck_assert_str_eq(r.reason, "HTTP 302");
    char want[256];
    snprintf(want, sizeof want, "GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n",
             ntohs(((struct sockaddr_in *)&s.a.sa)->sin_port));
    ck_assert_msg(strncmp(s.request, want, strlen(want)) == 0, "%s", s.request);
}
END_TEST

START_TEST(http_503)
{
    struct srv s = { 0 };
    srv_start(&s, SERVE_REPLY, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n");
    struct probe_conf pc = http_conf(2);
    struct probe_result r;
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "HTTP status 503 (expected 200-399)");
}
END_TEST

START_TEST(http_range)
{
    const char *reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    struct srv s = { 0 };
    struct probe_conf pc = http_conf(2);
    struct probe_result r;

    pc.expect_lo = pc.expect_hi = 200;
    srv_start(&s, SERVE_REPLY, reply);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "HTTP status 404 (expected 200)");

    memset(&s, 0, sizeof s);
    pc.expect_lo = 400;
    pc.expect_hi = 499;
    srv_start(&s, SERVE_REPLY, reply);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert_msg(r.ok, "%s", r.reason);
    ck_assert_str_eq(r.reason, "HTTP 404");
}
END_TEST

START_TEST(http_body)
{
    struct srv s = { 0 };
    struct probe_conf pc = http_conf(2);
    struct probe_result r;

    pc.body = "status: OK";
    srv_start(&s, SERVE_REPLY, OK_REPLY);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert_msg(r.ok, "%s", r.reason);

    memset(&s, 0, sizeof s);
    pc.body = "healthy";
    srv_start(&s, SERVE_REPLY, OK_REPLY);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "body does not contain 'healthy'");
}
END_TEST

START_TEST(http_short_reads)
{
    /* Status line, headers and body in 7 pieces, 30 ms apart. */
    struct srv s = { .pieces = 7 };
    srv_start(&s, SERVE_REPLY, OK_REPLY);
    struct probe_conf pc = http_conf(3);
    pc.body = "OK";
    struct probe_result r;
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert_msg(r.ok, "%s", r.reason);
}
END_TEST

START_TEST(http_decides_early)
{
    /* The server keeps the connection open: the probe must not wait for
     * it once the verdict is known. */
    static const struct { const char *reply; const char *body; bool ok; const char *reason; } c[] = {
        { "HTTP/1.1 503 Busy\r\n", NULL, false, "HTTP status 503 (expected 200-399)" },
        { "HTTP/1.1 200 OK\r\nX: y\r\n\r\npartial bo", NULL, true, "HTTP 200" },
        { "HTTP/1.1 200 OK\r\n\r\nhello OK and more to come", "OK", true, "HTTP 200" },
        { "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nnope!", "OK", false,
          "body does not contain 'OK'" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        struct srv s = { .hold = true };
        srv_start(&s, SERVE_REPLY, c[i].reply);
        struct probe_conf pc = http_conf(3);
        pc.body = c[i].body;
        struct probe_result r;
        double t0 = now_s();
        probe_run(&pc, &s.a, &r);
        double took = now_s() - t0;
        srv_stop(&s);
        ck_assert_msg(r.ok == c[i].ok, "case %zu: %s", i, r.reason);
        ck_assert_str_eq(r.reason, c[i].reason);
        ck_assert_msg(took < 1.5, "case %zu took %.3f s", i, took);
    }
}
END_TEST

START_TEST(http_silent)
{
    struct srv s = { 0 };
    srv_start(&s, SERVE_SILENT, NULL);
    struct probe_conf pc = http_conf(1);
    struct probe_result r;
    double t0 = now_s();
    probe_run(&pc, &s.a, &r);
    double took = now_s() - t0;
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "timed out after 1s");
    ck_assert_msg(took >= 0.95 && took < 1.5, "took %.3f s", took);
}
END_TEST

START_TEST(http_drip)
{
    /* 1 byte per 100 ms: the headers would take 6 s. */
    struct srv s = { 0 };
    srv_start(&s, SERVE_DRIP, "HTTP/1.1 200 OK\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "\r\n\r\nOK");
    struct probe_conf pc = http_conf(1);
    struct probe_result r;
    double t0 = now_s();
    probe_run(&pc, &s.a, &r);
    double took = now_s() - t0;
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "timed out after 1s");
    ck_assert_msg(took >= 0.95 && took < 1.5, "took %.3f s", took);
}
END_TEST

START_TEST(http_closed_or_reset)
{
    struct srv s = { 0 };
    struct probe_conf pc = http_conf(2);
    struct probe_result r;

    srv_start(&s, SERVE_CLOSE, NULL);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "bad HTTP reply: empty reply");

    memset(&s, 0, sizeof s);
    srv_start(&s, SERVE_RESET, NULL);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "read: Connection reset by peer");

    /* A reply cut off by the server's close. */
    memset(&s, 0, sizeof s);
    srv_start(&s, SERVE_REPLY, "HTTP/1.1 200 OK\r\nServer: x\r\n");
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_msg(strstr(r.reason, "truncated reply"), "%s", r.reason);
}
END_TEST

static char *big_reply(size_t body, size_t at, const char *word)
{
    char *b = malloc(body + 128);
    int h = sprintf(b, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", body);
    memset(b + h, 'x', body);
    if (word)
        memcpy(b + h + at, word, strlen(word));
    b[h + body] = '\0';
    return b;
}

START_TEST(http_cap)
{
    struct srv s = { 0 };
    struct probe_conf pc = http_conf(3);
    struct probe_result r;
    pc.body = "NEEDLE";

    /* The substring beyond the first 16 KiB is not seen. */
    char *reply = big_reply(20000, 17000, "NEEDLE");
    srv_start(&s, SERVE_REPLY, reply);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_msg(strstr(r.reason, "body does not contain 'NEEDLE' (only ") &&
                  strstr(r.reason, "of 20000 bytes read"), "%s", r.reason);
    free(reply);

    /* Found early in a 1 MB body: the probe stops reading and passes. */
    memset(&s, 0, sizeof s);
    reply = big_reply(1 << 20, 100, "NEEDLE");
    srv_start(&s, SERVE_REPLY, reply);
    double t0 = now_s();
    probe_run(&pc, &s.a, &r);
    double took = now_s() - t0;
    srv_stop(&s);
    ck_assert_msg(r.ok, "%s", r.reason);
    ck_assert_msg(took < 2, "took %.3f s", took);
    free(reply);

    /* A body read to close, longer than the cap. */
    memset(&s, 0, sizeof s);
    reply = big_reply(40000, 20000, "NEEDLE");
    char *nolen = strstr(reply, "Content-Length");
    memcpy(nolen, "X-Whatever-Thg", 14);
    srv_start(&s, SERVE_REPLY, reply);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_msg(strstr(r.reason, "(searched the first "), "%s", r.reason);
    free(reply);
}
END_TEST

/* ---- TLS ---- */

struct tls_case {
    const char *cert, *key;     /* the server's */
    const char *ca;             /* the probe's; NULL = verification off */
    const char *sni;
    bool verify_name;
    bool ok;
    const char *word;
    int version;                /* the server's only version; 0 = 1.2 or 1.3 */
};

static void tls_probe(const struct tls_case *t, struct probe_result *r)
{
    char err[256];
    struct srv s = { 0 };
    s.tls = server_ctx_v(t->cert, t->key, t->version);
    WOLFSSL_CTX *cctx = probe_tls_ctx_new(t->ca ? unit_cert(t->ca) : NULL, t->ca != NULL, err,
                                          sizeof err);
    ck_assert_msg(cctx != NULL, "%s", err);
    srv_start(&s, SERVE_TLS, NULL);
    struct probe_conf pc = { .type = PROBE_TLS, .timeout = 5, .tls_ctx = cctx, .sni = t->sni,
                             .verify_name = t->verify_name };
    probe_run(&pc, &s.a, r);
    srv_stop(&s);
    wolfSSL_CTX_free(cctx);
    wolfSSL_CTX_free(s.tls);
    wc_ecc_fp_free();
}

static const struct tls_case tls_cases[] = {
    { "example.test.pem", "example.test.key", "ca.pem", "example.test", true, true,
      "TLS handshake (TLSv1.3)", 0 },
    { "example.test.pem", "example.test.key", "ca.pem", NULL, false, true, "TLS handshake", 0 },
    /* the wrong CA, both ways */
    { "example.test.pem", "example.test.key", "other.pem", "example.test", true, false,
      "TLS: certificate verify failed (-188)", 0 },
    { "other.pem", "other.key", "ca.pem", "example.test", false, false, "TLS: ", 0 },
    /* the wrong name */
    { "example.test.pem", "example.test.key", "ca.pem", "wrong.test", true, false,
      "TLS: peer subject name mismatch (-322)", 0 },
    { "example.test.pem", "example.test.key", "ca.pem", "wrong.test", false, true,
      "TLS handshake", 0 },
    /* verification off: any certificate */
    { "other.pem", "other.key", NULL, "example.test", false, true, "TLS handshake", 0 },
    { "rsa.test.pem", "rsa.test.key", NULL, NULL, false, true, "TLS handshake", 0 },
    { "other.pem", "other.key", NULL, "wrong.test", true, true, "TLS handshake", 0 },
    { "rsa.test.pem", "rsa.test.key", "ca.pem", "rsa.test", true, true, "TLS handshake", 0 },
    /* 10: TLS 1.2 servers; a TLS 1.1-only server is refused */
    { "example.test.pem", "example.test.key", "ca.pem", "example.test", true, true,
      "TLS handshake (TLSv1.2)", TLS1_2_VERSION },
    { "example.test.pem", "example.test.key", "ca.pem", "wrong.test", true, false,
      "TLS: peer subject name mismatch (-322)", TLS1_2_VERSION },
    { "example.test.pem", "example.test.key", "other.pem", "example.test", true, false,
      "(-188)", TLS1_2_VERSION },
    { "rsa.test.pem", "rsa.test.key", "ca.pem", "rsa.test", true, true,
      "TLS handshake (TLSv1.2)", TLS1_2_VERSION },
    { "example.test.pem", "example.test.key", NULL, NULL, false, false, "TLS: ",
      TLS1_1_VERSION },
};

START_TEST(tls_cases_run)
{
    const struct tls_case *t = &tls_cases[_i];
    struct probe_result r;
    tls_probe(t, &r);
    ck_assert_msg(r.ok == t->ok, "case %d: %s", _i, r.reason);
    ck_assert_msg(strstr(r.reason, t->word), "case %d: '%s' lacks '%s'", _i, r.reason, t->word);
}
END_TEST

/* A prober thread has a 256 KiB stack (daemon/health.c). */
static void *tls_in_thread(void *arg)
{
    tls_probe(&tls_cases[0], arg);
    return NULL;
}

START_TEST(tls_small_stack)
{
    pthread_t t;
    pthread_attr_t a;
    struct probe_result r;
    pthread_attr_init(&a);
    pthread_attr_setstacksize(&a, threadstack_size(256 * 1024));
    ck_assert_int_eq(pthread_create(&t, &a, tls_in_thread, &r), 0);
    pthread_join(t, NULL);
    pthread_attr_destroy(&a);
    ck_assert_msg(r.ok, "%s", r.reason);
}
END_TEST

START_TEST(tls_silent_and_plain)
{
    char err[256];
    WOLFSSL_CTX *cctx = probe_tls_ctx_new(unit_cert("ca.pem"), true, err, sizeof err);
    ck_assert_msg(cctx != NULL, "%s", err);
    struct probe_conf pc = { .type = PROBE_TLS, .timeout = 1, .tls_ctx = cctx };
    struct probe_result r;

    struct srv s = { 0 };
    srv_start(&s, SERVE_SILENT, NULL);
    double t0 = now_s();
    probe_run(&pc, &s.a, &r);
    double took = now_s() - t0;
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "timed out after 1s");
    ck_assert_msg(took >= 0.95 && took < 1.5, "took %.3f s", took);

    /* A plain HTTP server answering the ClientHello. */
    memset(&s, 0, sizeof s);
    s.no_read = true;
    srv_start(&s, SERVE_REPLY, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_msg(strncmp(r.reason, "TLS: ", 5) == 0, "%s", r.reason);

    /* A server that closes at once. */
    memset(&s, 0, sizeof s);
    s.no_read = true;
    srv_start(&s, SERVE_CLOSE, NULL);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_msg(strncmp(r.reason, "TLS: ", 5) == 0, "%s", r.reason);

    wolfSSL_CTX_free(cctx);
}
END_TEST

START_TEST(https)
{
    char err[256];
    WOLFSSL_CTX *cctx = probe_tls_ctx_new(unit_cert("ca.pem"), true, err, sizeof err);
    ck_assert_msg(cctx != NULL, "%s", err);
    struct probe_conf pc = http_conf(5);
    pc.tls_ctx = cctx;
    pc.sni = "example.test";
    pc.verify_name = true;
    pc.host = NULL;             /* defaults to the sni */
    pc.body = "status: OK";
    struct probe_result r;

    struct srv s = { 0 };
    s.tls = server_ctx("example.test.pem", "example.test.key");
    srv_start(&s, SERVE_TLS, OK_REPLY);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    wolfSSL_CTX_free(s.tls);
    ck_assert_msg(r.ok, "%s", r.reason);
    ck_assert_str_eq(r.reason, "HTTP 200");
    ck_assert_msg(strstr(s.request, "GET /healthz HTTP/1.1\r\nHost: example.test\r\n"), "%s",
                  s.request);

    memset(&s, 0, sizeof s);
    s.tls = server_ctx("example.test.pem", "example.test.key");
    srv_start(&s, SERVE_TLS, "HTTP/1.1 500 Oops\r\n\r\n");
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    wolfSSL_CTX_free(s.tls);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "HTTP status 500 (expected 200-399)");

    /* HTTP over TLS to a server with the wrong name fails in the handshake. */
    memset(&s, 0, sizeof s);
    s.tls = server_ctx("other.pem", "other.key");
    srv_start(&s, SERVE_TLS, OK_REPLY);
    probe_run(&pc, &s.a, &r);
    srv_stop(&s);
    ck_assert(!r.ok);
    ck_assert_msg(strncmp(r.reason, "TLS: ", 5) == 0, "%s", r.reason);

    wolfSSL_CTX_free(s.tls);
    wolfSSL_CTX_free(cctx);
    wc_ecc_fp_free();
}
END_TEST

START_TEST(tls_ctx_errors)
{
    char err[256];
    ck_assert_ptr_null(probe_tls_ctx_new("/nonexistent.pem", true, err, sizeof err));
    ck_assert_str_eq(err, "CA file '/nonexistent.pem': No such file or directory");
    ck_assert_ptr_null(probe_tls_ctx_new(unit_cert("garbage.pem"), true, err, sizeof err));
    ck_assert_msg(strstr(err, "cannot load PEM certificates"), "%s", err);
    WOLFSSL_CTX *ctx = probe_tls_ctx_new(NULL, true, err, sizeof err);  /* the system store */
    ck_assert_msg(ctx != NULL, "%s", err);
    wolfSSL_CTX_free(ctx);
    ctx = probe_tls_ctx_new("/nonexistent.pem", false, err, sizeof err);  /* not read */
    ck_assert_msg(ctx != NULL, "%s", err);
    wolfSSL_CTX_free(ctx);
}
END_TEST

START_TEST(bad_conf)
{
    struct addr a = { 0 };
    struct probe_result r;
    struct probe_conf pc = { .type = PROBE_NONE };
    probe_run(&pc, &a, &r);
    ck_assert(r.ok);
    ck_assert_str_eq(r.reason, "no probe");

    pc = (struct probe_conf){ .type = PROBE_TCP, .timeout = 0 };
    probe_run(&pc, &a, &r);
    ck_assert(!r.ok);
    ck_assert_msg(strstr(r.reason, "bad probe: timeout"), "%s", r.reason);

    pc = (struct probe_conf){ .type = PROBE_TLS, .timeout = 1 };
    probe_run(&pc, &a, &r);
    ck_assert(!r.ok);
    ck_assert_str_eq(r.reason, "bad probe: TLS probe without a TLS context");

    pc = (struct probe_conf){ .type = PROBE_TLS, .timeout = 1, .tls_ctx = (WOLFSSL_CTX *)&a,
                              .verify_name = true };
    probe_run(&pc, &a, &r);
    ck_assert(!r.ok);
    ck_assert_msg(strstr(r.reason, "bad probe: verify_name"), "%s", r.reason);

    pc = (struct probe_conf){ .type = PROBE_HTTP, .timeout = 1, .path = "/x\r\nEvil: 1" };
    probe_run(&pc, &a, &r);
    ck_assert(!r.ok);
    ck_assert_msg(strstr(r.reason, "bad probe: CR or LF"), "%s", r.reason);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("probe");
    TCase *tc = tcase_create("run");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, tcp_ok);
    tcase_add_test(tc, tcp_refused);
    tcase_add_test(tc, tcp_connect_timeout);
    tcase_add_test(tc, http_ok);
    tcase_add_test(tc, http_defaults);
    tcase_add_test(tc, http_503);
    tcase_add_test(tc, http_range);
    tcase_add_test(tc, http_body);
    tcase_add_test(tc, http_short_reads);
    tcase_add_test(tc, http_decides_early);
    tcase_add_test(tc, http_silent);
    tcase_add_test(tc, http_drip);
    tcase_add_test(tc, http_closed_or_reset);
    tcase_add_test(tc, http_cap);
    tcase_add_test(tc, bad_conf);
    suite_add_tcase(s, tc);

    tc = tcase_create("tls");
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, tls_cases_run, 0, (int)(sizeof tls_cases / sizeof tls_cases[0]));
    tcase_add_test(tc, tls_small_stack);
    tcase_add_test(tc, tls_silent_and_plain);
    tcase_add_test(tc, https);
    tcase_add_test(tc, tls_ctx_errors);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
