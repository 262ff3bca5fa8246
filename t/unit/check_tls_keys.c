/* tls_keys.c: handshakes whose private key is elsewhere, every signature
 * asked of the process's signer; and certificate text without its key. */
#include "tlspair.h"

#include <signal.h>

#include <wolfssl/wolfcrypt/hash.h>
#include <wolfssl/wolfcrypt/rsa.h>

#include "keystore.h"
#include "tls_int.h"

static char err[1024];

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);       /* a plain wolfSSL peer writes to a closed socket */
    tls_global_init();
}

static void teardown(void)
{
    tls_global_cleanup();
}

/* ---- the test's signer: the key process's work, in this process ---- */

enum mode { SIGN, REFUSE, STATUS_NO_KEY, CORRUPT, TOO_LONG };

#define SEEN_MAX 8
static struct keystore *store;
static enum mode mode;
static int calls;
static struct keyproto_req seen[SEEN_MAX];     /* the requests, as sent */
static int signer_arg_value = 42;

static int test_signer(void *arg, const struct keyproto_req *rq, struct keyproto_rep *rep,
                       char *why, size_t n)
{
    ck_assert_ptr_eq(arg, &signer_arg_value);
    if (calls < SEEN_MAX)
        seen[calls] = *rq;
    calls++;
    /* What a worker asks must be what a key process accepts. */
    struct keyproto_req parsed;
    const char *bad = NULL;
    ck_assert_msg(keyproto_parse_req(rq, keyproto_req_size(rq), &parsed, &bad) == 0,
                  "the key process would refuse op %d len %d hash %d mgf %d: %s", rq->op,
                  rq->len, rq->hash, rq->mgf, bad);
    switch (mode) {
    case REFUSE:
        snprintf(why, n, "test says no");
        return -1;
    case STATUS_NO_KEY:
        *rep = (struct keyproto_rep){ .magic = KEYPROTO_MAGIC, .id = rq->id,
                                      .status = KEYPROTO_NO_KEY };
        return 0;
    case TOO_LONG:
        *rep = (struct keyproto_rep){ .magic = KEYPROTO_MAGIC, .id = rq->id,
                                      .status = KEYPROTO_OK, .len = KEYPROTO_SIG_MAX };
        return 0;
    default:
        keystore_sign(store, &parsed, rep);
        ck_assert_uint_eq(rep->id, rq->id);
        if (mode == CORRUPT && rep->status == KEYPROTO_OK)
            rep->sig[rep->len / 2] ^= 0x10;
        return 0;
    }
}

/* Adds the key of certificate cert (PEM) to the store. */
static void store_add(const char *cert, const char *key)
{
    struct key_conf kc = { .key = key, .cert = cert, .where = "t.conf:1" };
    ck_assert_msg(keystore_add(store, &kc, NULL, err, sizeof err) == 0, "%s", err);
}

/* A store of the keys of the test certificates names (NAME.pem, NAME.key:
 * example.test is EC, rsa.test RSA), in order; the signer answers from it. */
static void load_store(const char *const *names)
{
    store = keystore_new(err, sizeof err);
    ck_assert_ptr_nonnull(store);
    for (size_t i = 0; names[i]; i++) {
        char crt[64], key[64];
        snprintf(crt, sizeof crt, "%s.pem", names[i]);
        snprintf(key, sizeof key, "%s.key", names[i]);
        store_add(unit_cert(crt), unit_cert(key));
    }
    mode = SIGN;
    calls = 0;
    memset(seen, 0, sizeof seen);
    tls_set_signer(test_signer, &signer_arg_value);
}

static void free_store(void)
{
    keystore_free(store);
    store = NULL;
}

/* ---- a server context whose key is remote, and a wolfSSL client ---- */

struct job {
    WOLFSSL_CTX *ctx;
    int fd;
    enum tls_io r;
    char why[256];
    char failure[256];      /* tls_keys_failure() in the server's thread */
};

static void *serve(void *arg)
{
    struct job *j = arg;
    struct tls_conn *conn = tls_conn_new(j->ctx, j->fd);
    ck_assert_ptr_nonnull(conn);
    j->r = tls_conn_accept(conn, 5, j->why, sizeof j->why);
    snprintf(j->failure, sizeof j->failure, "%s",
             tls_keys_failure() ? tls_keys_failure() : "");
    tls_conn_free(conn);
    close(j->fd);                   /* a failed handshake ends the client's too */
    pair_thread_done();
    return NULL;
}

struct result {
    enum tls_io server;     /* the server's handshake */
    int client;             /* wolfSSL_connect()'s return */
    char why[256], failure[256];
};

/* A handshake with the server's certificate cert (PEM chain), its key
 * keys.list[key_id] (the store's), over TLS 1.<version>; the client
 * offers sigalgs (NULL: wolfSSL's default). */
static struct result handshake(const char *cert, int key_id, int version, const char *sigalgs)
{
    struct tls_conf tc = pair_tls_conf();
    /* the worker never opens the key file */
    struct cert_conf cc = { .cert = (char *)cert, .key = (char *)"/nonexistent/test.key",
                            .key_remote = true, .key_id = key_id, .where = "test.conf:9" };
    struct frontend_conf fe = { .name = "t", .ncerts = 1, .certs = &cc, .where = "t.conf:8" };
    struct job j = { .ctx = tls_server_ctx_new(&tc, &fe, err, sizeof err) };
    ck_assert_msg(j.ctx != NULL, "%s", err);
    int sv[2];
    pthread_t t;
    pair_sockets(sv);
    j.fd = sv[0];
    ck_assert_int_eq(pthread_create(&t, NULL, serve, &j), 0);
    WOLFSSL *c = pair_client(sv[1], version);
    if (sigalgs)
        ck_assert_int_eq(wolfSSL_set1_sigalgs_list(c, sigalgs), WOLFSSL_SUCCESS);
    struct result r = { .client = wolfSSL_connect(c) };
    if (r.client == WOLFSSL_SUCCESS)
        ck_assert_str_eq(wolfSSL_get_version(c), version == 2 ? "TLSv1.2" : "TLSv1.3");
    else
        close(sv[1]);                   /* (on success the server is done, or about to be) */
    pthread_join(t, NULL);
    wolfSSL_free(c);
    if (r.client == WOLFSSL_SUCCESS)
        close(sv[1]);
    tls_ctx_free(j.ctx);
    r.server = j.r;
    memcpy(r.why, j.why, sizeof r.why);
    memcpy(r.failure, j.failure, sizeof r.failure);
    return r;
}

static void ok(struct result r)
{
    ck_assert_msg(r.server == TLS_IO_OK, "server: %s", r.why);
    ck_assert_int_eq(r.client, WOLFSSL_SUCCESS);
    ck_assert_str_eq(r.failure, "");
}

static const char *const ec_rsa[] = { "example.test", "rsa.test", NULL };

/* ECDSA over TLS 1.3 and 1.2: one signature each, of the digest the client asks for. */
START_TEST(ecdsa_both_versions)
{
    load_store(ec_rsa);
    for (int v = 3; v >= 2; v--) {
        calls = 0;
        ok(handshake(unit_cert("example.test.pem"), 0, v, NULL));
        ck_assert_int_eq(calls, 1);
        ck_assert_int_eq(seen[0].op, KEY_OP_ECDSA);
        ck_assert_uint_eq(seen[0].key, 0);
        ck_assert_uint_eq(seen[0].len, 32);
    }
    /* a TLS 1.2 client that wants SHA-384 gets a SHA-384 digest signed */
    calls = 0;
    ok(handshake(unit_cert("example.test.pem"), 0, 2, "ECDSA+SHA384"));
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(seen[0].op, KEY_OP_ECDSA);
    ck_assert_uint_eq(seen[0].len, 48);
    /* every request has its own id */
    calls = 0;
    ok(handshake(unit_cert("example.test.pem"), 0, 3, NULL));
    ok(handshake(unit_cert("example.test.pem"), 0, 3, NULL));
    ck_assert_int_eq(calls, 2);
    ck_assert_uint_ne(seen[0].id, seen[1].id);
    free_store();
}
END_TEST

/* RSA over TLS 1.3: PSS, with the hash the client prefers and its MGF1. */
START_TEST(rsa_pss_tls13)
{
    static const struct { const char *sigalgs; int hash, mgf; size_t len; } h[] = {
        { NULL, WC_HASH_TYPE_SHA256, WC_MGF1SHA256, 32 },
        { "RSA-PSS+SHA256", WC_HASH_TYPE_SHA256, WC_MGF1SHA256, 32 },
        { "RSA-PSS+SHA384", WC_HASH_TYPE_SHA384, WC_MGF1SHA384, 48 },
        { "RSA-PSS+SHA512", WC_HASH_TYPE_SHA512, WC_MGF1SHA512, 64 },
    };
    load_store(ec_rsa);
    for (size_t i = 0; i < sizeof h / sizeof h[0]; i++) {
        calls = 0;
        ok(handshake(unit_cert("rsa.test.pem"), 1, 3, h[i].sigalgs));
        ck_assert_int_eq(calls, 1);
        ck_assert_int_eq(seen[0].op, KEY_OP_RSA_PSS);
        ck_assert_uint_eq(seen[0].key, 1);
        ck_assert_msg(seen[0].hash == h[i].hash, "%s: hash %d", h[i].sigalgs, seen[0].hash);
        ck_assert_int_eq(seen[0].mgf, h[i].mgf);
        ck_assert_uint_eq(seen[0].len, h[i].len);
    }
    free_store();
}
END_TEST

/* RSA over TLS 1.2: PKCS#1 v1.5 of a DigestInfo for a client that only
 * offers it, PSS for one that offers PSS. */
START_TEST(rsa_tls12)
{
    load_store(ec_rsa);
    calls = 0;
    ok(handshake(unit_cert("rsa.test.pem"), 1, 2, "RSA+SHA256"));
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(seen[0].op, KEY_OP_RSA_PKCS1);
    ck_assert_uint_eq(seen[0].len, 51);                 /* a SHA-256 DigestInfo */
    ck_assert_int_eq(seen[0].in[0], 0x30);
    calls = 0;
    ok(handshake(unit_cert("rsa.test.pem"), 1, 2, "RSA+SHA384"));
    ck_assert_int_eq(seen[0].op, KEY_OP_RSA_PKCS1);
    ck_assert_uint_eq(seen[0].len, 67);                 /* SHA-384's */
    calls = 0;
    ok(handshake(unit_cert("rsa.test.pem"), 1, 2, "RSA-PSS+SHA256"));
    ck_assert_int_eq(calls, 1);
    ck_assert_int_eq(seen[0].op, KEY_OP_RSA_PSS);
    ck_assert_int_eq(seen[0].hash, WC_HASH_TYPE_SHA256);
    free_store();
}
END_TEST

/* The context asks for its own key of the list; a key of another kind
 * there (a configuration gone wrong) fails the handshake. */
START_TEST(key_id_is_the_list_index)
{
    static const char *const keys[] = { "rsa.test", "other", "example.test", NULL };
    load_store(keys);
    calls = 0;
    ok(handshake(unit_cert("example.test.pem"), 2, 3, NULL));
    ck_assert_int_eq(calls, 1);
    ck_assert_uint_eq(seen[0].key, 2);
    calls = 0;
    ok(handshake(unit_cert("rsa.test.pem"), 0, 3, NULL));
    ck_assert_uint_eq(seen[0].key, 0);
    /* key 1 is an EC key of another certificate: a bad signature */
    calls = 0;
    struct result r = handshake(unit_cert("example.test.pem"), 1, 3, NULL);
    ck_assert_int_eq(calls, 1);
    ck_assert_int_ne(r.client, WOLFSSL_SUCCESS);
    /* key 0 is RSA: the store refuses ECDSA with it */
    calls = 0;
    r = handshake(unit_cert("example.test.pem"), 0, 3, NULL);
    ck_assert_int_ne(r.server, TLS_IO_OK);
    ck_assert_msg(strstr(r.why, "no such key") != NULL, "%s", r.why);
    /* and a key beyond the list */
    r = handshake(unit_cert("example.test.pem"), 7, 3, NULL);
    ck_assert_int_ne(r.server, TLS_IO_OK);
    ck_assert_msg(strstr(r.why, "no such key") != NULL, "%s", r.why);
    free_store();
}
END_TEST

/* A signer that fails: the handshake fails, and says why. */
START_TEST(a_failed_signature_fails_the_handshake)
{
    load_store(ec_rsa);
    mode = REFUSE;
    for (int v = 3; v >= 2; v--) {
        calls = 0;
        struct result r = handshake(unit_cert("example.test.pem"), 0, v, NULL);
        ck_assert_int_eq(calls, 1);
        ck_assert_int_ne(r.server, TLS_IO_OK);
        ck_assert_int_ne(r.client, WOLFSSL_SUCCESS);
        ck_assert_msg(strstr(r.why, "signing: test says no") != NULL, "%s", r.why);
        ck_assert_str_eq(r.failure, "test says no");
        calls = 0;
        r = handshake(unit_cert("rsa.test.pem"), 1, v, NULL);
        ck_assert_int_eq(calls, 1);
        ck_assert_int_ne(r.server, TLS_IO_OK);
        ck_assert_msg(strstr(r.why, "signing: test says no") != NULL, "%s", r.why);
    }
    /* the key process's refusal */
    mode = STATUS_NO_KEY;
    struct result r = handshake(unit_cert("rsa.test.pem"), 1, 3, NULL);
    ck_assert_int_ne(r.server, TLS_IO_OK);
    ck_assert_msg(strstr(r.why, "signing: the key process: no such key") != NULL, "%s", r.why);
    /* a signature longer than wolfSSL has room for */
    mode = TOO_LONG;
    r = handshake(unit_cert("example.test.pem"), 0, 3, NULL);
    ck_assert_int_ne(r.server, TLS_IO_OK);
    ck_assert_msg(strstr(r.why, "a signature too long") != NULL, "%s", r.why);
    /* and with a signer that signs again, handshakes work again */
    mode = SIGN;
    ok(handshake(unit_cert("example.test.pem"), 0, 3, NULL));
    free_store();
}
END_TEST

/* No signer at all: the handshake fails. */
START_TEST(no_signer)
{
    load_store(ec_rsa);
    tls_set_signer(NULL, NULL);
    calls = 0;
    struct result r = handshake(unit_cert("example.test.pem"), 0, 3, NULL);
    ck_assert_int_eq(calls, 0);
    ck_assert_int_ne(r.server, TLS_IO_OK);
    ck_assert_msg(strstr(r.why, "no key process to sign with") != NULL, "%s", r.why);
    free_store();
}
END_TEST

/* A damaged signature from the signer reaches the client, which refuses
 * it (nothing in the worker checks; the key process does). */
START_TEST(a_damaged_signature_is_refused_by_the_client)
{
    load_store(ec_rsa);
    mode = CORRUPT;
    struct { const char *cert; int key, v; const char *sigalgs; } c[] = {
        { "example.test.pem", 0, 3, NULL }, { "example.test.pem", 0, 2, NULL },
        { "rsa.test.pem", 1, 3, NULL }, { "rsa.test.pem", 1, 2, "RSA+SHA256" },
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        calls = 0;
        struct result r = handshake(unit_cert(c[i].cert), c[i].key, c[i].v, c[i].sigalgs);
        ck_assert_int_eq(calls, 1);
        ck_assert_msg(r.client != WOLFSSL_SUCCESS, "case %zu: the client took it", i);
        ck_assert_int_ne(r.server, TLS_IO_OK);
    }
    free_store();
}
END_TEST

/* The certificate file may hold the key too: the context is built from
 * its text without it, and signs through the signer. */
START_TEST(chain_file_with_the_key)
{
    static const char *const keys[] = { NULL };
    load_store(keys);
    const char *c = unit_cert("certdir/c.test.pem");
    store_add(c, c);
    calls = 0;
    ok(handshake(c, 0, 3, NULL));
    ck_assert_int_eq(calls, 1);
    free_store();
}
END_TEST

/* ---- a client certificate whose key is remote (backend TLS) ---- */

struct peer_job {
    int fd, version;
    int r, error;           /* wolfSSL_accept()'s return, wolfSSL_get_error() */
    bool got_cert;
};

/* A plain wolfSSL server that demands a client certificate. */
static void *demanding_server(void *arg)
{
    struct peer_job *j = arg;
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(j->version == 2 ? wolfTLSv1_2_server_method()
                                                       : wolfTLSv1_3_server_method());
    ck_assert_int_eq(wolfSSL_CTX_use_certificate_chain_file(ctx, unit_cert("example.test.pem")),
                     WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_CTX_use_PrivateKey_file(ctx, unit_cert("example.test.key"),
                                                     WOLFSSL_FILETYPE_PEM), WOLFSSL_SUCCESS);
    ck_assert_int_eq(wolfSSL_CTX_load_verify_locations(ctx, unit_cert("ca.pem"), NULL),
                     WOLFSSL_SUCCESS);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER | WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    WOLFSSL *ssl = wolfSSL_new(ctx);
    wolfSSL_set_fd(ssl, j->fd);
    j->r = wolfSSL_accept(ssl);
    j->error = j->r == WOLFSSL_SUCCESS ? 0 : wolfSSL_get_error(ssl, j->r);
    WOLFSSL_X509 *peer = wolfSSL_get_peer_certificate(ssl);
    j->got_cert = peer != NULL;
    wolfSSL_X509_free(peer);
    wolfSSL_free(ssl);
    wolfSSL_CTX_free(ctx);
    close(j->fd);
    pair_thread_done();
    return NULL;
}

/* tlsoffd as a client with certificate cert (PEM), its key the store's key 0. */
static enum tls_io client_handshake(const char *cert, int version, struct peer_job *j,
                                    char *why, size_t n)
{
    struct backend_tls_conf t = { .enabled = true, .verify = false, .cert = (char *)cert,
                                  .key = (char *)"/nonexistent/client.key", .key_remote = true,
                                  .key_id = 0 };
    WOLFSSL_CTX *ctx = tls_client_ctx_new(&t, "t.conf:5", err, sizeof err);
    ck_assert_msg(ctx != NULL, "%s", err);
    int sv[2];
    pthread_t th;
    pair_sockets(sv);
    *j = (struct peer_job){ .fd = sv[0], .version = version };
    ck_assert_int_eq(pthread_create(&th, NULL, demanding_server, j), 0);
    struct tls_conn *conn = tls_conn_new(ctx, sv[1]);
    ck_assert_ptr_nonnull(conn);
    enum tls_io r = tls_conn_connect(conn, &t, NULL, 5, why, n);
    if (r != TLS_IO_OK)                 /* else the server may still send (tickets) */
        close(sv[1]);
    pthread_join(th, NULL);
    tls_conn_free(conn);
    if (r == TLS_IO_OK)
        close(sv[1]);
    tls_ctx_free(ctx);
    return r;
}

/* A backend that demands a client certificate: tlsoffd's is signed for
 * through the signer, EC and RSA, TLS 1.3 and 1.2. */
START_TEST(client_certificate)
{
    static const char *const ec[] = { "client1", NULL }, *const none[] = { NULL };
    char why[256] = "", dir[] = "/tmp/tlsoffd-client-XXXXXX", cmd[2048], crt[80], key[80];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    /* an RSA client certificate by the test CA */
    snprintf(crt, sizeof crt, "%s/rsa.crt", dir);
    snprintf(key, sizeof key, "%s/rsa.key", dir);
    snprintf(cmd, sizeof cmd,
             "openssl req -newkey rsa:2048 -nodes -subj /CN=rsa-client -keyout %s "
             "-out %s/rsa.csr 2>/dev/null && echo extendedKeyUsage=clientAuth > %s/ext && "
             "openssl x509 -req -in %s/rsa.csr -CA %s -CAkey %s -set_serial 4242 -days 1 "
             "-extfile %s/ext -out %s 2>/dev/null",
             key, dir, dir, dir, unit_cert("ca.pem"), unit_cert("ca.key"), dir, crt);
    ck_assert_int_eq(system(cmd), 0);
    struct peer_job j;
    for (int v = 3; v >= 2; v--) {
        load_store(ec);
        ck_assert_msg(client_handshake(unit_cert("client1.pem"), v, &j, why, sizeof why) ==
                          TLS_IO_OK, "TLS 1.%d: %s", v, why);
        ck_assert_msg(j.r == WOLFSSL_SUCCESS, "TLS 1.%d: the server: %d", v, j.error);
        ck_assert(j.got_cert);
        ck_assert_int_eq(calls, 1);
        ck_assert_int_eq(seen[0].op, KEY_OP_ECDSA);
        mode = REFUSE;
        ck_assert_int_ne(client_handshake(unit_cert("client1.pem"), v, &j, why, sizeof why),
                         TLS_IO_OK);
        ck_assert_msg(strstr(why, "signing: test says no") != NULL, "%s", why);
        ck_assert_int_ne(j.r, WOLFSSL_SUCCESS);
        free_store();

        load_store(none);
        store_add(crt, key);
        ck_assert_msg(client_handshake(crt, v, &j, why, sizeof why) == TLS_IO_OK,
                      "TLS 1.%d: %s", v, why);
        ck_assert_msg(j.r == WOLFSSL_SUCCESS, "TLS 1.%d: the server: %d", v, j.error);
        ck_assert(j.got_cert);
        ck_assert_int_eq(calls, 1);
        if (v == 3)
            ck_assert_int_eq(seen[0].op, KEY_OP_RSA_PSS);
        else
            ck_assert(seen[0].op == KEY_OP_RSA_PSS || seen[0].op == KEY_OP_RSA_PKCS1);
        free_store();
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

/* ---- tls_read_public_pem ---- */

static char *read_text(const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    static char buf[65536];
    *len = fread(buf, 1, sizeof buf - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

/* No line of key's base64 body is in text. */
static void no_key_line(const char *text, const char *key)
{
    size_t klen;
    char *k = strdup(read_text(key, &klen)), *save = NULL;
    int lines = 0;
    for (char *line = strtok_r(k, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '-' || strchr(line, ':') || strlen(line) < 16)
            continue;
        lines++;
        ck_assert_msg(strstr(text, line) == NULL, "key line in the text: %s", line);
    }
    ck_assert_int_gt(lines, 0);
    free(k);
}

/* The text of file (a chain and key) as tls_read_public_pem gives it: the
 * same length, no key, every certificate where it was, and wolfSSL loads it. */
static void public_text(const char *file, const char *key, const char *const *certs)
{
    size_t len = 0, flen;
    char why[128], *pem = tls_read_public_pem(file, &len, why, sizeof why);
    ck_assert_msg(pem != NULL, "%s", why);
    char *orig = strdup(read_text(file, &flen));
    ck_assert_uint_eq(len, flen);
    ck_assert_uint_eq(strlen(pem), len);
    ck_assert_ptr_null(strstr(pem, "PRIVATE KEY"));
    ck_assert_ptr_null(strstr(pem, "Proc-Type"));
    no_key_line(pem, key);
    int n = 0;
    for (size_t i = 0; certs[i]; i++) {
        size_t clen;
        char *c = strdup(read_text(certs[i], &clen));
        char *at = strstr(orig, c);
        ck_assert_ptr_nonnull(at);                      /* the test's own premise */
        ck_assert_msg(memcmp(pem + (at - orig), c, clen) == 0, "%s changed", certs[i]);
        free(c);
        n++;
    }
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfTLS_server_method());
    ck_assert_int_eq(wolfSSL_CTX_use_certificate_chain_buffer_format(
                         ctx, (const unsigned char *)pem, (long)len, WOLFSSL_FILETYPE_PEM),
                     WOLFSSL_SUCCESS);
    wolfSSL_CTX_free(ctx);
    free(orig);
    tls_free_pem(pem, len + 1);
}

/* Chains with keys in every form and place: the text keeps the chain, none of a key. */
/* A NUL byte would hide what follows it from the blanking: refused. */
START_TEST(public_pem_with_a_nul_byte)
{
    char *both = unit_tempfile("");
    char cmd[1024], why[128];
    size_t len = 0;
    snprintf(cmd, sizeof cmd, "{ cat %s; printf '\\0'; cat %s; } > %s",
             unit_cert("example.test.pem"), unit_cert("example.test.key"), both);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_ptr_null(tls_read_public_pem(both, &len, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "NUL"));
    unlink(both);
    free(both);
}
END_TEST

START_TEST(public_pem_without_the_key)
{
    char *tmpd = strdup("/tmp/tlsoffd-pem-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpd));
    char path[256], cmd[2048], enc[256], trad[256], pw[256];
    const char *crt = unit_cert("example.test.crt"), *ca = unit_cert("ca.pem");
    const char *key = unit_cert("example.test.key"), *rkey = unit_cert("rsa.test.key");
    const char *const leaf_ca[] = { crt, ca, NULL }, *const leaf[] = { crt, NULL };

    snprintf(path, sizeof path, "%s/a.pem", tmpd);          /* chain, then key */
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", unit_cert("example.test.pem"), key, path);
    ck_assert_int_eq(system(cmd), 0);
    public_text(path, key, leaf_ca);
    snprintf(path, sizeof path, "%s/b.pem", tmpd);          /* key, chain */
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", key, unit_cert("example.test.pem"), path);
    ck_assert_int_eq(system(cmd), 0);
    public_text(path, key, leaf_ca);
    snprintf(path, sizeof path, "%s/c.pem", tmpd);          /* leaf, key, CA */
    snprintf(cmd, sizeof cmd, "cat %s %s %s > %s", crt, key, ca, path);
    ck_assert_int_eq(system(cmd), 0);
    public_text(path, key, leaf_ca);
    /* an encrypted key, and a traditional one with Proc-Type headers */
    snprintf(pw, sizeof pw, "%s/pw", tmpd);
    snprintf(enc, sizeof enc, "%s/enc.key", tmpd);
    snprintf(trad, sizeof trad, "%s/trad.key", tmpd);
    snprintf(cmd, sizeof cmd,
             "echo pass > %s && openssl pkey -in %s -aes256 -passout file:%s -out %s && "
             "openssl rsa -in %s -traditional -aes256 -passout file:%s -out %s 2>/dev/null",
             pw, key, pw, enc, rkey, pw, trad);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof path, "%s/d.pem", tmpd);
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", crt, enc, path);
    ck_assert_int_eq(system(cmd), 0);
    public_text(path, enc, leaf);
    snprintf(path, sizeof path, "%s/e.pem", tmpd);
    snprintf(cmd, sizeof cmd, "cat %s %s > %s", trad, crt, path);
    ck_assert_int_eq(system(cmd), 0);
    public_text(path, trad, leaf);
    /* a key without its END line: blanked to the end */
    snprintf(path, sizeof path, "%s/f.pem", tmpd);
    snprintf(cmd, sizeof cmd, "(cat %s; grep -v END %s) > %s", crt, key, path);
    ck_assert_int_eq(system(cmd), 0);
    size_t len;
    char why[128], *pem = tls_read_public_pem(path, &len, why, sizeof why);
    ck_assert_ptr_nonnull(pem);
    ck_assert_ptr_null(strstr(pem, "PRIVATE KEY"));
    no_key_line(pem, key);
    ck_assert_ptr_nonnull(strstr(pem, "-----BEGIN CERTIFICATE-----"));
    tls_free_pem(pem, len + 1);
    /* a certificate alone comes back as it is */
    pem = tls_read_public_pem(crt, &len, why, sizeof why);
    ck_assert_ptr_nonnull(pem);
    size_t clen;
    const char *c = read_text(crt, &clen);
    ck_assert_uint_eq(len, clen);
    ck_assert(memcmp(pem, c, len) == 0);
    tls_free_pem(pem, len + 1);
    /* a missing file */
    ck_assert_ptr_null(tls_read_public_pem("/no/such.pem", &len, why, sizeof why));
    ck_assert_ptr_nonnull(strstr(why, "No such file or directory"));

    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpd);
    ck_assert_int_eq(system(cmd), 0);
    free(tmpd);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("tls_keys");
    TCase *tc = tcase_create("tls_keys");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, ecdsa_both_versions);
    tcase_add_test(tc, rsa_pss_tls13);
    tcase_add_test(tc, rsa_tls12);
    tcase_add_test(tc, key_id_is_the_list_index);
    tcase_add_test(tc, a_failed_signature_fails_the_handshake);
    tcase_add_test(tc, no_signer);
    tcase_add_test(tc, a_damaged_signature_is_refused_by_the_client);
    tcase_add_test(tc, chain_file_with_the_key);
    tcase_add_test(tc, client_certificate);
    tcase_add_test(tc, public_pem_without_the_key);
    tcase_add_test(tc, public_pem_with_a_nul_byte);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
