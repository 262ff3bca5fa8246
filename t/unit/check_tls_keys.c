#include "tlspair.h"

#include "keystore.h"
#include "tls_int.h"

static char err[1024];
static struct keystore *store;
static int calls, last_op;
static bool refuse;

/* The test's signer: the key process's work, in this process. */
static int test_signer(void *arg, const struct keyproto_req *rq, struct keyproto_rep *rep,
                       char *why, size_t n)
{
    (void)arg;
    calls++;
    last_op = rq->op;
    if (refuse) {
        snprintf(why, n, "test says no");
        return -1;
    }
    keystore_sign(store, rq, rep);
    return 0;
}

struct job {
    WOLFSSL_CTX *ctx;
    int fd;
    enum tls_io r;
    char why[256];
};

static void *serve(void *arg)
{
    struct job *j = arg;
    struct tls_conn *conn = tls_conn_new(j->ctx, j->fd);
    ck_assert_ptr_nonnull(conn);
    j->r = tls_conn_accept(conn, 5, j->why, sizeof j->why);
    tls_conn_free(conn);
    close(j->fd);                   /* a failed handshake ends the client's too */
    pair_thread_done();
    return NULL;
}

/* A handshake against cert whose key (key, in the test's store) is "remote". */
static enum tls_io handshake(const char *cert, const char *key, int version,
                             const char *sigalgs, char *why)
{
    struct key_conf kc = { key, NULL, cert, "t.conf:1" };
    store = keystore_new(err, sizeof err);
    ck_assert_msg(keystore_add(store, &kc, NULL, err, sizeof err) == 0, "%s", err);
    struct tls_conf tc = pair_tls_conf();
    struct cert_conf cc = { .cert = (char *)cert, .key = (char *)key, .key_remote = true,
                            .key_id = 0, .where = "test.conf:9" };
    struct frontend_conf fe = { .name = "t", .ncerts = 1, .certs = &cc, .where = "t.conf:8" };
    struct job j = { .ctx = tls_server_ctx_new(&tc, &fe, err, sizeof err) };
    ck_assert_msg(j.ctx != NULL, "%s", err);
    int sv[2];
    pthread_t t;
    pair_sockets(sv);
    j.fd = sv[0];
    calls = 0;
    pthread_create(&t, NULL, serve, &j);
    WOLFSSL *c = pair_client(sv[1], version);
    if (sigalgs)
        wolfSSL_set1_sigalgs_list(c, sigalgs);
    wolfSSL_connect(c);
    wolfSSL_free(c);
    close(sv[1]);
    pthread_join(t, NULL);
    tls_ctx_free(j.ctx);
    keystore_free(store);
    strcpy(why, j.why);
    return j.r;
}

START_TEST(ecdsa_both_versions)
{
    char why[256];
    tls_set_signer(test_signer, NULL);
    for (int v = 2; v <= 3; v++) {
        ck_assert_int_eq(handshake(unit_cert("example.test.pem"), unit_cert("example.test.key"),
                                   v, NULL, why), TLS_IO_OK);
        ck_assert_int_eq(calls, 1);
        ck_assert_int_eq(last_op, KEY_OP_ECDSA);
    }
}
END_TEST

START_TEST(rsa_pss_and_pkcs1)
{
    char why[256];
    tls_set_signer(test_signer, NULL);
    ck_assert_int_eq(handshake(unit_cert("rsa.test.pem"), unit_cert("rsa.test.key"), 3, NULL,
                               why), TLS_IO_OK);
    ck_assert_int_eq(last_op, KEY_OP_RSA_PSS);
    ck_assert_int_eq(handshake(unit_cert("rsa.test.pem"), unit_cert("rsa.test.key"), 2,
                               "RSA+SHA256", why), TLS_IO_OK);
    ck_assert_int_eq(last_op, KEY_OP_RSA_PKCS1);
}
END_TEST

START_TEST(a_failed_signature_fails_the_handshake)
{
    char why[256];
    tls_set_signer(test_signer, NULL);
    refuse = true;
    ck_assert_int_ne(handshake(unit_cert("example.test.pem"), unit_cert("example.test.key"), 3,
                               NULL, why), TLS_IO_OK);
    refuse = false;
    ck_assert_int_eq(calls, 1);
    ck_assert_msg(strstr(why, "signing: test says no") != NULL, "%s", why);
}
END_TEST

START_TEST(chain_text_without_the_key)
{
    char *both = unit_tempfile("");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", unit_cert("example.test.pem"),
             unit_cert("example.test.key"), both);
    ck_assert_int_eq(system(cmd), 0);
    size_t len = 0;
    char why[128], *pem = tls_read_public_pem(both, &len, why, sizeof why);
    ck_assert_ptr_nonnull(pem);
    ck_assert_ptr_null(strstr(pem, "PRIVATE KEY"));
    ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    FILE *f = fopen(unit_cert("example.test.key"), "r");
    char line[256];
    while (fgets(line, sizeof line, f))
        if (line[0] != '-' && strlen(line) > 20) {
            line[strcspn(line, "\n")] = 0;
            ck_assert_ptr_null(strstr(pem, line));
        }
    fclose(f);
    tls_free_pem(pem, len + 1);
    unlink(both);
    free(both);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_keys");
    TCase *tc = tcase_create("tls_keys");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ecdsa_both_versions);
    tcase_add_test(tc, rsa_pss_and_pkcs1);
    tcase_add_test(tc, a_failed_signature_fails_the_handshake);
    tcase_add_test(tc, chain_text_without_the_key);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
