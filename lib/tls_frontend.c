/*
 * tls_frontend — a frontend's TLS: one context per certificate, the
 * certificate chosen per connection from the ClientHello (SNI names and
 * wildcards, ECDSA or RSA by what the client can verify), ALPN, client
 * certificates (verification, the peer for the log), and the frontend's
 * handshake.
 */
#include "tls_int.h"
#include "clock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <wolfssl/error-ssl.h>
#include <wolfssl/openssl/evp.h>
#include <wolfssl/openssl/pem.h>
#include <wolfssl/openssl/ssl.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "alloc.h"
#include "clienthello.h"
#include "log.h"
#include "tls_hello.h"
#include "tls_policy.h"

#define NAMES_FIRST_CAP 16         /* names of a frontend, before it grows */

/* A name and the certificates that carry it (indices; -1: none). */
struct tls_name {
    char *name;
    int ecdsa, rsa;
};

struct tls_frontend {
    const struct frontend_conf *conf;
    struct tls_cert *certs;     /* conf->ncerts of them */
    struct tls_name *names;     /* sorted by name */
    size_t nnames;
    struct tls_name def;        /* for clients without SNI or an unknown name */
    bool allow12, allow13;
    struct tls_hello_policy hello;  /* what tls_hello_refusal() checks */
    struct tls_resume resume;   /* every certificate's context points to it */
    bool stapling;              /* some certificate staples OCSP */
    WOLFSSL_CERT_MANAGER *client_cm;   /* see verify_cb() */
};

/* ALPN: the first of the frontend's protocols the client offers. */
static int alpn_select_cb(WOLFSSL *ssl, const unsigned char **out, unsigned char *outlen,
                          const unsigned char *in, unsigned int inlen, void *arg)
{
    const struct tls_frontend *f = arg;
    (void)ssl;
    for (size_t i = 0; i < f->conf->nalpn; i++) {
        const char *p = f->conf->alpn[i];
        size_t n = strlen(p);
        for (unsigned int o = 0; o < inlen;) {
            unsigned int l = in[o];
            if (o + 1 + l > inlen)
                break;
            if (l == n && memcmp(in + o + 1, p, n) == 0) {
                *out = (const unsigned char *)p;
                *outlen = (unsigned char)n;
                return SSL_TLSEXT_ERR_OK;
            }
            o += 1 + l;
        }
    }
    return SSL_TLSEXT_ERR_NOACK;       /* no protocol in common: go on without ALPN */
}

/*
 * With OCSP stapling, wolfSSL needs the server certificate's issuer among
 * the context's CAs, and those CAs also verify client certificates. So on
 * a frontend that verifies clients and staples, a client certificate must
 * also verify against client_ca alone (and its CRL): this check runs on
 * the leaf after wolfSSL's own chain verification.
 */
static int verify_cb(int preverify, WOLFSSL_X509_STORE_CTX *store)
{
    if (!preverify)
        return 0;
    if (wolfSSL_X509_STORE_CTX_get_error_depth(store) != 0)
        return 1;
    WOLFSSL *ssl = wolfSSL_X509_STORE_CTX_get_ex_data(
        store, wolfSSL_get_ex_data_X509_STORE_CTX_idx());
    struct tls_conn *conn = ssl ? wolfSSL_GetIOReadCtx(ssl) : NULL;
    if (!conn || !conn->fe || !conn->fe->client_cm)
        return 1;
    WOLFSSL_X509 *x = wolfSSL_X509_STORE_CTX_get_current_cert(store);
    int len = 0;
    const unsigned char *der = x ? wolfSSL_X509_get_der(x, &len) : NULL;
    if (!der)           /* no certificate sent: verify_client decides */
        return 1;
    if (wolfSSL_CertManagerVerifyBuffer(conn->fe->client_cm, der, len, WOLFSSL_FILETYPE_ASN1) !=
        WOLFSSL_SUCCESS) {
        conn->verify_failed = "the client certificate is not issued by a client_ca certificate "
                              "(or is revoked by client_crl)";
        wolfSSL_X509_STORE_CTX_set_error(store, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
        return 0;
    }
    return 1;
}

/* The certificates of a PEM chain file, leaf first (at most max). */
static int read_chain(const char *path, WOLFSSL_X509 **out, int max)
{
    char why[128];
    size_t len = 0;
    char *pem = tls_read_public_pem(path, &len, why, sizeof why);
    WOLFSSL_BIO *b = pem ? wolfSSL_BIO_new_mem_buf(pem, (int)len) : NULL;
    int n = 0;
    while (b && n < max && (out[n] = wolfSSL_PEM_read_bio_X509(b, NULL, NULL, NULL)))
        n++;
    wolfSSL_BIO_free(b);
    tls_free_pem(pem, len + 1);
    wolfSSL_ERR_clear_error();
    return n;
}

/* name (lowercased) is carried by certificate cert; the first
 * certificate of each key type that carries a name serves it. */
static void add_name(struct tls_frontend *f, size_t *cap, const char *name, size_t cert)
{
    char low[256];
    size_t i;
    for (i = 0; name[i] && i + 1 < sizeof low; i++)
        low[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    low[i] = '\0';
    if (!*low)
        return;
    for (i = 0; i < f->nnames && strcmp(f->names[i].name, low); i++)
        ;
    if (i == f->nnames) {
        if (f->nnames == *cap) {
            *cap = *cap ? *cap * 2 : NAMES_FIRST_CAP;
            f->names = xreallocarray(f->names, *cap, sizeof *f->names);
        }
        f->names[f->nnames++] = (struct tls_name){ xstrdup(low), -1, -1 };
    }
    int *slot = f->certs[cert].ecdsa ? &f->names[i].ecdsa : &f->names[i].rsa;
    if (*slot < 0)
        *slot = (int)cert;
    else if ((size_t)*slot != cert)
        log_info("%s: frontend '%s': name '%s' is also in '%s', which comes first and is used",
                 f->certs[cert].conf->where, f->conf->name, low,
                 f->certs[*slot].conf->cert);
}

/* The SAN DNS names and the CN of x, for certificate index cert. */
static void add_names(struct tls_frontend *f, size_t *cap, WOLFSSL_X509 *x, size_t cert)
{
    char cn[256];
    char *alt;
    while ((alt = wolfSSL_X509_get_next_altname(x)))
        add_name(f, cap, alt, cert);
    if (wolfSSL_X509_NAME_get_text_by_NID(wolfSSL_X509_get_subject_name(x), NID_commonName, cn,
                                          sizeof cn) > 0)
        add_name(f, cap, cn, cert);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct tls_name *)a)->name, ((const struct tls_name *)b)->name);
}

static const struct tls_name *find_name(const struct tls_frontend *f, const char *name)
{
    struct tls_name key = { (char *)name, 0, 0 };
    return f->nnames ? bsearch(&key, f->names, f->nnames, sizeof key, by_name) : NULL;
}

/* Exact name first, then the wildcard for its first label. */
static const struct tls_name *lookup_sni(const struct tls_frontend *f, const char *sni)
{
    const struct tls_name *n = find_name(f, sni);
    const char *dot = strchr(sni, '.');
    char wild[260];
    if (n || !dot || dot == sni || !strchr(dot + 1, '.'))
        return n;
    snprintf(wild, sizeof wild, "*%s", dot);
    return find_name(f, wild);
}

static int setup_client_auth(struct tls_frontend *f, WOLFSSL_CTX *ctx, char *err, size_t errlen)
{
    const struct frontend_conf *fe = f->conf;
    char why[256];
    if (fe->verify_client == VERIFY_CLIENT_NONE)
        return 0;
    if (wolfSSL_CTX_load_verify_locations(ctx, fe->client_ca, NULL) != WOLFSSL_SUCCESS) {
        snprintf(err, errlen, "%s: frontend '%s': client_ca '%s': no PEM CA certificate: %s",
                 fe->where, fe->name, fe->client_ca, tls_last_error(why, sizeof why));
        return -1;
    }
    if (fe->client_crl &&
        (wolfSSL_CTX_EnableCRL(ctx, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS ||
         wolfSSL_CTX_LoadCRLFile(ctx, fe->client_crl, WOLFSSL_FILETYPE_PEM) != WOLFSSL_SUCCESS)) {
        snprintf(err, errlen, "%s: frontend '%s': client_crl '%s': no PEM CRL signed by a "
                 "client_ca certificate: %s", fe->where, fe->name, fe->client_crl,
                 tls_last_error(why, sizeof why));
        return -1;
    }
    wolfSSL_CTX_set_verify(ctx, WOLFSSL_VERIFY_PEER |
                                (fe->verify_client == VERIFY_CLIENT_REQUIRED
                                     ? WOLFSSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0), verify_cb);
    wolfSSL_CTX_set_verify_depth(ctx, fe->verify_depth);
    /* Else a TLS 1.2 CertificateRequest from an ECDSA server asks for
     * ECDSA client certificates only. */
    wolfSSL_CTX_set1_sigalgs_list(ctx, "ECDSA+SHA256:ECDSA+SHA384:ECDSA+SHA512:"
                                       "RSA-PSS+SHA256:RSA-PSS+SHA384:RSA-PSS+SHA512:"
                                       "RSA+SHA256:RSA+SHA384:RSA+SHA512");
    return 0;
}

static int make_client_cm(struct tls_frontend *f, char *err, size_t errlen)
{
    const struct frontend_conf *fe = f->conf;
    f->client_cm = wolfSSL_CertManagerNew();
    if (!f->client_cm ||
        wolfSSL_CertManagerLoadCA(f->client_cm, fe->client_ca, NULL) != WOLFSSL_SUCCESS ||
        (fe->client_crl &&
         (wolfSSL_CertManagerEnableCRL(f->client_cm, WOLFSSL_CRL_CHECKALL) != WOLFSSL_SUCCESS ||
          wolfSSL_CertManagerLoadCRLFile(f->client_cm, fe->client_crl, WOLFSSL_FILETYPE_PEM) !=
              WOLFSSL_SUCCESS))) {
        snprintf(err, errlen, "%s: frontend '%s': cannot load client_ca/client_crl again",
                 fe->where, fe->name);
        return -1;
    }
    return 0;
}

static void cert_algs(struct tls_cert *cert, WOLFSSL_X509 *x)
{
    WOLFSSL_EVP_PKEY *k = wolfSSL_X509_get_pubkey(x);
    int bits = k ? wolfSSL_EVP_PKEY_bits(k) : 0;
    cert->ecdsa = !(k && wolfSSL_EVP_PKEY_base_id(k) == EVP_PKEY_RSA);
    snprintf(cert->key_alg, sizeof cert->key_alg, "%s%d", cert->ecdsa ? "EC" : "RSA", bits);
    const char *sn = wolfSSL_OBJ_nid2sn(wolfSSL_X509_get_signature_nid(x));
    snprintf(cert->sig_alg, sizeof cert->sig_alg, "%s", sn ? sn : "");
    wolfSSL_EVP_PKEY_free(k);
}

/* Sessions are bound to the certificate that served them (tls_resume_bind). */
static void fingerprint(struct tls_cert *cert, WOLFSSL_X509 *x)
{
    int len = 0;
    const unsigned char *der = wolfSSL_X509_get_der(x, &len);
    if (der && len > 0)
        wc_Sha256Hash(der, (word32)len, cert->fingerprint);
}

/* Certificate i of f: its context, names, algorithms, ALPN and OCSP
 * staple. 0, or -1 with "file:line: ..." in err. */
static int load_cert_at(struct tls_frontend *f, const struct tls_conf *tc, size_t i,
                        size_t *cap, char *err, size_t errlen)
{
    struct tls_cert *cert = &f->certs[i];
    WOLFSSL_X509 *chain[2] = { NULL, NULL };     /* the leaf and its issuer */
    cert->conf = &f->conf->certs[i];
    if (!(cert->ctx = tls_policy_server_ctx(tc, &f->resume, err, errlen)) ||
        !(cert->ctx = tls_load_cert(cert->ctx, cert->conf, err, errlen)) ||
        setup_client_auth(f, cert->ctx, err, errlen) < 0)
        return -1;
    int n = read_chain(cert->conf->cert, chain, 2);
    if (n < 1) {
        snprintf(err, errlen, "%s: certificate '%s': cannot read it", cert->conf->where,
                 cert->conf->cert);
        return -1;
    }
    cert_algs(cert, chain[0]);
    fingerprint(cert, chain[0]);
    add_names(f, cap, chain[0], i);
    if (f->conf->nalpn)
        wolfSSL_CTX_set_alpn_select_cb(cert->ctx, alpn_select_cb, f);
    if (cert->conf->ocsp_file)
        f->stapling |= tls_ocsp_setup(cert, f->conf->name, chain, n);
    wolfSSL_X509_free(chain[0]);
    wolfSSL_X509_free(chain[1]);
    return 0;
}

/* For clients without SNI or with an unknown name: the first
 * certificate, and its other-key twin if the two share a name. */
static void set_default(struct tls_frontend *f)
{
    f->def = (struct tls_name){ NULL, f->certs[0].ecdsa ? 0 : -1, f->certs[0].ecdsa ? -1 : 0 };
    for (size_t i = 0; i < f->nnames; i++) {
        const struct tls_name *m = &f->names[i];
        if ((m->ecdsa == 0 || m->rsa == 0) && m->ecdsa >= 0 && m->rsa >= 0) {
            f->def = (struct tls_name){ NULL, m->ecdsa, m->rsa };
            break;
        }
    }
}

struct tls_frontend *tls_frontend_new(const struct tls_conf *tc, const struct frontend_conf *fe,
                                      const struct tls_resumption *r, char *err, size_t errlen)
{
    struct tls_frontend *f = xcalloc(1, sizeof *f);
    size_t cap = 0;

    f->conf = fe;
    f->allow12 = tc->min_version <= TLS1_2_VERSION;
    f->allow13 = tc->max_version >= TLS1_3_VERSION;
    f->hello = (struct tls_hello_policy){ .groups = tls_policy_groups(tc->groups),
                                          .allow12 = f->allow12, .allow13 = f->allow13 };
    tls_resume_init(&f->resume, r, fe);
    f->certs = xcalloc(fe->ncerts, sizeof *f->certs);
    for (size_t i = 0; i < fe->ncerts; i++)
        if (load_cert_at(f, tc, i, &cap, err, errlen) < 0)
            goto fail;
    if (f->stapling && fe->verify_client != VERIFY_CLIENT_NONE &&
        make_client_cm(f, err, errlen) < 0)
        goto fail;
    if (f->nnames)
        qsort(f->names, f->nnames, sizeof *f->names, by_name);
    set_default(f);
    return f;
fail:
    tls_frontend_free(f);
    return NULL;
}

void tls_frontend_free(struct tls_frontend *f)
{
    if (!f)
        return;
    for (size_t i = 0; f->certs && i < f->conf->ncerts; i++) {
        tls_ctx_free(f->certs[i].ctx);
        tls_ocsp_free(&f->certs[i].staple);
    }
    for (size_t i = 0; i < f->nnames; i++)
        free(f->names[i].name);
    if (f->client_cm)
        wolfSSL_CertManagerFree(f->client_cm);
    free(f->names);
    free(f->certs);
    free(f);
}

void tls_frontend_set_stats(struct tls_frontend *f, struct stats_worker *w)
{
    f->resume.stats = w;
}

size_t tls_frontend_certs(const struct tls_frontend *f, size_t *stapling)
{
    *stapling = 0;
    for (size_t i = 0; i < f->conf->ncerts; i++)
        *stapling += f->certs[i].staple.der != NULL;
    return f->conf->ncerts;
}

/* The ClientHello did not come (tls_io_read_hello failed): why. */
static enum tls_io no_hello(struct tls_conn *conn, char *reason, size_t len)
{
    tls_resume_count(&conn->fe->resume, conn, false);
    snprintf(reason, len, "%s", conn->timed_out ? "timed out waiting for the ClientHello"
                                : conn->peer_closed ? "connection closed by peer"
                                : strerror(conn->sys_errno));
    return tls_io_failure(conn);
}

/* Refuses the client before the handshake: a fatal alert, then close. */
static void refuse(struct tls_conn *conn, uint8_t description)
{
    const uint8_t alert[] = { 21, 3, 3, 0, 2, 2, description };
    ssize_t w = send(conn->fd, alert, sizeof alert, MSG_NOSIGNAL);
    (void)w;
    tls_resume_count(&conn->fe->resume, conn, false);
}

/* A ClientHello refused as it was read (client_hello_parse: over the
 * maximum size, a record of another type inside it) or against the
 * protocol (tls_hello_refusal): the alert chosen, and why. */
static enum tls_io refuse_hello(struct tls_conn *conn, const char *why, uint8_t alert,
                                char *reason, size_t len)
{
    refuse(conn, alert);
    snprintf(reason, len, "refused the ClientHello: %s", why);
    return TLS_IO_ERROR;
}

/* strict_sni and no certificate for the name: an unrecognized_name alert. */
static enum tls_io refuse_sni(struct tls_conn *conn, const struct client_hello *ch,
                              char *reason, size_t len)
{
    refuse(conn, 112);
    if (*ch->sni)
        snprintf(reason, len, "no certificate for server name '%s' (strict_sni)", ch->sni);
    else
        snprintf(reason, len, "%s (strict_sni)", ch->sni_invalid ? "an invalid server name"
                                                 : "no server name (SNI) sent");
    return TLS_IO_ERROR;
}

/* Of n's certificates, ECDSA if the client can verify it. A ClientHello
 * with a wrong length inside was not read to its end: RSA, which every
 * client can verify, if there is a choice. */
static struct tls_cert *choose_cert(struct tls_frontend *f, const struct tls_name *n,
                                    const struct client_hello *ch, bool hello)
{
    bool ecdsa = hello && ch->complete && client_hello_ecdsa(ch, f->allow12, f->allow13);
    int pick = n->ecdsa >= 0 && (n->rsa < 0 || ecdsa) ? n->ecdsa : n->rsa;
    return &f->certs[pick];
}

/* After the handshake: the reason a client certificate was refused, or
 * the protocol ALPN chose. */
static void after_handshake(struct tls_frontend *f, struct tls_conn *conn, enum tls_io r,
                            char *reason, size_t len)
{
    if (r == TLS_IO_ERROR && conn->verify_failed) {
        snprintf(reason, len, "%s", conn->verify_failed);
    } else if (r == TLS_IO_ERROR && f->conf->verify_client == VERIFY_CLIENT_REQUIRED) {
        int e = wolfSSL_get_error(conn->ssl, -1);
        WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(conn->ssl);
        if (!x && (e == NO_PEER_CERT || e == VERIFY_CERT_ERROR))
            snprintf(reason, len, "the client sent no certificate (verify_client = required)");
        wolfSSL_X509_free(x);
    }
    if (r == TLS_IO_OK) {
        char *proto = NULL;
        unsigned short plen = 0;
        if (wolfSSL_ALPN_GetProtocol(conn->ssl, &proto, &plen) == WOLFSSL_SUCCESS && proto &&
            plen < sizeof conn->alpn) {
            memcpy(conn->alpn, proto, plen);
            conn->alpn[plen] = '\0';
        }
        wolfSSL_ERR_clear_error();
    }
}

enum tls_io tls_frontend_accept(struct tls_frontend *f, struct tls_conn **out, int fd,
                                uint8_t *rbuf, size_t cap, double timeout, char *reason,
                                size_t len)
{
    struct tls_conn *conn = *out = tls_io_conn(fd);
    struct client_hello ch;
    const struct tls_name *n = NULL;

    conn->fe = f;
    conn->rbuf = rbuf;
    conn->rcap = cap;
    conn->deadline = clock_now_ms() + (int64_t)(timeout * 1000);
    long hl = tls_io_read_hello(conn, &ch);
    if (hl == -2)
        return refuse_hello(conn, ch.refused, ch.alert, reason, len);
    if (hl < 0)
        return no_hello(conn, reason, len);
    if (hl > 0)
        snprintf(conn->sni, sizeof conn->sni, "%s", ch.sni);
    uint8_t alert = 0;
    const char *why = hl > 0 ? tls_hello_refusal(&f->hello, &ch, &alert) : NULL;
    if (why)
        return refuse_hello(conn, why, alert, reason, len);
    if (hl > 0 && *ch.sni)
        n = lookup_sni(f, ch.sni);
    if (!n && f->conf->strict_sni && hl > 0)
        return refuse_sni(conn, &ch, reason, len);
    conn->cert = choose_cert(f, n ? n : &f->def, &ch, hl > 0);
    tls_resume_bind(&f->resume, conn, conn->cert->fingerprint, conn->sni);
    if (tls_io_attach(conn, conn->cert->ctx) < 0) {
        snprintf(reason, len, "cannot set up a TLS connection: out of memory");
        return TLS_IO_ERROR;
    }
    enum tls_io r = tls_conn_accept(conn, timeout, reason, len);
    after_handshake(f, conn, r, reason, len);
    return r;
}

const char *tls_conn_key_alg(struct tls_conn *conn)
{
    return conn->cert && *conn->cert->key_alg ? conn->cert->key_alg : NULL;
}

const char *tls_conn_sig_alg(struct tls_conn *conn)
{
    return conn->cert && *conn->cert->sig_alg ? conn->cert->sig_alg : NULL;
}

/* p says id is the certificate of the session. */
static void peer_is(struct tls_peer *p, const struct tls_identity *id)
{
    p->session = true;
    snprintf(p->subject, sizeof p->subject, "%s", id->subject);
    snprintf(p->cn, sizeof p->cn, "%s", id->cn);
}

void tls_conn_peer(struct tls_conn *conn, struct tls_peer *p)
{
    memset(p, 0, sizeof *p);
    if (!conn->ssl || !conn->fe || conn->fe->conf->verify_client == VERIFY_CLIENT_NONE)
        return;
    WOLFSSL_X509 *x = wolfSSL_get_peer_certificate(conn->ssl);
    bool resumed = wolfSSL_session_reused(conn->ssl);
    struct tls_identity id;
    if (x) {
        tls_identity_of(x, &id);
        peer_is(p, &id);
        p->presented = !resumed;
        wolfSSL_X509_free(x);
    } else if (resumed && conn->has_ticket_peer) {
        peer_is(p, &conn->ticket_peer);     /* a ticket's, kept in the cache */
    } else if (resumed && conn->fe->conf->verify_client == VERIFY_CLIENT_REQUIRED) {
        p->session = true;      /* the session could only be made with one */
        snprintf(p->subject, sizeof p->subject, "(resumed)");
    }
    wolfSSL_ERR_clear_error();
}

struct tls_cert *tls_frontend_cert(const struct tls_frontend *f, size_t i)
{
    return f && i < f->conf->ncerts ? &f->certs[i] : NULL;
}

int tls_frontend_cert_index(const struct tls_conn *conn)
{
    if (!conn->fe || !conn->cert)
        return -1;
    return (int)(conn->cert - conn->fe->certs);
}
