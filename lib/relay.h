/*
 * relay — the two-way copy between a TLS client and a plain backend socket.
 *
 * Owns: buffering (one 64 KiB buffer each way, RELAY_BUF_SIZE: the
 * backend's bytes are read 64 KiB at a time and leave as full-size
 * records; the client's records are read one at a time, and those already
 * arrived go to the backend together, up to 64 KiB a send), giving the
 * buffers of a quiet connection back to the kernel, half-close (client
 * close_notify or FIN -> backend shutdown(SHUT_WR); backend EOF ->
 * close_notify and FIN to the client), the idle timeout.
 */
#ifndef TLSOFFD_RELAY_H
#define TLSOFFD_RELAY_H

#include <stdint.h>
#include <stddef.h>

#include "net.h"
#include "tls.h"

#define RELAY_BUF 16384     /* one maximum-size TLS record */
/* Each direction's buffer: four full records. Backend to client, one
 * recv() for four records (wolfSSL_write splits them), a quarter of the
 * reads of a 16 KiB buffer; client to backend, one send() for up to four. */
#define RELAY_BUF_SIZE (4 * RELAY_BUF)

enum relay_end {
    RELAY_DONE,             /* both sides finished cleanly */
    RELAY_IDLE_TIMEOUT,     /* no byte either way for the idle timeout */
    RELAY_CLIENT_ERROR,     /* reset, TLS alert, bad record ... */
    RELAY_BACKEND_ERROR,    /* reset or other socket error */
    RELAY_SHED,             /* closed on request while idle (the pool was full) */
    RELAY_QUIET,            /* nothing delivered for o->quiet_ms and nothing buffered:
                             * still open, to be parked (the caller decides) */
};

struct relay_opts {
    double idle;                /* seconds with no byte delivered either way: the end */
    /* A request to shed the connection (its flag set by a signal handler):
     * honoured, with a close_notify to the client, when nothing was
     * delivered for shed_idle_ms; otherwise cleared and the relay goes on.
     * NULL: none. */
    struct net_stop *shed;
    int64_t shed_idle_ms;
    /* Where the time (clock_now_ms) of the last delivery is published for
     * other processes (the scoreboard); NULL: nowhere. */
    int64_t *delivered_at;
    /* > 0: end with RELAY_QUIET when nothing was delivered for this long
     * and nothing is buffered either way (no half-close either). */
    int64_t quiet_ms;
    /* The last delivery before this run (a connection relayed before, in
     * another process), clock_now_ms; 0: now. */
    int64_t since;
};

struct relay_result {
    uint64_t to_backend;    /* decrypted bytes from the client */
    uint64_t to_client;     /* bytes from the backend */
    enum relay_end end;
    int64_t delivered_at;   /* the last byte delivered either way (clock_now_ms) */
    char reason[160];
};

/*
 * fn is called once per relay_run() when no byte has moved for after_ms
 * (a connection held idle): the caller may give memory back there. NULL:
 * none.
 */
void relay_set_idle_hook(void (*fn)(void), int after_ms);

/*
 * Copies until both directions are closed, an error, o->idle seconds pass
 * with no byte delivered, or a shed request (o->shed). The client connection is switched to non-blocking
 * TLS I/O; backend must be a non-blocking socket. With backend_tls (a
 * client TLS connection over that socket, handshake done) the backend
 * side is TLS too: re-encryption.
 */
void relay_run(struct tls_conn *client, int backend, struct tls_conn *backend_tls,
               const struct relay_opts *o, struct relay_result *res);

const char *relay_end_outcome(enum relay_end e);

#endif
