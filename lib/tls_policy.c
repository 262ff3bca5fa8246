/*
 * tls_policy — the TLS policy every context gets: the protocol range,
 * exactly the configured suites (AEAD only) and groups, no compression,
 * the server's order; a server context for a frontend and a client
 * context for a backend.
 */
#include "tls_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every name in a ':'-list must be a suite this wolfSSL knows. */
static int check_suites(WOLFSSL_CTX *ctx, const char *list, char *bad, size_t badlen)
{
    char *copy = strdup(list), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save))
        if (wolfSSL_CTX_set_cipher_list(ctx, t) != WOLFSSL_SUCCESS) {
            snprintf(bad, badlen, "%s", t);
            rc = -1;
            break;
        }
    free(copy);
    return rc;
}

/* The bytes of a suite by its IANA name ("TLS_AES_128_GCM_SHA256"). */
static int iana_suite(const char *name, unsigned char out[2])
{
    static const unsigned char first[] = { 0x13, 0xc0, 0xcc };     /* TLS 1.3, ECC, ChaCha */
    for (size_t i = 0; i < sizeof first; i++)
        for (int b = 0; b < 256; b++) {
            const char *n = wolfSSL_get_cipher_name_iana_from_suite(first[i], (unsigned char)b);
            if (n && strcmp(n, name) == 0) {
                out[0] = first[i];
                out[1] = (unsigned char)b;
                return 0;
            }
        }
    return -1;
}

/*
 * Sets exactly the suites of a ':'-list. wolfSSL 5.5.4's
 * wolfSSL_CTX_set_cipher_list() adds TLS13-AES128-CCM-8-SHA256 (an 8-byte
 * tag) to a list that names TLS 1.3 suites; the byte form does not.
 */
static int set_exact_suites(WOLFSSL_CTX *ctx, const char *list)
{
    unsigned char bytes[2 * 64];
    int n = 0, flags;
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t && n < (int)sizeof bytes;
         t = strtok_r(NULL, ":", &save))
        if (wolfSSL_get_cipher_suite_from_name(t, &bytes[n], &bytes[n + 1], &flags) == 0 ||
            iana_suite(t, &bytes[n]) == 0)
            n += 2;
    free(copy);
    return n > 0 && wolfSSL_CTX_set_cipher_list_bytes(ctx, bytes, n) == WOLFSSL_SUCCESS ? 0 : -1;
}

static int group_id(const char *name)
{
    static const struct { const char *n; int id; } g[] = {
        { "X25519", WOLFSSL_ECC_X25519 }, { "X448", WOLFSSL_ECC_X448 },
        { "P-256", WOLFSSL_ECC_SECP256R1 }, { "P-384", WOLFSSL_ECC_SECP384R1 },
        { "P-521", WOLFSSL_ECC_SECP521R1 },
    };
    for (size_t i = 0; i < sizeof g / sizeof g[0]; i++)
        if (strcmp(g[i].n, name) == 0)
            return g[i].id;
    return -1;
}

static int set_groups(WOLFSSL_CTX *ctx, const char *list)
{
    int ids[8], n = 0;
    char *copy = strdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t && n < 8; t = strtok_r(NULL, ":", &save))
        if ((ids[n] = group_id(t)) >= 0)
            n++;
    free(copy);
    /* set_groups orders the TLS 1.3 key shares; the TLS 1.2 ECDHE curve is
     * chosen from the client's list among the curves not disabled, and
     * only set1_curves_list disables the others. */
    return n > 0 && wolfSSL_CTX_set_groups(ctx, ids, n) == WOLFSSL_SUCCESS &&
           wolfSSL_CTX_set1_curves_list(ctx, list) == WOLFSSL_SUCCESS ? 0 : -1;
}

WOLFSSL_CTX *tls_policy_server_ctx(const struct tls_conf *tc, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    char bad[128], list[1024];

    if (!ctx)
        return tls_ctx_fail(NULL, err, errlen, "out of memory creating a TLS context");
    /* wolfSSL's OpenSSL-compatible defaults would allow TLS 1.1 and NULL
     * ciphers and retry reads behind our deadline: set everything. */
    if (wolfSSL_CTX_set_min_proto_version(ctx, tc->min_version) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_max_proto_version(ctx, tc->max_version) != WOLFSSL_SUCCESS)
        return tls_ctx_fail(ctx, err, errlen, "%s: cannot set the protocol range", tc->where);
    if (check_suites(ctx, tc->ciphers, bad, sizeof bad) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: tls.ciphers: this wolfSSL has no cipher '%s'",
                        tc->ciphers_where, bad);
    if (check_suites(ctx, tc->ciphersuites, bad, sizeof bad) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: tls.ciphersuites: this wolfSSL has no suite '%s'",
                        tc->suites_where, bad);
    snprintf(list, sizeof list, "%s%s%s",
             tc->max_version == TLS1_3_VERSION ? tc->ciphersuites : "",
             tc->max_version == TLS1_3_VERSION && tc->min_version == TLS1_2_VERSION ? ":" : "",
             tc->min_version == TLS1_2_VERSION ? tc->ciphers : "");
    if (set_exact_suites(ctx, list) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: cannot set cipher list '%s'", tc->where, list);
    if (set_groups(ctx, tc->groups) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: tls.groups: this wolfSSL cannot offer '%s'",
                        tc->where, tc->groups);
    wolfSSL_CTX_set_options(ctx, WOLFSSL_OP_NO_COMPRESSION | WOLFSSL_OP_CIPHER_SERVER_PREFERENCE);
    wolfSSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    wolfSSL_CTX_SetIORecv(ctx, tls_io_recv);
    wolfSSL_CTX_SetIOSend(ctx, tls_io_send);
    tls_resume_setup(ctx);
    return ctx;
}

WOLFSSL_CTX *tls_server_ctx_new(const struct tls_conf *tc, const struct frontend_conf *fe,
                                char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx;
    if (fe->ncerts == 0)
        return tls_ctx_fail(NULL, err, errlen, "%s: frontend '%s' has no certificate", fe->where,
                        fe->name);
    if (!(ctx = tls_policy_server_ctx(tc, err, errlen)))
        return NULL;
    return tls_load_cert(ctx, &fe->certs[0], err, errlen);
}

WOLFSSL_CTX *tls_client_ctx_new(const struct backend_tls_conf *t, const char *where, char *err,
                                size_t errlen)
{
    char why[256];
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (!ctx)
        return tls_ctx_fail(NULL, err, errlen, "out of memory creating a TLS context");
    if (wolfSSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != WOLFSSL_SUCCESS ||
        set_exact_suites(ctx, CONFIG_DEFAULT_CIPHERSUITES ":" CONFIG_DEFAULT_CIPHERS) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: cannot set the backend TLS policy", where);
    wolfSSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    wolfSSL_CTX_SetIORecv(ctx, tls_io_recv);
    wolfSSL_CTX_SetIOSend(ctx, tls_io_send);
    if (t->verify) {
        if (t->ca_file) {
            if (access(t->ca_file, R_OK) < 0)
                return tls_ctx_fail(ctx, err, errlen, "%s: tls.ca_file '%s': %s", where, t->ca_file,
                                strerror(errno));
            if (wolfSSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != WOLFSSL_SUCCESS)
                return tls_ctx_fail(ctx, err, errlen, "%s: tls.ca_file '%s': no PEM certificate: %s",
                                where, t->ca_file, tls_last_error(why, sizeof why));
        } else if (wolfSSL_CTX_load_system_CA_certs(ctx) != WOLFSSL_SUCCESS) {
            return tls_ctx_fail(ctx, err, errlen, "%s: cannot load the system's CA certificates "
                            "(set tls.ca_file)", where);
        }
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER, NULL);
    } else {
        wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    }
    if (t->cert) {
        struct cert_conf cc = { .cert = t->cert, .key = t->key, .where = (char *)where };
        return tls_load_cert(ctx, &cc, err, errlen);
    }
    return ctx;
}
