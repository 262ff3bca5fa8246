/* A TLS server (lib/tls*.c) and a wolfSSL client over a socketpair, for the
 * tls and relay suites. The server side runs in a thread. */
#ifndef TLSOFFD_TLSPAIR_H
#define TLSOFFD_TLSPAIR_H

#include <pthread.h>
#include <sys/socket.h>

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <wolfssl/wolfcrypt/ecc.h>

#include "config.h"
#include "tls_policy.h"
#include "tls.h"
#include "unit.h"

static inline struct tls_conf pair_tls_conf(void)
{
    struct tls_conf tc = {
        .preset = TLS_PRESET_INTERMEDIATE, .min_version = TLS1_2_VERSION,
        .max_version = TLS1_3_VERSION, .ciphers = TLS_POLICY_CIPHERS,
        .ciphersuites = TLS_POLICY_CIPHERSUITES, .groups = TLS_POLICY_GROUPS,
        .where = "test.conf:1", .ciphers_where = "test.conf:2", .suites_where = "test.conf:3",
    };
    return tc;
}

static inline WOLFSSL_CTX *pair_server_ctx(const char *cert, const char *key, char *err,
                                           size_t errlen)
{
    struct tls_conf tc = pair_tls_conf();
    struct cert_conf cc = { .cert = (char *)cert, .key = (char *)key, .where = "test.conf:9" };
    struct frontend_conf fe = { .name = "t", .ncerts = 1, .certs = &cc, .where = "test.conf:8" };
    return tls_server_ctx_new(&tc, &fe, err, errlen);
}

/* A client; version 0 = any of 1.2/1.3. */
static inline WOLFSSL *pair_client(int fd, int version)
{
    WOLFSSL_CTX *ctx = wolfSSL_CTX_new(version == 2 ? wolfTLSv1_2_client_method()
                                       : version == 3 ? wolfTLSv1_3_client_method()
                                                      : wolfSSLv23_client_method());
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_NONE, NULL);
    WOLFSSL *ssl = wolfSSL_new(ctx);
    wolfSSL_set_fd(ssl, fd);
    wolfSSL_CTX_free(ctx);      /* the WOLFSSL keeps a reference */
    return ssl;
}

/* wolfSSL keeps a per-thread cache of ECC tables (FP_ECC): a thread that
 * did ECC frees it before it ends. */
static inline void pair_thread_done(void)
{
    wc_ecc_fp_free();
}

static inline void pair_sockets(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
}

#endif
