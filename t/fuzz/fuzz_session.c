/*
 * fuzz_session — a serialized TLS session as tls_resume.c's sess_get_cb
 * takes it out of the shared cache (which any worker writes): checked by
 * sessblob_ok, then decoded by wolfSSL_d2i_SSL_SESSION, then what wolfSSL
 * does with the session the callback returns (a copy) and what
 * tls_resume.c reads of one (its ID, its timeout), and the session
 * encoded again. (Without sessblob_ok, wolfSSL 5.5.4 crashed at once:
 * corpus/session/regress-session-id-overflow.)
 *
 * wolfSSL is the static library the daemon links, built with gcc and not
 * instrumented: the fuzzer sees no coverage inside it and ASan checks
 * only what goes through its interceptors (memcpy, malloc and free), so
 * this finds crashes and gross overruns, not every stray read.
 */
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include <string.h>

#include "fuzz.h"
#include "sessblob.h"
#include "sesscache.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    wolfSSL_Init();
    return 0;
}

static void use(WOLFSSL_SESSION *s)
{
    unsigned int idlen = 0;
    (void)wolfSSL_SESSION_get_id(s, &idlen);
    FUZZ_ASSERT(idlen <= 32);
    (void)wolfSSL_SESSION_get_timeout(s);
    WOLFSSL_SESSION *copy = wolfSSL_SESSION_dup(s);
    wolfSSL_SESSION_free(copy);
    int n = wolfSSL_i2d_SSL_SESSION(s, NULL);
    if (n > 0) {
        unsigned char *der = NULL;
        FUZZ_ASSERT(wolfSSL_i2d_SSL_SESSION(s, &der) == n);
        XFREE(der, NULL, DYNAMIC_TYPE_OPENSSL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || size > sesscache_max_data())    /* the cache holds no more */
        return 0;
    unsigned char *blob = malloc(size);             /* exactly the blob */
    memcpy(blob, data, size);
    const unsigned char *p = blob;
    WOLFSSL_SESSION *s = sessblob_ok(blob, size) ? wolfSSL_d2i_SSL_SESSION(NULL, &p, (long)size)
                                                 : NULL;
    if (s) {
        FUZZ_ASSERT(p > blob && p <= blob + size);
        use(s);
        wolfSSL_SESSION_free(s);
    }
    free(blob);
    return 0;
}
