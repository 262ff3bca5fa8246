/*
 * tls — the wolfSSL library (init, version, acceleration) and what every
 * part of the TLS code shares: error text and loading a certificate with
 * its key (proved to match), or without it when the key processes sign.
 */
#include "tls_int.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/stat.h>

#include "alloc.h"

#include <wolfssl/openssl/evp.h>
#include <wolfssl/openssl/pem.h>

void tls_global_init(void)
{
    wolfSSL_Init();
}

void tls_global_cleanup(void)
{
    wolfSSL_Cleanup();
}

void tls_after_fork(void)
{
    /* A DRBG instantiated in the parent would hand every child the same
     * bytes; dropping it makes the next use reseed from getrandom(). */
    wolfSSL_RAND_Cleanup();
}

/* The NULL-terminated names, comma-separated, into buf; none if empty. */
static const char *join(const char *const *names, char *buf, size_t len, const char *none)
{
    size_t off = 0;
    for (size_t i = 0; names[i] && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", names[i]);
    if (!off)
        snprintf(buf, len, "%s", none);
    return buf;
}

const char *tls_acceleration(void)
{
    /* From the headers built against, which are those of the library
     * linked (statically, by run path, or the system's). */
    static const char *const on[] = {
#ifdef WOLFSSL_AESNI
        "AES-NI",
#endif
#ifdef USE_INTEL_SPEEDUP
        "Intel AVX/AVX2 (USE_INTEL_SPEEDUP)",
#endif
#if defined(WOLFSSL_SP_X86_64_ASM) || defined(WOLFSSL_SP_ASM)
        "SP math x86_64 asm",
#endif
        NULL,
    };
    static char buf[160];
    return join(on, buf, sizeof buf, "none (portable C; the default build, WOLFSSL=fast, "
                                     "links an optimised wolfSSL)");
}

const char *tls_conformance(void)
{
    /* What contrib/wolfssl-fast adds to Debian's wolfSSL for the RFCs'
     * sake (its README's "Conformance"), read from the headers built
     * against; the cases are in t/t1750-conformance.py. */
    static const char *const on[] = {
#ifdef WOLFSSL_VALIDATE_ECC_IMPORT
        "ECC points validated",
#endif
#if defined(WOLFSSL_MAX_SIGALGO) && WOLFSSL_MAX_SIGALGO >= 128
        "64 signature algorithms",
#endif
#ifdef WOLFSSL_TLS13_MIDDLEBOX_COMPAT
        "middlebox ChangeCipherSpec",
#endif
#ifdef WOLFSSL_EARLY_DATA
        "0-RTT skipped",
#endif
#ifdef TLSOFFD_WOLFSSL_PATCHED
        "alerts and versions patched",
#endif
        NULL,
    };
    static char buf[200];
    return join(on, buf, sizeof buf, "as Debian builds it (see tlsoffd.conf(5) CAVEATS)");
}

/* Is wolfSSL in the same object as this code (linked statically)? */
static int library_static(const char **file)
{
    Dl_info wolf, self;
    if (!dladdr((void *)wolfSSL_Init, &wolf) || !wolf.dli_fname)
        return *file = "(unknown)", 0;
    *file = wolf.dli_fname;
    return dladdr((void *)library_static, &self) && self.dli_fbase == wolf.dli_fbase;
}

/* Where the wolfSSL the build linked statically came from, if the build
 * knows: contrib/wolfssl-fast/build's stamp, passed on by the Makefile. */
static const char *library_source(void)
{
#ifdef TLSOFFD_WOLFSSL_SOURCE
    return ", " TLSOFFD_WOLFSSL_SOURCE;
#else
    return "";
#endif
}

const char *tls_library_linkage(void)
{
    static char buf[320];
    const char *file;
    if (library_static(&file))
        snprintf(buf, sizeof buf, "static%s", library_source());
    else
        snprintf(buf, sizeof buf, "shared, %s", file);
    return buf;
}

const char *tls_library_path(void)
{
    static char buf[320];
    const char *file;
    if (!library_static(&file))
        return file;
    snprintf(buf, sizeof buf, "the tlsoffd binary (linked statically%s)", library_source());
    return buf;
}

const char *tls_library_version(void)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "wolfSSL %s", wolfSSL_lib_version());
    return buf;
}

WOLFSSL_CTX *tls_ctx_fail(WOLFSSL_CTX *ctx, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    if (ctx)
        wolfSSL_CTX_free(ctx);
    return NULL;
}

const char *tls_last_error(char *buf, size_t len)
{
    unsigned long e = wolfSSL_ERR_get_error();
    if (e == 0)
        snprintf(buf, len, "not in PEM format or damaged");
    else
        wolfSSL_ERR_error_string_n(e, buf, (unsigned long)len);
    wolfSSL_ERR_clear_error();
    return buf;
}

/*
 * Does the private key belong to the certificate's public key? wolfSSL
 * 5.5.4's wolfSSL_CTX_check_private_key() accepts any EC P-256 key for an
 * EC P-256 certificate (seen: a freshly generated key passed), so the proof
 * is a signature made with the key and verified with the certificate.
 */
static bool key_matches_cert(const char *cert, const char *key)
{
    static const unsigned char msg[] = "tlsoffd key check";
    unsigned char sig[1024];
    size_t siglen = sizeof sig;
    bool ok = false;
    WOLFSSL_X509 *x = wolfSSL_X509_load_certificate_file(cert, WOLFSSL_FILETYPE_PEM);
    WOLFSSL_BIO *b = wolfSSL_BIO_new_file(key, "r");
    WOLFSSL_EVP_PKEY *priv = b ? wolfSSL_PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    WOLFSSL_EVP_PKEY *pub = x ? wolfSSL_X509_get_pubkey(x) : NULL;
    WOLFSSL_EVP_MD_CTX *sm = wolfSSL_EVP_MD_CTX_new(), *vm = wolfSSL_EVP_MD_CTX_new();

    if (priv && pub && sm && vm &&
        wolfSSL_EVP_DigestSignInit(sm, NULL, wolfSSL_EVP_sha256(), NULL, priv) == 1 &&
        wolfSSL_EVP_DigestSignUpdate(sm, msg, sizeof msg) == 1 &&
        wolfSSL_EVP_DigestSignFinal(sm, sig, &siglen) == 1 &&
        wolfSSL_EVP_DigestVerifyInit(vm, NULL, wolfSSL_EVP_sha256(), NULL, pub) == 1 &&
        wolfSSL_EVP_DigestVerifyUpdate(vm, msg, sizeof msg) == 1)
        ok = wolfSSL_EVP_DigestVerifyFinal(vm, sig, siglen) == 1;
    wolfSSL_EVP_MD_CTX_free(sm);
    wolfSSL_EVP_MD_CTX_free(vm);
    wolfSSL_EVP_PKEY_free(priv);
    wolfSSL_EVP_PKEY_free(pub);
    wolfSSL_BIO_free(b);
    wolfSSL_X509_free(x);
    wolfSSL_ERR_clear_error();
    return ok;
}

/* Blanks every "-----BEGIN ... PRIVATE KEY-----" block of a PEM text. */
static void blank_private_keys(char *pem)
{
    char *p = pem;
    while ((p = strstr(p, "-----BEGIN ")) != NULL) {
        char *label_end = strstr(p + 11, "-----");
        char *eol = strchr(p, '\n');
        if (!label_end || (eol && label_end > eol) || label_end - p < 11 + 11 ||
            memcmp(label_end - 11, "PRIVATE KEY", 11) != 0) {
            p += 11;
            continue;
        }
        char *end = strstr(label_end, "-----END ");
        end = end ? strstr(end + 9, "-----") : NULL;
        end = end ? end + 5 : p + strlen(p);
        memset(p, ' ', (size_t)(end - p));
        p = end;
    }
}

char *tls_read_public_pem(const char *path, size_t *len, char *why, size_t n)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    struct stat st;
    char *buf = NULL;
    if (fd < 0 || fstat(fd, &st) < 0)
        snprintf(why, n, "%s", strerror(errno));
    else if (st.st_size > TLS_PEM_MAX)
        snprintf(why, n, "larger than %ld bytes", TLS_PEM_MAX);
    else
        buf = xmalloc((size_t)st.st_size + 1);
    if (buf && read(fd, buf, (size_t)st.st_size) != st.st_size) {
        snprintf(why, n, "cannot read it: %s", strerror(errno));
        tls_free_pem(buf, (size_t)st.st_size + 1);
        buf = NULL;
    } else if (buf && memchr(buf, 0, (size_t)st.st_size)) {
        /* PEM is text: a NUL would end the blanking before a key after it */
        snprintf(why, n, "a NUL byte in it: not a PEM file");
        tls_free_pem(buf, (size_t)st.st_size + 1);
        buf = NULL;
    } else if (buf) {
        buf[st.st_size] = 0;
        blank_private_keys(buf);
        *len = (size_t)st.st_size;
    }
    if (fd >= 0)
        close(fd);
    return buf;
}

void tls_free_pem(char *pem, size_t len)
{
    if (pem)
        explicit_bzero(pem, len);
    free(pem);
}

/* The chain of cc->cert, from its text with any private key blanked out
 * (a key kept in the same file must not reach this process's memory). */
static int load_chain(WOLFSSL_CTX *ctx, const struct cert_conf *cc, char *why, size_t n)
{
    size_t len = 0;
    char *pem = tls_read_public_pem(cc->cert, &len, why, n);
    if (!pem)
        return -1;
    int rc = wolfSSL_CTX_use_certificate_chain_buffer_format(
                 ctx, (const unsigned char *)pem, (long)len, WOLFSSL_FILETYPE_PEM);
    if (rc != WOLFSSL_SUCCESS) {
        char e[160];
        snprintf(why, n, "cannot load a PEM chain: %s", tls_last_error(e, sizeof e));
    }
    tls_free_pem(pem, len + 1);
    return rc == WOLFSSL_SUCCESS ? 0 : -1;
}

WOLFSSL_CTX *tls_load_cert(WOLFSSL_CTX *ctx, const struct cert_conf *cc, char *err,
                              size_t errlen)
{
    char why[256];
    if (access(cc->cert, R_OK) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: certificate '%s': %s", cc->where, cc->cert,
                            strerror(errno));
    if (!cc->key_remote && access(cc->key, R_OK) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: key '%s': %s", cc->where, cc->key,
                            strerror(errno));
    if (load_chain(ctx, cc, why, sizeof why) < 0)
        return tls_ctx_fail(ctx, err, errlen, "%s: certificate '%s': %s", cc->where, cc->cert,
                            why);
    if (cc->key_remote) {           /* the key processes prove the key matches */
        tls_keys_remote(ctx, cc->key_id);
        return ctx;
    }
    if (wolfSSL_CTX_use_PrivateKey_file(ctx, cc->key, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)
        return tls_ctx_fail(ctx, err, errlen, "%s: key '%s': cannot load a PEM private key: %s",
                            cc->where, cc->key, tls_last_error(why, sizeof why));
    if (wolfSSL_CTX_check_private_key(ctx) != WOLFSSL_SUCCESS ||
        !key_matches_cert(cc->cert, cc->key))
        return tls_ctx_fail(ctx, err, errlen, "%s: key '%s' does not match certificate '%s'",
                            cc->where, cc->key, cc->cert);
    return ctx;
}

void tls_ctx_free(WOLFSSL_CTX *ctx)
{
    if (ctx)
        wolfSSL_CTX_free(ctx);
}
