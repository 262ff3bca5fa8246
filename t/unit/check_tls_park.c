/* tls_park.c: an idle connection's TLS state out to a blob and back. */
#include "tlspair.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "clock.h"
#include "ticketkeys.h"

/* The blob's layout (tls_park.c), as far as the tests need it. */
#define BLOB_HDR        24
#define BLOB_TAG        16
#define BLOB_VERSION    8       /* LIBWOLFSSL_VERSION_HEX */
#define BLOB_SNI        16      /* the lengths of SNI, ALPN, secrets, messages */
#define BLOB_ALPN       17
#define BLOB_SECRET     18
#define BLOB_MSGS       20

static char err[512];
static struct tls_frontend *front;
static uint8_t accept_rbuf[TLS_READAHEAD_SIZE], rbuf[TLS_READAHEAD_SIZE];

/* A frontend of two certificates (ECDSA example.test, RSA rsa.test),
 * ALPN, and session tickets. */
static void setup(void)
{
    static _Alignas(4096) uint8_t keys_region[64 * 1024];
    static struct cert_conf cc[2];
    static char *alpn[] = { "h2", "http/1.1" };
    static struct frontend_conf fc = { .name = "t", .ncerts = 2, .certs = cc, .where = "x:3",
                                       .nalpn = 2, .alpn = alpn };
    cc[0] = (struct cert_conf){ .cert = (char *)unit_cert("example.test.pem"),
                                .key = (char *)unit_cert("example.test.key"), .where = "x:1" };
    cc[1] = (struct cert_conf){ .cert = (char *)unit_cert("rsa.test.pem"),
                                .key = (char *)unit_cert("rsa.test.key"), .where = "x:2" };
    tls_global_init();
    struct ticketkeys *keys = ticketkeys_init(keys_region);
    struct ticket_key k;
    ck_assert_int_eq(ticketkeys_generate(&k), 0);
    ticketkeys_rotate(keys, &k, clock_real_ms(), 3600000);
    struct tls_resumption r = { .keys = keys, .cache_timeout = 300, .ticket_lifetime = 3600 };
    struct tls_conf tc = pair_tls_conf();
    front = tls_frontend_new(&tc, &fc, &r, err, sizeof err);
    ck_assert_msg(front != NULL, "%s", err);
}

static void teardown(void)
{
    tls_frontend_free(front);
    tls_global_cleanup();
}

/* A frontend connection (the server, conn on sv[0]) and its client (c on sv[1]). */
struct pair {
    int sv[2];
    struct tls_conn *conn;
    WOLFSSL *c;
    enum tls_io result;
    char reason[256];
};

static void *accept_thread(void *arg)
{
    struct pair *p = arg;
    fcntl(p->sv[0], F_SETFL, O_NONBLOCK);
    p->result = tls_frontend_accept(front, &p->conn, p->sv[0], accept_rbuf, sizeof accept_rbuf,
                                    5, p->reason, sizeof p->reason);
    pair_thread_done();
    return NULL;
}

/* A handshake: TLS 1.<version>, the client offering only cipher (NULL:
 * the default list), SNI sni, ALPN http/1.1, tickets, and sess to resume. */
static void pair_open(struct pair *p, int version, const char *cipher, const char *sni,
                      WOLFSSL_SESSION *sess)
{
    pthread_t t;
    memset(p, 0, sizeof *p);
    pair_sockets(p->sv);
    pthread_create(&t, NULL, accept_thread, p);
    p->c = pair_client(p->sv[1], version);
    if (cipher)
        ck_assert_int_eq(wolfSSL_set_cipher_list(p->c, cipher), WOLFSSL_SUCCESS);
    wolfSSL_UseSNI(p->c, WOLFSSL_SNI_HOST_NAME, sni, (unsigned short)strlen(sni));
    wolfSSL_UseALPN(p->c, (char *)"http/1.1", 8, WOLFSSL_ALPN_CONTINUE_ON_MISMATCH);
    wolfSSL_UseSessionTicket(p->c);
    if (sess)
        wolfSSL_set_session(p->c, sess);
    ck_assert_int_eq(wolfSSL_connect(p->c), WOLFSSL_SUCCESS);
    pthread_join(t, NULL);
    ck_assert_msg(p->result == TLS_IO_OK, "%s", p->reason);
    tls_conn_set_deadline(p->conn, clock_now_ms() + 5000);
}

static void pair_close(struct pair *p)
{
    tls_conn_free(p->conn);
    wolfSSL_free(p->c);
    close(p->sv[0]);
    close(p->sv[1]);
}

/* len bytes read on the server (the error's text on failure). */
static void server_read(struct tls_conn *conn, void *buf, size_t len)
{
    char why[256] = "";
    for (size_t got = 0, n = 0; got < len; got += n) {
        enum tls_io r = tls_conn_read(conn, (uint8_t *)buf + got, len - got, &n);
        if (r != TLS_IO_OK)
            tls_conn_error(conn, -1, why, sizeof why);
        ck_assert_msg(r == TLS_IO_OK, "read: %d (%s)", r, why);
    }
}

/* len bytes from the client to the server, then back, in one write each. */
static void echo(struct pair *p, size_t len)
{
    static uint8_t out[64 * 1024], in[64 * 1024];
    ck_assert_uint_le(len, sizeof out);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(i * 7 + len);
    ck_assert_int_eq(wolfSSL_write(p->c, out, (int)len), (int)len);
    server_read(p->conn, in, len);
    ck_assert(memcmp(in, out, len) == 0);
    ck_assert_int_eq(tls_conn_write(p->conn, in, len), TLS_IO_OK);
    memset(in, 0, len);
    for (int got = 0, n = 0; got < (int)len; got += n)
        ck_assert_int_gt(n = wolfSSL_read(p->c, in + got, (int)len - got), 0);
    ck_assert(memcmp(in, out, len) == 0);
}

/* The bytes that wait for the client on its socket (0 for s_client's,
 * which would see stray bytes itself). */
static int queued(struct pair *p)
{
    int n = 0;
    if (p->sv[1] >= 0)
        ck_assert_int_eq(ioctl(p->sv[1], FIONREAD, &n), 0);
    return n;
}

/* Parks p's connection into blob, frees it, returns the size; neither
 * sends anything. */
static size_t park(struct pair *p, uint8_t *blob, size_t cap)
{
    int before = queued(p);
    ssize_t n = tls_conn_park(p->conn, blob, cap, err, sizeof err);
    ck_assert_msg(n > 0, "park: %s", err);
    tls_conn_free(p->conn);
    p->conn = NULL;
    ck_assert_int_eq(queued(p), before);
    return (size_t)n;
}

/* A connection on p's socket again, from blob, as the relay would set it. */
static void unpark(struct pair *p, const uint8_t *blob, size_t n)
{
    p->conn = tls_conn_unpark(front, p->sv[0], blob, n, err, sizeof err);
    ck_assert_msg(p->conn != NULL, "unpark: %s", err);
    tls_conn_readahead(p->conn, rbuf, sizeof rbuf);
    tls_conn_set_deadline(p->conn, clock_now_ms() + 5000);
}

static void park_unpark(struct pair *p)
{
    uint8_t blob[TLS_PARK_MAX];
    unpark(p, blob, park(p, blob, sizeof blob));
    explicit_bzero(blob, sizeof blob);
}

/* The server's close_notify reaches the client. */
static void close_notify_seen(struct pair *p)
{
    char b[8];
    tls_conn_close_notify(p->conn);
    ck_assert_int_eq(wolfSSL_read(p->c, b, sizeof b), 0);
    ck_assert_int_eq(wolfSSL_get_error(p->c, 0), WOLFSSL_ERROR_ZERO_RETURN);
}

/* Whether conn's park is refused, with a reason that has want in it. */
static void refused(struct tls_conn *conn, const char *want)
{
    uint8_t blob[TLS_PARK_MAX];
    ck_assert_int_eq(tls_conn_park(conn, blob, sizeof blob, err, sizeof err), -1);
    ck_assert_msg(strstr(err, want), "'%s' is not '%s'", err, want);
}

static const struct suite_case {
    int version;
    const char *cipher, *sni, *key_alg;
} cases[] = {
    { 2, "ECDHE-ECDSA-AES128-GCM-SHA256", "example.test", "EC256" },
    { 2, "ECDHE-ECDSA-CHACHA20-POLY1305", "example.test", "EC256" },
    { 2, "ECDHE-RSA-AES256-GCM-SHA384", "rsa.test", "RSA2048" },
    { 2, "ECDHE-RSA-CHACHA20-POLY1305", "rsa.test", "RSA2048" },
    { 3, "TLS13-AES128-GCM-SHA256", "example.test", "EC256" },
    { 3, "TLS13-AES256-GCM-SHA384", "rsa.test", "RSA2048" },
    { 3, "TLS13-CHACHA20-POLY1305-SHA256", "example.test", "EC256" },
};

/* Data both ways, park, free, unpark on the same socket, data both ways
 * (1 byte; 40000: three records), park and unpark again, close_notify. */
START_TEST(park_and_back)
{
    const struct suite_case *k = &cases[_i];
    struct pair p;
    uint8_t blob[TLS_PARK_MAX];
    pair_open(&p, k->version, k->cipher, k->sni, NULL);
    ck_assert_str_eq(tls_conn_cipher(p.conn), k->cipher);
    echo(&p, 100);
    size_t n = park(&p, blob, sizeof blob);
    printf("tls_park: %s %s: %zu bytes\n", k->version == 3 ? "TLSv1.3" : "TLSv1.2", k->cipher,
           n);
    unpark(&p, blob, n);
    explicit_bzero(blob, sizeof blob);
    ck_assert_str_eq(tls_conn_version(p.conn), k->version == 3 ? "TLSv1.3" : "TLSv1.2");
    ck_assert_str_eq(tls_conn_cipher(p.conn), k->cipher);
    ck_assert_str_eq(tls_conn_sni(p.conn), k->sni);
    ck_assert_str_eq(tls_conn_alpn(p.conn), "http/1.1");
    ck_assert_str_eq(tls_conn_key_alg(p.conn), k->key_alg);
    ck_assert_int_eq(tls_conn_resumed(p.conn), TLS_RESUMED_NO);
    echo(&p, 1);
    echo(&p, 40000);
    park_unpark(&p);
    echo(&p, 16384);
    close_notify_seen(&p);
    pair_close(&p);
}
END_TEST

/* The client's close_notify after an unpark. */
START_TEST(client_close_after_unpark)
{
    struct pair p;
    char b[8];
    size_t n;
    pair_open(&p, _i == 0 ? 2 : 3, NULL, "example.test", NULL);
    echo(&p, 10);
    park_unpark(&p);
    wolfSSL_shutdown(p.c);
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_CLOSED);
    refused(p.conn, "closed");
    pair_close(&p);
}
END_TEST

/*
 * TLS 1.3 KeyUpdate from the client (answered by the server's), before a
 * park and after each unpark: the traffic secrets go with the blob.
 */
START_TEST(key_update)
{
    struct pair p;
    pair_open(&p, 3, _i == 0 ? "TLS13-AES128-GCM-SHA256" : "TLS13-AES256-GCM-SHA384",
              "example.test", NULL);
    echo(&p, 10);
    ck_assert_int_eq(wolfSSL_update_keys(p.c), WOLFSSL_SUCCESS);
    echo(&p, 10);
    park_unpark(&p);
    echo(&p, 10);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(wolfSSL_update_keys(p.c), WOLFSSL_SUCCESS);
        echo(&p, 1000);
        park_unpark(&p);
        echo(&p, 10);
    }
    close_notify_seen(&p);
    pair_close(&p);
}
END_TEST

/* The tag over the first n - BLOB_TAG bytes, made again. */
static void retag(uint8_t *blob, size_t n)
{
    uint8_t h[WC_SHA256_DIGEST_SIZE];
    ck_assert_int_eq(wc_Sha256Hash(blob, (word32)(n - BLOB_TAG), h), 0);
    memcpy(blob + n - BLOB_TAG, h, BLOB_TAG);
}

/*
 * Without the traffic secrets (zeroed in the blob), records go on, but a
 * KeyUpdate derives keys the client does not have: what wolfSSL's export
 * alone gives.
 */
START_TEST(key_update_needs_the_secrets)
{
    struct pair p;
    uint8_t blob[TLS_PARK_MAX];
    char b[128];
    size_t got;
    pair_open(&p, 3, NULL, "example.test", NULL);
    echo(&p, 10);
    size_t n = park(&p, blob, sizeof blob);
    ck_assert_uint_gt(blob[BLOB_SECRET], 0);
    memset(blob + BLOB_HDR + blob[BLOB_SNI] + blob[BLOB_ALPN] + blob[BLOB_MSGS], 0,
           2 * (size_t)blob[BLOB_SECRET]);
    retag(blob, n);
    unpark(&p, blob, n);
    echo(&p, 10);
    ck_assert_int_eq(wolfSSL_update_keys(p.c), WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_write(p.c, "after", 5), 5);
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &got), TLS_IO_ERROR);
    tls_conn_error(p.conn, -1, b, sizeof b);
    printf("tls_park: KeyUpdate without the secrets: %s\n", b);
    pair_close(&p);
}
END_TEST

/* A ticket issued before a park resumes later, and a resumed connection
 * says so after its unpark. */
START_TEST(ticket_resumes)
{
    struct pair p;
    int version = _i == 0 ? 2 : 3;
    pair_open(&p, version, NULL, "example.test", NULL);
    echo(&p, 10);                           /* TLS 1.3: the client reads its ticket */
    WOLFSSL_SESSION *sess = wolfSSL_get1_session(p.c);
    park_unpark(&p);
    echo(&p, 10);
    close_notify_seen(&p);
    pair_close(&p);

    pair_open(&p, version, NULL, "example.test", sess);
    ck_assert_int_eq(tls_conn_resumed(p.conn), TLS_RESUMED_TICKET);
    echo(&p, 10);
    park_unpark(&p);
    ck_assert_int_eq(tls_conn_resumed(p.conn), TLS_RESUMED_TICKET);
    echo(&p, 10);
    close_notify_seen(&p);
    pair_close(&p);
    wolfSSL_SESSION_free(sess);
}
END_TEST

/* A second record read ahead but not yet given to wolfSSL; then part of
 * a record wolfSSL read but could not decrypt yet. */
START_TEST(refused_read_ahead)
{
    struct pair p;
    char b[16];
    size_t n;
    pair_open(&p, _i == 0 ? 2 : 3, NULL, "example.test", NULL);
    echo(&p, 10);
    ck_assert_int_eq(wolfSSL_write(p.c, "one", 3), 3);
    ck_assert_int_eq(wolfSSL_write(p.c, "two", 3), 3);
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_OK);
    ck_assert(n == 3 && memcmp(b, "one", 3) == 0);
    ck_assert(tls_conn_pending(p.conn));
    refused(p.conn, "data pending: read ahead");
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_OK);
    ck_assert(n == 3 && memcmp(b, "two", 3) == 0);
    park_unpark(&p);
    echo(&p, 10);
    pair_close(&p);
}
END_TEST

/* Decrypted bytes not yet read. */
START_TEST(refused_unread)
{
    struct pair p;
    char b[16];
    size_t n;
    pair_open(&p, _i == 0 ? 2 : 3, NULL, "example.test", NULL);
    ck_assert_int_eq(wolfSSL_write(p.c, "hello", 5), 5);
    ck_assert_int_eq(tls_conn_read(p.conn, b, 2, &n), TLS_IO_OK);
    refused(p.conn, "data pending: decrypted");
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_OK);
    ck_assert(n == 3 && memcmp(b, "llo", 3) == 0);
    park_unpark(&p);
    echo(&p, 10);
    pair_close(&p);
}
END_TEST

/* Part of a record (3 bytes of its header; then the header and 3 bytes
 * more) has come and wolfSSL holds it. */
START_TEST(refused_partial_record)
{
    struct pair p;
    int cp[2];
    uint8_t rec[256];
    char b[16];
    size_t n;
    pair_open(&p, _i == 0 ? 2 : 3, NULL, "example.test", NULL);
    echo(&p, 10);
    pair_sockets(cp);                       /* the client's record, caught */
    wolfSSL_set_fd(p.c, cp[1]);
    ck_assert_int_eq(wolfSSL_write(p.c, "partial", 7), 7);
    ssize_t len = read(cp[0], rec, sizeof rec);
    ck_assert_int_gt(len, 8);
    wolfSSL_set_fd(p.c, p.sv[1]);
    tls_conn_set_nonblock(p.conn, true);
    ck_assert_int_eq(write(p.sv[1], rec, 3), 3);
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_WANT_READ);
    refused(p.conn, "data pending: part of a record");
    ck_assert_int_eq(write(p.sv[1], rec + 3, 5), 5);
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_WANT_READ);
    refused(p.conn, "data pending: part of a record");
    ck_assert_int_eq(write(p.sv[1], rec + 8, (size_t)len - 8), len - 8);
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_OK);
    ck_assert(n == 7 && memcmp(b, "partial", 7) == 0);
    tls_conn_set_nonblock(p.conn, false);
    park_unpark(&p);
    echo(&p, 10);
    close(cp[0]);
    close(cp[1]);
    pair_close(&p);
}
END_TEST

/* A write that could not all be sent (the client reads nothing). */
START_TEST(refused_output_pending)
{
    static uint8_t big[16384];
    struct pair p;
    enum tls_io r = TLS_IO_OK;
    pair_open(&p, 3, NULL, "example.test", NULL);
    tls_conn_set_nonblock(p.conn, true);
    for (int i = 0; i < 1000 && r == TLS_IO_OK; i++)
        r = tls_conn_write(p.conn, big, sizeof big);
    ck_assert_int_eq(r, TLS_IO_WANT_WRITE);
    refused(p.conn, "output pending");
    pair_close(&p);
}
END_TEST

/* A record that does not decrypt has failed the connection. */
START_TEST(refused_failed)
{
    static const uint8_t junk[] = "\x17\x03\x03\x00\x20" "0123456789abcdef0123456789abcdef";
    struct pair p;
    char b[16];
    size_t n;
    pair_open(&p, _i == 0 ? 2 : 3, NULL, "example.test", NULL);
    echo(&p, 10);
    ck_assert_int_eq(write(p.sv[1], junk, sizeof junk - 1), (ssize_t)sizeof junk - 1);
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_ERROR);
    refused(p.conn, "closed");         /* wolfSSL sent its fatal alert */
    pair_close(&p);
}
END_TEST

/* Not a frontend's connection; a frontend's that failed its handshake. */
START_TEST(refused_not_established)
{
    struct pair p;
    pthread_t t;
    WOLFSSL_CTX *ctx = pair_server_ctx(unit_cert("example.test.pem"),
                                       unit_cert("example.test.key"), err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    memset(&p, 0, sizeof p);
    pair_sockets(p.sv);
    struct tls_conn *bare = tls_conn_new(ctx, p.sv[0]);
    ck_assert_ptr_nonnull(bare);
    refused(bare, "not a frontend's connection");
    tls_conn_free(bare);
    tls_ctx_free(ctx);

    pthread_create(&t, NULL, accept_thread, &p);
    ck_assert_int_eq(write(p.sv[1], "GET / HTTP/1.1\r\n\r\n", 18), 18);
    pthread_join(t, NULL);
    ck_assert_int_eq(p.result, TLS_IO_ERROR);
    refused(p.conn, "handshake not done");
    pair_close(&p);
}
END_TEST

/* Every truncation and every single-bit flip is refused; so are blobs
 * damaged behind a good hash (wolfSSL's import then sees the damage, or
 * accepts it: neither crashes); the blob itself then still works. */
START_TEST(damaged_blobs)
{
    struct pair p;
    uint8_t blob[TLS_PARK_MAX], bad[TLS_PARK_MAX];
    pair_open(&p, _i == 0 ? 2 : 3, NULL, "example.test", NULL);
    echo(&p, 10);
    size_t n = park(&p, blob, sizeof blob);
    for (size_t len = 0; len < n; len++)
        ck_assert_ptr_null(tls_conn_unpark(front, p.sv[0], blob, len, err, sizeof err));
    for (size_t i = 0; i < n * 8; i++) {
        memcpy(bad, blob, n);
        bad[i / 8] ^= (uint8_t)(1u << (i % 8));
        ck_assert_ptr_null(tls_conn_unpark(front, p.sv[0], bad, n, err, sizeof err));
    }
    size_t taken = 0;
    for (size_t i = 0; i < (n - BLOB_TAG) * 8; i++) {
        memcpy(bad, blob, n);
        bad[i / 8] ^= (uint8_t)(1u << (i % 8));
        retag(bad, n);
        struct tls_conn *c = tls_conn_unpark(front, p.sv[0], bad, n, err, sizeof err);
        taken += c != NULL;
        tls_conn_free(c);
    }
    printf("tls_park: %zu of %zu bit flips behind a good hash imported\n", taken,
           (n - BLOB_TAG) * 8);
    memcpy(bad, blob, n);
    bad[BLOB_VERSION + 3] ^= 1;             /* another wolfSSL version */
    retag(bad, n);
    ck_assert_ptr_null(tls_conn_unpark(front, p.sv[0], bad, n, err, sizeof err));
    ck_assert_msg(strstr(err, "version"), "%s", err);
    unpark(&p, blob, n);
    echo(&p, 10);
    close_notify_seen(&p);
    pair_close(&p);
}
END_TEST

/* ---- openssl s_client as the client ---- */

struct sclient {
    pid_t pid;
    int in, out;            /* its stdin; its stdout and stderr */
    char seen[64 * 1024];   /* all it said */
    size_t len;
};

static void *accept_tcp_thread(void *arg)
{
    struct pair *p = arg;
    p->sv[0] = accept(p->sv[1], NULL, NULL);
    ck_assert_int_ge(p->sv[0], 0);
    close(p->sv[1]);
    p->sv[1] = -1;
    return accept_thread(p);
}

/* s_client (TLS 1.<version>) connected to a frontend connection in p. */
static void sclient_open(struct sclient *s, struct pair *p, int version)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t alen = sizeof a;
    int in[2], out[2];
    char addr[32];
    pthread_t t;
    memset(p, 0, sizeof *p);
    ck_assert_int_ge(p->sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), 0);
    ck_assert_int_eq(bind(p->sv[1], (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(listen(p->sv[1], 1), 0);
    ck_assert_int_eq(getsockname(p->sv[1], (struct sockaddr *)&a, &alen), 0);
    snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
    pthread_create(&t, NULL, accept_tcp_thread, p);
    ck_assert_int_eq(pipe2(in, O_CLOEXEC), 0);
    ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
    memset(s, 0, sizeof *s);
    if ((s->pid = fork()) == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        execlp("openssl", "openssl", "s_client", "-connect", addr, version == 2 ? "-tls1_2"
               : "-tls1_3", "-servername", "example.test", (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    s->in = in[1];
    s->out = out[0];
    pthread_join(t, NULL);
    ck_assert_msg(p->result == TLS_IO_OK, "%s", p->reason);
    tls_conn_set_deadline(p->conn, clock_now_ms() + 5000);
}

static void sclient_say(struct sclient *s, const char *line)
{
    ck_assert_int_eq(write(s->in, line, strlen(line)), (ssize_t)strlen(line));
}

/* Waits (5 s at most) until s_client has said what; forgets all up to it. */
static void sclient_wait(struct sclient *s, const char *what)
{
    int64_t end = clock_now_ms() + 5000;
    char *at;
    while (!(at = strstr(s->seen, what))) {
        struct pollfd pf = { .fd = s->out, .events = POLLIN };
        int64_t left = end - clock_now_ms();
        ck_assert_msg(left > 0 && poll(&pf, 1, (int)left) == 1, "s_client did not say '%s': %s",
                      what, s->seen);
        ssize_t n = read(s->out, s->seen + s->len, sizeof s->seen - 1 - s->len);
        ck_assert_msg(n > 0, "s_client ended without '%s': %s", what, s->seen);
        s->len += (size_t)n;
        s->seen[s->len] = '\0';
    }
    at += strlen(what);
    s->len -= (size_t)(at - s->seen);
    memmove(s->seen, at, s->len + 1);
}

/* The server reads line (and answers reply) after s_client was told it. */
static void sclient_echo(struct sclient *s, struct pair *p, const char *line, const char *reply)
{
    char b[64];
    sclient_say(s, line);
    server_read(p->conn, b, strlen(line));
    ck_assert(memcmp(b, line, strlen(line)) == 0);
    ck_assert_int_eq(tls_conn_write(p->conn, reply, strlen(reply)), TLS_IO_OK);
    sclient_wait(s, reply);
}

/* The server's close_notify reaches s_client, which then ends. */
static void close_notify_seen_by(struct sclient *s, struct pair *p)
{
    tls_conn_close_notify(p->conn);
    sclient_wait(s, "closed");
}

static void sclient_close(struct sclient *s, struct pair *p)
{
    int status;
    close(s->in);
    waitpid(s->pid, &status, 0);
    close(s->out);
    pair_close(p);
}

/* OpenSSL notices nothing either: data, KeyUpdate requested by the client
 * ('K') and not ('k'), close_notify from the server. */
START_TEST(openssl_client)
{
    struct sclient s;
    struct pair p;
    int version = _i == 0 ? 2 : 3;
    sclient_open(&s, &p, version);
    sclient_echo(&s, &p, "ping\n", "pong-1\n");
    park_unpark(&p);
    sclient_echo(&s, &p, "again\n", "pong-2\n");
    for (int i = 0; version == 3 && i < 2; i++) {
        sclient_say(&s, i == 0 ? "K\n" : "k\n");
        sclient_wait(&s, "KEYUPDATE");
        park_unpark(&p);
        sclient_echo(&s, &p, "updated\n", i == 0 ? "pong-3\n" : "pong-4\n");
    }
    close_notify_seen_by(&s, &p);
    sclient_close(&s, &p);
}
END_TEST

/* A TLS 1.2 renegotiation ('R') is refused after an unpark as before it:
 * a duplicate ClientHello. */
START_TEST(openssl_renegotiation)
{
    struct sclient s;
    struct pair p;
    char b[256];
    size_t n;
    sclient_open(&s, &p, 2);
    sclient_echo(&s, &p, "ping\n", "pong-1\n");
    if (_i == 1)
        park_unpark(&p);
    sclient_say(&s, "R\n");
    sclient_wait(&s, "RENEGOTIATING");
    sclient_say(&s, "more\n");
    ck_assert_int_eq(tls_conn_read(p.conn, b, sizeof b, &n), TLS_IO_ERROR);
    tls_conn_error(p.conn, -1, b, sizeof b);
    printf("tls_park: renegotiation %s: %s\n", _i ? "after an unpark" : "(not parked)", b);
    ck_assert_msg(strstr(b, "(-395)"), "%s", b);    /* DUPLICATE_MSG_E */
    sclient_close(&s, &p);
}
END_TEST

/* This wolfSSL has no session export: both ways refuse, saying why. */
START_TEST(unsupported)
{
    uint8_t blob[TLS_PARK_MAX] = { 0 };
    ck_assert_int_eq(tls_conn_park(NULL, blob, sizeof blob, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not supported"));
    ck_assert_ptr_null(tls_conn_unpark(front, 0, blob, sizeof blob, err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "not supported"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_park");
    TCase *tcase = tcase_create("tls_park");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_set_timeout(tcase, 120);
    if (!tls_park_supported()) {
        printf("check_tls_park: this wolfSSL has no session export: only 'unsupported' runs "
               "(the default build, WOLFSSL=fast, runs them all)\n");
        tcase_add_test(tcase, unsupported);
        suite_add_tcase(s, tcase);
        return s;
    }
    tcase_add_loop_test(tcase, park_and_back, 0, (int)(sizeof cases / sizeof *cases));
    tcase_add_loop_test(tcase, client_close_after_unpark, 0, 2);
    tcase_add_loop_test(tcase, key_update, 0, 2);
    tcase_add_test(tcase, key_update_needs_the_secrets);
    tcase_add_loop_test(tcase, ticket_resumes, 0, 2);
    tcase_add_loop_test(tcase, refused_read_ahead, 0, 2);
    tcase_add_loop_test(tcase, refused_unread, 0, 2);
    tcase_add_loop_test(tcase, refused_partial_record, 0, 2);
    tcase_add_test(tcase, refused_output_pending);
    tcase_add_loop_test(tcase, refused_failed, 0, 2);
    tcase_add_test(tcase, refused_not_established);
    tcase_add_loop_test(tcase, damaged_blobs, 0, 2);
    if (system("openssl version >/dev/null 2>&1") == 0) {
        tcase_add_loop_test(tcase, openssl_client, 0, 2);
        tcase_add_loop_test(tcase, openssl_renegotiation, 0, 2);
    } else {
        printf("check_tls_park: no openssl command: the s_client tests are skipped\n");
    }
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
