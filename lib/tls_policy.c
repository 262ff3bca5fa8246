/*
 * tls_policy — the TLS policy every context gets: the protocol range,
 * exactly the configured suites (AEAD only) and groups, no compression,
 * the server's order; server contexts, and the one factory of client
 * contexts (TLS to backends, health probes). The lists: tls_policy.h.
 */
#include "tls_policy.h"
#include "tls_int.h"
#include "alloc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUITES_MAX          64      /* suites in one list */
#define GROUPS_MAX          8       /* groups in one list */
#define SUITE_LIST_MAX      1024    /* TLS 1.3 and TLS 1.2 lists joined */

/* Every name in a ':'-list must be a suite this wolfSSL knows. */
static int check_suites(WOLFSSL_CTX *ctx, const char *list, char *bad, size_t badlen)
{
    char *copy = xstrdup(list), *save = NULL;
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

/* AES-CCM-8 (an 8-byte tag): never enabled, whatever the list says. */
static bool is_ccm8_suite(const unsigned char b[2])
{
    const char *n = wolfSSL_get_cipher_name_iana_from_suite(b[0], b[1]);
    return n && strstr(n, "CCM_8") != NULL;
}

/*
 * Sets exactly the suites of a ':'-list, never a CCM-8 one (config_tls.c
 * refuses those names; this holds for any list). wolfSSL 5.5.4's
 * wolfSSL_CTX_set_cipher_list() adds TLS13-AES128-CCM-8-SHA256 to a list
 * that names TLS 1.3 suites; the byte form does not, so it sets the list
 * that check_suites() left behind.
 */
static int set_exact_suites(WOLFSSL_CTX *ctx, const char *list)
{
    unsigned char bytes[2 * SUITES_MAX];
    int n = 0, flags, rc = 0;
    char *copy = xstrdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t && n < (int)sizeof bytes && rc == 0;
         t = strtok_r(NULL, ":", &save))
        if (wolfSSL_get_cipher_suite_from_name(t, &bytes[n], &bytes[n + 1], &flags) == 0 ||
            iana_suite(t, &bytes[n]) == 0) {
            rc = is_ccm8_suite(&bytes[n]) ? -1 : 0;
            n += 2;
        }
    free(copy);
    return rc == 0 && n > 0 &&
           wolfSSL_CTX_set_cipher_list_bytes(ctx, bytes, n) == WOLFSSL_SUCCESS ? 0 : -1;
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

uint32_t tls_policy_groups(const char *list)
{
    uint32_t mask = 0;
    char *copy = xstrdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t; t = strtok_r(NULL, ":", &save)) {
        int id = group_id(t);
        if (id >= 0 && id < 32)
            mask |= 1u << id;
    }
    free(copy);
    return mask;
}

static int set_groups(WOLFSSL_CTX *ctx, const char *list)
{
    int ids[GROUPS_MAX], n = 0;
    char *copy = xstrdup(list), *save = NULL;
    for (char *t = strtok_r(copy, ":", &save); t && n < GROUPS_MAX;
         t = strtok_r(NULL, ":", &save))
        if ((ids[n] = group_id(t)) >= 0)
            n++;
    free(copy);
    /* set_groups orders the TLS 1.3 key shares; the TLS 1.2 ECDHE curve is
     * chosen from the client's list among the curves not disabled, and
     * only set1_curves_list disables the others. */
    return n > 0 && wolfSSL_CTX_set_groups(ctx, ids, n) == WOLFSSL_SUCCESS &&
           wolfSSL_CTX_set1_curves_list(ctx, list) == WOLFSSL_SUCCESS ? 0 : -1;
}

WOLFSSL_CTX *tls_policy_server_ctx(const struct tls_conf *tc, const struct tls_resume *rs,
                                   char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_server_method());
    char bad[128], list[SUITE_LIST_MAX];

    if (!ctx)
        return tls_ctx_fail(NULL, err, errlen, "out of memory creating a TLS context");
#ifdef WOLFSSL_EARLY_DATA
    /* No 0-RTT: it can be replayed (RFC 8446 section 8), and a backend
     * behind tlsoffd could not tell. Tickets announce none; a client's
     * early data is skipped (contrib/wolfssl-fast, patch 0004). */
    wolfSSL_CTX_set_max_early_data(ctx, 0);
#endif
    /* wolfSSL's OpenSSL-compatible defaults would allow TLS 1.1 and NULL
     * ciphers and retry reads behind our deadline: set everything. */
    if (wolfSSL_CTX_set_min_proto_version(ctx, tc->min_version) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_max_proto_version(ctx, tc->max_version) != WOLFSSL_SUCCESS)
        return tls_ctx_fail(ctx, err, errlen, "%s: cannot set the protocol range", tc->where);
    if (check_suites(ctx, tc->ciphers, bad, sizeof bad) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: tls.ciphers: this wolfSSL has no cipher '%s'",
                            tc->ciphers_where, bad);
    if (check_suites(ctx, tc->ciphersuites, bad, sizeof bad) < 0)
        return tls_ctx_fail(ctx, err, errlen,
                            "%s: tls.ciphersuites: this wolfSSL has no suite '%s'",
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
    tls_resume_setup(ctx, rs);
    return ctx;
}

WOLFSSL_CTX *tls_server_ctx_new(const struct tls_conf *tc, const struct frontend_conf *fe,
                                char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx;
    if (fe->ncerts == 0)
        return tls_ctx_fail(NULL, err, errlen, "%s: frontend '%s' has no certificate", fe->where,
                            fe->name);
    if (!(ctx = tls_policy_server_ctx(tc, NULL, err, errlen)))
        return NULL;
    return tls_load_cert(ctx, &fe->certs[0], err, errlen);
}

/* The CAs that verify a server: p->ca_file, or the system's. 0, or -1
 * with the reason in err. */
static int load_server_cas(WOLFSSL_CTX *ctx, const struct tls_client_policy *p, char *err,
                           size_t errlen)
{
    const char *where = p->where ? p->where : "", *sep = p->where ? ": " : "";
    char why[256];
    if (!p->ca_file) {
        if (wolfSSL_CTX_load_system_CA_certs(ctx) == WOLFSSL_SUCCESS)
            return 0;
        snprintf(err, errlen, "%s%scannot load the system's CA certificates (set %s)", where,
                 sep, p->ca_name);
        return -1;
    }
    if (access(p->ca_file, R_OK) < 0) {
        snprintf(err, errlen, "%s%s%s '%s': %s", where, sep, p->ca_name, p->ca_file,
                 strerror(errno));
        return -1;
    }
    if (wolfSSL_CTX_load_verify_locations(ctx, p->ca_file, NULL) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s%s%s '%s': cannot load PEM certificates: %s", where, sep,
                 p->ca_name, p->ca_file, tls_last_error(why, sizeof why));
        return -1;
    }
    return 0;
}

WOLFSSL_CTX *tls_policy_client_ctx(const struct tls_client_policy *p, char *err, size_t errlen)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(wolfSSLv23_client_method());
    if (!ctx)
        return tls_ctx_fail(NULL, err, errlen, "out of memory creating a TLS context");
    /* wolfSSL's OpenSSL-compatible defaults allow TLS 1.1, NULL and
     * anonymous suites, skip verification and retry reads: set all. */
    if (wolfSSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != WOLFSSL_SUCCESS ||
        wolfSSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != WOLFSSL_SUCCESS ||
        set_exact_suites(ctx, p->suites ? p->suites : TLS_POLICY_CLIENT_SUITES) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s%scannot set the TLS client policy",
                            p->where ? p->where : "", p->where ? ": " : "");
    wolfSSL_CTX_clear_mode(ctx, SSL_MODE_AUTO_RETRY);
    if (p->verify && load_server_cas(ctx, p, err, errlen) < 0) {
        wolfSSL_CTX_free(ctx);
        return NULL;
    }
    wolfSSL_CTX_set_verify(ctx, p->verify ? WOLFSSL_VERIFY_PEER : WOLFSSL_VERIFY_NONE, NULL);
    if (p->cert) {
        struct cert_conf cc = { .cert = (char *)p->cert, .key = (char *)p->key,
                                .key_remote = p->key_remote, .key_id = p->key_id,
                                .where = (char *)(p->where ? p->where : "") };
        return tls_load_cert(ctx, &cc, err, errlen);
    }
    return ctx;
}

WOLFSSL_CTX *tls_client_ctx_new(const struct backend_tls_conf *t, const char *where, char *err,
                                size_t errlen)
{
    struct tls_client_policy p = { .verify = t->verify, .ca_file = t->ca_file,
                                   .ca_name = "tls.ca_file", .cert = t->cert, .key = t->key,
                                   .key_remote = t->key_remote, .key_id = t->key_id,
                                   .where = where };
    return tls_policy_client_ctx(&p, err, errlen);
}
