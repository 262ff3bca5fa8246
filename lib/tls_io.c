/*
 * tls_io — one TLS connection's I/O: the wolfSSL I/O callbacks that bound
 * every read and write by the connection's absolute deadline (a
 * slow-drip client cannot hold a worker), the optional read-ahead buffer,
 * and the connection's handshake, read, write and close.
 */
#include "tls_int.h"
#include "clock.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <wolfssl/wolfio.h>
#include <wolfssl/error-ssl.h>

#include "alloc.h"
#include "clienthello.h"

#define POLL_SLICE_MS       60000   /* one poll() waits at most this long */
#define CLOSE_NOTIFY_MS     1000    /* close_notify gets at least this long */

int tls_io_wait(struct tls_conn *conn, short events)
{
    for (;;) {
        int64_t left = conn->deadline - clock_now_ms();
        if (left <= 0) {
            conn->timed_out = true;
            return -1;
        }
        struct pollfd p = { .fd = conn->fd, .events = events };
        int rc = poll(&p, 1, left > POLL_SLICE_MS ? POLL_SLICE_MS : (int)left);
        if (rc > 0)
            return 0;
        if (rc < 0 && errno != EINTR) {
            conn->sys_errno = errno;
            return -1;
        }
    }
}

static int io_error(struct tls_conn *conn, int err)
{
    conn->sys_errno = err;
    if (err == ECONNRESET)
        return WOLFSSL_CBIO_ERR_CONN_RST;
    if (err == EPIPE) {
        conn->peer_closed = true;
        return WOLFSSL_CBIO_ERR_CONN_CLOSE;
    }
    return WOLFSSL_CBIO_ERR_GENERAL;
}

static int recv_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct tls_conn *conn = ctx;
    (void)ssl;
    for (;;) {
        if (conn->roff < conn->rlen) {        /* read ahead (first, the ClientHello) */
            size_t n = conn->rlen - conn->roff;
            if (n > (size_t)sz)
                n = (size_t)sz;
            memcpy(buf, conn->rbuf + conn->roff, n);
            conn->roff += n;
            return (int)n;
        }
        ssize_t n = conn->rbuf ? recv(conn->fd, conn->rbuf, conn->rcap, 0)
                               : recv(conn->fd, buf, (size_t)sz, 0);
        if (n > 0 && conn->rbuf) {
            conn->rlen = (size_t)n;
            conn->roff = 0;
            conn->drained = (size_t)n < conn->rcap;   /* less than asked: nothing more yet */
            continue;
        }
        conn->drained = conn->rbuf && n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
        if (n > 0)
            return (int)n;
        if (n == 0) {
            /* Reported as "want read" with a flag, not CONN_CLOSE: wolfSSL
             * marks a CONN_CLOSE connection closed and would then refuse to
             * send the rest of the reply and our close_notify (half-close). */
            conn->peer_closed = true;
            return WOLFSSL_CBIO_ERR_WANT_READ;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error(conn, errno);
        if (conn->nonblock)
            return WOLFSSL_CBIO_ERR_WANT_READ;
        if (tls_io_wait(conn, POLLIN) < 0)
            return conn->timed_out ? WOLFSSL_CBIO_ERR_TIMEOUT : WOLFSSL_CBIO_ERR_GENERAL;
    }
}

static int send_cb(WOLFSSL *ssl, char *buf, int sz, void *ctx)
{
    struct tls_conn *conn = ctx;
    (void)ssl;
    for (;;) {
        ssize_t n = send(conn->fd, buf, (size_t)sz, MSG_NOSIGNAL);
        if (n >= 0)
            return (int)n;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return io_error(conn, errno);
        if (conn->nonblock)
            return WOLFSSL_CBIO_ERR_WANT_WRITE;
        if (tls_io_wait(conn, POLLOUT) < 0)
            return conn->timed_out ? WOLFSSL_CBIO_ERR_TIMEOUT : WOLFSSL_CBIO_ERR_GENERAL;
    }
}

int tls_io_attach(struct tls_conn *conn, WOLFSSL_CTX *ctx)
{
    if (!(conn->ssl = wolfSSL_new(ctx)))
        return -1;
    wolfSSL_SSLSetIORecv(conn->ssl, recv_cb);
    wolfSSL_SSLSetIOSend(conn->ssl, send_cb);
    wolfSSL_SetIOReadCtx(conn->ssl, conn);
    wolfSSL_SetIOWriteCtx(conn->ssl, conn);
    return 0;
}

long tls_io_read_hello(struct tls_conn *conn, struct client_hello *ch)
{
    size_t have = 0;
    uint8_t *buf = conn->rbuf;
    for (;;) {
        long need = client_hello_parse(buf, have, ch);
        if (need > (long)conn->rcap) {          /* a buffer under CLIENT_HELLO_MAX */
            ch->alert = 47;
            ch->refused = "a ClientHello larger than the read buffer";
            need = -2;
        }
        if (need <= 0) {
            conn->rlen = have;
            conn->roff = 0;
            return need == 0 ? (long)have : need == -2 ? -2 : 0;
        }
        /* All that came (the rest of the flight too), up to the buffer. */
        ssize_t n = recv(conn->fd, buf + have, conn->rcap - have, 0);
        if (n > 0) {
            have += (size_t)n;
            continue;
        }
        if (n == 0) {
            conn->peer_closed = true;
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            conn->sys_errno = errno;
            return -1;
        }
        if (tls_io_wait(conn, POLLIN) < 0)
            return -1;
    }
}

enum tls_io tls_io_failure(const struct tls_conn *conn)
{
    return conn->timed_out ? TLS_IO_TIMEOUT : conn->peer_closed ? TLS_IO_CLOSED : TLS_IO_ERROR;
}

struct tls_conn *tls_io_conn(int fd)
{
    struct tls_conn *conn = xcalloc(1, sizeof *conn);
    conn->fd = fd;
    return conn;
}

struct tls_conn *tls_conn_new(WOLFSSL_CTX *ctx, int fd)
{
    struct tls_conn *conn = tls_io_conn(fd);
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || tls_io_attach(conn, ctx) < 0) {
        tls_conn_free(conn);
        return NULL;
    }
    return conn;
}

void tls_conn_free(struct tls_conn *conn)
{
    if (!conn)
        return;
    if (conn->ssl)
        wolfSSL_free(conn->ssl);
    free(conn);
}

void tls_conn_error(struct tls_conn *conn, int ret, char *buf, size_t len)
{
    int e = wolfSSL_get_error(conn->ssl, ret);
    char w[WOLFSSL_MAX_ERROR_SZ];
    if (conn->timed_out)
        snprintf(buf, len, "timed out");
    else if (conn->sys_errno)
        snprintf(buf, len, "%s", strerror(conn->sys_errno));
    else if (conn->peer_closed)
        snprintf(buf, len, "connection closed by peer");
    else if (e == WC_HW_E && tls_keys_failure())
        snprintf(buf, len, "signing: %s", tls_keys_failure());
    else
        snprintf(buf, len, "%s (%d)", wolfSSL_ERR_error_string((unsigned long)e, w), e);
}

enum tls_io tls_conn_accept(struct tls_conn *conn, double timeout, char *reason, size_t len)
{
    conn->nonblock = false;
    if (!conn->fe)                 /* a frontend's deadline runs from the first byte wait */
        conn->deadline = clock_now_ms() + (int64_t)(timeout * 1000);
    int ret = wolfSSL_accept(conn->ssl);
    /* A wolfSSL with early data may return after its own Finished, before
     * the client's, when the client offered early data: go on to it. */
    for (int i = 0; ret == WOLFSSL_SUCCESS && !wolfSSL_is_init_finished(conn->ssl); i++)
        ret = i < 2 ? wolfSSL_accept(conn->ssl) : WOLFSSL_FATAL_ERROR;
    tls_resume_count(tls_resume_of(conn->ssl), conn, ret == WOLFSSL_SUCCESS);
    if (ret == WOLFSSL_SUCCESS)
        return TLS_IO_OK;
    tls_conn_error(conn, ret, reason, len);
    return tls_io_failure(conn);
}

enum tls_io tls_conn_connect(struct tls_conn *conn, const struct backend_tls_conf *t,
                             void *session, double timeout, char *reason, size_t len)
{
    conn->nonblock = false;
    conn->deadline = clock_now_ms() + (int64_t)(timeout * 1000);
    if (t->sni)
        wolfSSL_UseSNI(conn->ssl, WOLFSSL_SNI_HOST_NAME, t->sni, (unsigned short)strlen(t->sni));
    if (t->verify && t->verify_name)
        wolfSSL_check_domain_name(conn->ssl, t->verify_name);
    if (session)
        wolfSSL_set_session(conn->ssl, session);
    int ret = wolfSSL_connect(conn->ssl);
    if (ret == WOLFSSL_SUCCESS)
        return TLS_IO_OK;
    tls_conn_error(conn, ret, reason, len);
    return tls_io_failure(conn);
}

void tls_conn_save_session(struct tls_conn *conn, void **session)
{
    WOLFSSL_SESSION *s = wolfSSL_get1_session(conn->ssl);
    if (!s)
        return;
    tls_session_free(*session);
    *session = s;
}

void tls_session_free(void *session)
{
    if (session)
        wolfSSL_SESSION_free(session);
}

static enum tls_io classify(struct tls_conn *conn, int ret)
{
    int e = wolfSSL_get_error(conn->ssl, ret);
    if (conn->peer_closed && e == WOLFSSL_ERROR_WANT_READ)
        return TLS_IO_CLOSED;
    if (e == WOLFSSL_ERROR_WANT_READ)
        return TLS_IO_WANT_READ;
    if (e == WOLFSSL_ERROR_WANT_WRITE)
        return TLS_IO_WANT_WRITE;
    if (conn->timed_out)
        return TLS_IO_TIMEOUT;
    if (e == WOLFSSL_ERROR_ZERO_RETURN || conn->peer_closed || e == SOCKET_PEER_CLOSED_E)
        return TLS_IO_CLOSED;
    return TLS_IO_ERROR;
}

/* The end of the client's data is said once by wolfSSL: after a write,
 * wolfSSL_read() reads the socket again and reports WANT_READ. So it is
 * remembered here, and every read after it says CLOSED too. */
enum tls_io tls_conn_read(struct tls_conn *conn, void *buf, size_t len, size_t *n)
{
    if (conn->closed)
        return TLS_IO_CLOSED;
    int ret = wolfSSL_read(conn->ssl, buf, (int)len);
    if (ret > 0) {
        *n = (size_t)ret;
        return TLS_IO_OK;
    }
    enum tls_io r = classify(conn, ret);
    conn->closed = r == TLS_IO_CLOSED;
    return r;
}

enum tls_io tls_conn_write(struct tls_conn *conn, const void *buf, size_t len)
{
    int ret = wolfSSL_write(conn->ssl, buf, (int)len);
    if (ret > 0)
        return TLS_IO_OK;
    return classify(conn, ret);
}

bool tls_conn_pending(struct tls_conn *conn)
{
    return conn->roff < conn->rlen || wolfSSL_pending(conn->ssl) > 0;
}

void tls_conn_readahead(struct tls_conn *conn, uint8_t *buf, size_t cap)
{
    conn->rbuf = buf;
    conn->rcap = cap;
    conn->rlen = conn->roff = 0;
}

uint8_t *tls_conn_idle_readahead(struct tls_conn *conn, size_t *cap)
{
    if (!conn->rbuf || conn->roff < conn->rlen)
        return NULL;
    conn->rlen = conn->roff = 0;
    *cap = conn->rcap;
    return conn->rbuf;
}

bool tls_conn_drained(const struct tls_conn *conn)
{
    return conn->drained;
}

int tls_conn_fd(const struct tls_conn *conn)
{
    return conn->fd;
}

void tls_conn_set_nonblock(struct tls_conn *conn, bool on)
{
    conn->nonblock = on;
}

void tls_conn_set_deadline(struct tls_conn *conn, int64_t deadline)
{
    conn->deadline = deadline;
}

void tls_conn_close_notify(struct tls_conn *conn)
{
    bool nb = conn->nonblock;
    conn->nonblock = false;
    if (conn->deadline < clock_now_ms() + CLOSE_NOTIFY_MS)
        conn->deadline = clock_now_ms() + CLOSE_NOTIFY_MS;
    wolfSSL_shutdown(conn->ssl);
    conn->nonblock = nb;
}

const char *tls_conn_version(struct tls_conn *conn)
{
    return wolfSSL_get_version(conn->ssl);
}

const char *tls_conn_cipher(struct tls_conn *conn)
{
    const char *n = wolfSSL_get_cipher_name(conn->ssl);
    return n ? n : "-";
}

const char *tls_conn_sni(struct tls_conn *conn)
{
    if (conn->fe)
        return *conn->sni ? conn->sni : "-";
    const char *n = wolfSSL_get_servername(conn->ssl, WOLFSSL_SNI_HOST_NAME);
    return n && *n ? n : "-";
}

const char *tls_conn_alpn(struct tls_conn *conn)
{
    return *conn->alpn ? conn->alpn : NULL;
}
