/* tls_resume.c: sessions and tickets shared by the workers. */
#include "tlspair.h"

#include "tls_int.h"

#include "clienthello.h"
#include "clock.h"
#include "sesscache.h"
#include "stats.h"
#include "ticketkeys.h"

static char err[512];

static void setup(void)
{
    tls_global_init();
}

static void teardown(void)
{
    tls_global_cleanup();
}

START_TEST(resumed_names)
{
    ck_assert_str_eq(tls_resumed_name(TLS_RESUMED_NO), "no");
    ck_assert_str_eq(tls_resumed_name(TLS_RESUMED_ID), "id");
    ck_assert_str_eq(tls_resumed_name(TLS_RESUMED_TICKET), "ticket");
}
END_TEST

/* A frontend's scope comes from the contents of its client_ca, not its
 * path: the same path with other contents is another scope, the same
 * contents at another path the same one. Its client_crl is not in it, but
 * makes resumed sessions' certificates checked. */
static void rewrite(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(scope_from_contents)
{
    struct frontend_conf fe = { .name = "t", .verify_client = VERIFY_CLIENT_REQUIRED };
    struct tls_resume a, b, c, d, e;
    char *ca = unit_tempfile("CA one\n"), *ca2 = unit_tempfile("CA one\n");
    fe.client_ca = ca;
    tls_resume_init(&a, NULL, &fe);
    ck_assert(!a.check_crl);
    fe.client_ca = ca2;
    tls_resume_init(&b, NULL, &fe);
    ck_assert_mem_eq(a.scope, b.scope, sizeof a.scope);
    rewrite(ca2, "CA two\n");
    tls_resume_init(&c, NULL, &fe);
    ck_assert_int_ne(memcmp(a.scope, c.scope, sizeof a.scope), 0);
    fe.client_crl = ca;
    tls_resume_init(&d, NULL, &fe);
    ck_assert_mem_eq(c.scope, d.scope, sizeof c.scope);
    ck_assert(d.check_crl);
    fe.verify_client = VERIFY_CLIENT_OPTIONAL;
    tls_resume_init(&e, NULL, &fe);
    ck_assert_int_ne(memcmp(d.scope, e.scope, sizeof d.scope), 0);
    unlink(ca);
    unlink(ca2);
    free(ca);
    free(ca2);
}
END_TEST

/* A connection's binding: the scope, the certificate, the name sent
 * (lower-cased); each of the three makes another binding. */
START_TEST(binding)
{
    struct frontend_conf fe = { .name = "t" }, fe2 = { .name = "u" };
    struct tls_resume rs, rs2;
    struct tls_conn c[6];
    uint8_t fp1[32] = { 1 }, fp2[32] = { 2 };
    memset(c, 0, sizeof c);
    tls_resume_init(&rs, NULL, &fe);
    tls_resume_init(&rs2, NULL, &fe2);
    tls_resume_bind(&rs, &c[0], fp1, "a.test");
    tls_resume_bind(&rs, &c[1], fp1, "A.Test");
    tls_resume_bind(&rs, &c[2], fp1, "b.test");
    tls_resume_bind(&rs, &c[3], fp2, "a.test");
    tls_resume_bind(&rs2, &c[4], fp1, "a.test");
    tls_resume_bind(&rs, &c[5], fp1, "");
    ck_assert(c[0].bound && c[5].bound);
    ck_assert_mem_eq(c[0].binding, c[1].binding, TICKET_SCOPE_LEN);
    for (int i = 2; i < 6; i++)
        ck_assert_msg(memcmp(c[0].binding, c[i].binding, TICKET_SCOPE_LEN) != 0, "%d", i);
}
END_TEST

/* A frontend's handshake, in a thread. */
struct fe_job {
    struct tls_frontend *f;
    int fd;
    enum tls_io result;
    enum tls_resumed resumed;
    struct tls_peer peer;
};

static const char *client_cert;     /* the client's certificate (a name in the test
                                     * certificates); NULL: none */
static struct tls_peer last_peer;   /* the server's view of the last handshake's */

static void *fe_thread(void *arg)
{
    static uint8_t rbuf[CLIENT_HELLO_MAX];
    struct fe_job *j = arg;
    struct tls_conn *conn = NULL;
    char reason[256];
    fcntl(j->fd, F_SETFL, O_NONBLOCK);
    j->result = tls_frontend_accept(j->f, &conn, j->fd, rbuf, sizeof rbuf, 5, reason,
                                    sizeof reason);
    j->resumed = j->result == TLS_IO_OK ? tls_conn_resumed(conn) : TLS_RESUMED_NO;
    if (j->result == TLS_IO_OK)
        tls_conn_peer(conn, &j->peer);
    tls_conn_free(conn);
    pair_thread_done();
    return NULL;
}

/* One handshake with f (TLS 1.<version>), offering *sess; the new
 * session replaces it. */
static enum tls_resumed handshake_v(struct tls_frontend *f, WOLFSSL_SESSION **sess, int version)
{
    int sv[2];
    pthread_t t;
    struct fe_job j = { .f = f };
    pair_sockets(sv);
    j.fd = sv[0];
    pthread_create(&t, NULL, fe_thread, &j);
    WOLFSSL *c = pair_client(sv[1], version);
    ck_assert_int_eq(wolfSSL_UseSessionTicket(c), WOLFSSL_SUCCESS);
    if (client_cert) {
        char name[64];
        snprintf(name, sizeof name, "%s.pem", client_cert);
        ck_assert_int_eq(wolfSSL_use_certificate_chain_file(c, unit_cert(name)),
                         WOLFSSL_SUCCESS);
        snprintf(name, sizeof name, "%s.key", client_cert);
        ck_assert_int_eq(wolfSSL_use_PrivateKey_file(c, unit_cert(name), WOLFSSL_FILETYPE_PEM),
                         WOLFSSL_SUCCESS);
    }
    if (*sess)
        wolfSSL_set_session(c, *sess);
    ck_assert_int_eq(wolfSSL_connect(c), WOLFSSL_SUCCESS);
    pthread_join(t, NULL);
    ck_assert_int_eq(j.result, TLS_IO_OK);
    last_peer = j.peer;
    if (version == 3) {         /* the ticket comes after the handshake: read to EOF */
        char b;
        shutdown(sv[0], SHUT_WR);
        wolfSSL_read(c, &b, 1);
    }
    if (*sess)
        wolfSSL_SESSION_free(*sess);
    *sess = wolfSSL_get1_session(c);
    wolfSSL_free(c);
    close(sv[0]);
    close(sv[1]);
    return j.resumed;
}

static enum tls_resumed handshake(struct tls_frontend *f, WOLFSSL_SESSION **sess)
{
    return handshake_v(f, sess, 2);
}

static struct tls_frontend *frontend(const struct tls_resumption *r)
{
    static struct cert_conf cc;
    static struct frontend_conf fe = { .name = "t", .ncerts = 1, .certs = &cc, .where = "x:2" };
    struct tls_conf tc = pair_tls_conf();
    cc = (struct cert_conf){ .cert = (char *)unit_cert("example.test.pem"),
                             .key = (char *)unit_cert("example.test.key"), .where = "x:1" };
    struct tls_frontend *f = tls_frontend_new(&tc, &fe, r, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);
    return f;
}

/* A frontend without resumption: every handshake is a full one. */
START_TEST(full_handshakes)
{
    struct tls_frontend *f = frontend(NULL);
    WOLFSSL_SESSION *sess = NULL;
    ck_assert_int_eq(handshake(f, &sess), TLS_RESUMED_NO);
    ck_assert_int_eq(handshake(f, &sess), TLS_RESUMED_NO);
    wolfSSL_SESSION_free(sess);
    tls_frontend_free(f);
}
END_TEST

/* Tickets resume through the frontend's own resumption, counted in its
 * counters; a frontend made later without tickets (a reload) leaves the
 * first one as it was. */
START_TEST(ticket_from_the_frontend)
{
    /* The regions are page-aligned in the real segment. */
    static _Alignas(4096) uint8_t keys_region[64 * 1024], stats_region[64 * 1024];
    ck_assert_uint_le(ticketkeys_region_size(), sizeof keys_region);
    ck_assert_uint_le(stats_region_size(1), sizeof stats_region);
    struct ticketkeys *keys = ticketkeys_init(keys_region);
    struct ticket_key k;
    ck_assert_int_eq(ticketkeys_generate(&k), 0);
    ticketkeys_rotate(keys, &k, clock_real_ms(), 3600000);
    struct stats *st = stats_init(stats_region, 1);

    struct tls_resumption r = { .keys = keys, .cache_timeout = 300, .ticket_lifetime = 3600 };
    struct tls_frontend *f = frontend(&r);
    tls_frontend_set_stats(f, stats_worker(st, 0));

    WOLFSSL_SESSION *sess = NULL;
    ck_assert_int_eq(handshake(f, &sess), TLS_RESUMED_NO);
    struct tls_frontend *next = frontend(NULL);
    ck_assert_int_eq(handshake(f, &sess), TLS_RESUMED_TICKET);
    tls_frontend_free(next);
    ck_assert_uint_eq(stats_total(st, ST_CONNECTIONS), 2);
    ck_assert_uint_eq(stats_total(st, ST_FULL), 1);
    ck_assert_uint_eq(stats_total(st, ST_RESUMED_TICKET12), 1);
    wolfSSL_SESSION_free(sess);
    tls_frontend_free(f);
    stats_free(st);
}
END_TEST

/* A TLS 1.3 ticket resumes only within ticket_max_age of the full
 * handshake that began its chain, though each resumption brings a new
 * ticket; past it, a full handshake, not a decrypt failure. (A wolfSSL
 * TLS 1.2 client aborts when its ticket is refused: NOTES.) */
START_TEST(ticket_chain_max_age)
{
    static _Alignas(4096) uint8_t keys_region[64 * 1024], stats_region[64 * 1024];
    struct ticketkeys *keys = ticketkeys_init(keys_region);
    struct ticket_key k;
    ck_assert_int_eq(ticketkeys_generate(&k), 0);
    ticketkeys_rotate(keys, &k, clock_real_ms(), 3600000);
    struct stats *st = stats_init(stats_region, 1);
    struct tls_resumption r = { .keys = keys, .cache_timeout = 300, .ticket_lifetime = 3600,
                                .ticket_max_age = 2 };
    struct tls_frontend *f = frontend(&r);
    tls_frontend_set_stats(f, stats_worker(st, 0));
    struct timespec pause = { 1, 100 * 1000 * 1000 };

    WOLFSSL_SESSION *sess = NULL;
    ck_assert_int_eq(handshake_v(f, &sess, 3), TLS_RESUMED_NO);
    nanosleep(&pause, NULL);
    ck_assert_int_eq(handshake_v(f, &sess, 3), TLS_RESUMED_TICKET);   /* 1.1 s: a new ticket */
    nanosleep(&pause, NULL);
    ck_assert_int_eq(handshake_v(f, &sess, 3), TLS_RESUMED_NO);       /* 2.2 s from the first */
    ck_assert_uint_eq(stats_total(st, ST_FULL), 2);
    ck_assert_uint_eq(stats_total(st, ST_TICKET_FAIL), 0);
    ck_assert_int_eq(handshake_v(f, &sess, 3), TLS_RESUMED_TICKET);   /* a new chain */
    wolfSSL_SESSION_free(sess);
    tls_frontend_free(f);
    stats_free(st);
}
END_TEST

/* A TLS 1.3 ticket made with a client certificate: its resumption shows
 * the certificate's subject and CN as the full handshake did (the shared
 * cache keeps them); without the cache's record, a full handshake. */
START_TEST(ticket_keeps_the_client)
{
    static _Alignas(4096) uint8_t keys_region[64 * 1024], cache_region[1 << 20],
        other_region[1 << 20];
    struct ticketkeys *keys = ticketkeys_init(keys_region);
    struct sesscache *cache = sesscache_init(cache_region, sizeof cache_region, 300000, 1);
    struct ticket_key k;
    ck_assert_int_eq(ticketkeys_generate(&k), 0);
    ticketkeys_rotate(keys, &k, clock_real_ms(), 3600000);
    struct tls_resumption r = { .keys = keys, .cache = cache, .cache_timeout = 300,
                                .ticket_lifetime = 3600 };
    static struct cert_conf cc;
    static struct frontend_conf fe = { .name = "cc", .ncerts = 1, .certs = &cc, .where = "x:2",
                                       .verify_client = VERIFY_CLIENT_REQUIRED,
                                       .verify_depth = 4 };
    static char cert[512], key[512], ca[512];     /* unit_cert's buffers are reused */
    struct tls_conf tc = pair_tls_conf();
    snprintf(cert, sizeof cert, "%s", unit_cert("example.test.pem"));
    snprintf(key, sizeof key, "%s", unit_cert("example.test.key"));
    snprintf(ca, sizeof ca, "%s", unit_cert("ca.pem"));
    cc = (struct cert_conf){ .cert = cert, .key = key, .where = "x:1" };
    fe.client_ca = ca;
    struct tls_frontend *f = tls_frontend_new(&tc, &fe, &r, err, sizeof err);
    ck_assert_msg(f != NULL, "%s", err);

    WOLFSSL_SESSION *sess = NULL;
    client_cert = "client1";
    ck_assert_int_eq(handshake_v(f, &sess, 3), TLS_RESUMED_NO);
    ck_assert(last_peer.presented && last_peer.session);
    ck_assert_str_eq(last_peer.cn, "client1");
    ck_assert_int_eq(handshake_v(f, &sess, 3), TLS_RESUMED_TICKET);
    ck_assert(!last_peer.presented && last_peer.session);
    ck_assert_str_eq(last_peer.subject, "/CN=client1");
    ck_assert_str_eq(last_peer.cn, "client1");
    /* The chain's next ticket names it too. */
    ck_assert_int_eq(handshake_v(f, &sess, 3), TLS_RESUMED_TICKET);
    ck_assert_str_eq(last_peer.cn, "client1");
    /* The same frontend with another (empty) cache: the ticket decrypts,
     * but without the record it makes a full handshake. */
    r.cache = sesscache_init(other_region, sizeof other_region, 300000, 2);
    struct tls_frontend *f2 = tls_frontend_new(&tc, &fe, &r, err, sizeof err);
    ck_assert_msg(f2 != NULL, "%s", err);
    ck_assert_int_eq(handshake_v(f2, &sess, 3), TLS_RESUMED_NO);
    ck_assert(last_peer.presented);
    client_cert = NULL;
    wolfSSL_SESSION_free(sess);
    tls_frontend_free(f);
    tls_frontend_free(f2);
    sesscache_free(cache);
    sesscache_free(r.cache);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_resume");
    TCase *tcase = tcase_create("tls_resume");
    tcase_add_checked_fixture(tcase, setup, teardown);
    tcase_add_test(tcase, resumed_names);
    tcase_add_test(tcase, scope_from_contents);
    tcase_add_test(tcase, binding);
    tcase_add_test(tcase, full_handshakes);
    tcase_add_test(tcase, ticket_from_the_frontend);
    tcase_add_test(tcase, ticket_chain_max_age);
    tcase_add_test(tcase, ticket_keeps_the_client);
    suite_add_tcase(s, tcase);
    return s;
}

UNIT_MAIN(suite)
