/*
 * worker — one connection at a time: accept, TLS handshake, connect to the
 * backend, relay, log, and accept again.
 *
 * No thundering herd: as Apache's prefork does, the idle workers take
 * turns through an accept lock (a process-shared robust mutex, one per
 * configuration generation): only the holder polls the listening sockets,
 * accepts one connection, and hands the lock on before it serves it. A
 * worker killed while holding the lock leaves EOWNERDEAD, which the next
 * one clears. The listeners are non-blocking, because after a reload the
 * workers of two generations may poll the same socket, and the one that
 * loses the race must not block in accept(). EPOLLEXCLUSIVE was not used:
 * a busy worker's epoll instance can swallow the wakeup of a connection an
 * idle worker should have taken.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <stddef.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"
#include "keyclient.h"

#include "alloc.h"
#include "child.h"
#include "clients.h"
#include "clock.h"
#include "exit.h"
#include "log.h"
#include "net.h"
#include "park.h"
#include "passfd.h"
#include "proxyproto.h"
#include "relay.h"
#include "upstream.h"

/* One connection at a time: its read-ahead buffers are the worker's. */
static uint8_t client_rbuf[TLS_READAHEAD_SIZE], backend_rbuf[TLS_READAHEAD_SIZE];

/* Tests: while the file this names exists, the next connection (the one
 * worker that removes it) fails its first allocation (tlsoffd(8)). */
static const char *fail_test;

#define ACCEPT_PAUSE_MS 100    /* after accept() failed for want of fds or memory */

static volatile sig_atomic_t stopping;
static struct stats_worker *my_stats;      /* this worker's scoreboard slot */
static volatile sig_atomic_t reopen_logs;

static const char *serving = "-";           /* the client being served */

/* A failed allocation costs the connection being served, and nothing
 * else: the worker exits and the master starts another. */
static void out_of_memory(size_t size, const char *file, int line)
{
    log_error("out of memory: %zu bytes at %s:%d while serving %s; the connection is "
              "dropped and this worker exits", size, file, line, serving);
    _exit(EXIT_OOM);
}

static void on_quit(int sig)
{
    (void)sig;
    stopping = 1;
}

static void on_usr1(int sig)
{
    (void)sig;
    reopen_logs = 1;
}

/* SIGUSR2 from the master: the pool is full, and this worker's connection
 * is among the longest idle. Taken only while the relay waits. */
static volatile sig_atomic_t shed_asked;
static sigset_t relay_mask;         /* the worker's mask, the shed signal let in */
static struct net_stop shed_stop = { .flag = &shed_asked, .mask = &relay_mask };

static void on_shed(int sig)
{
    (void)sig;
    shed_asked = 1;
}

/*
 * Takes the accept lock. A mutex wait cannot be interrupted by a signal,
 * so it gives up every second to let the caller see a stop or log-reopen
 * request. Returns 0 when held.
 */
static int lock_accept(pthread_mutex_t *m)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 1;
    int rc = pthread_mutex_timedlock(m, &until);
    if (rc == EOWNERDEAD) {
        log_warning("accept lock: its holder died; recovered");
        pthread_mutex_consistent(m);
        rc = 0;
    }
    return rc;
}

#define ACCEPT_PARKED (-2)      /* accept_one: a parked connection came back */

/* A connection the park process handed back, and its two sockets. */
static struct park_msg parked;
static int parked_fds[2];

/* Takes a connection handed back by the park process: true if one came. */
static bool take_parked(int sock)
{
    int fds[PASSFD_MAX], nfds;
    ssize_t n = passfd_recv(sock, &parked, sizeof parked, fds, PASSFD_MAX, &nfds);
    if (n < 0)
        return false;           /* another worker took it, or nothing: EAGAIN */
    if (nfds == 2 && n >= (ssize_t)offsetof(struct park_msg, tls) &&
        parked.magic == PARK_MAGIC && parked.size == (uint32_t)n &&
        parked.tls_len <= sizeof parked.tls) {
        parked_fds[0] = fds[0];
        parked_fds[1] = fds[1];
        return true;
    }
    log_warning("a damaged message from the park process: ignored");
    for (int i = 0; i < nfds; i++)
        close(fds[i]);
    return false;
}

/*
 * Waits for and accepts one connection: its fd; ACCEPT_PARKED when a
 * parked connection came back instead (in parked); -1 if stopping or
 * nothing came.
 */
static int accept_one(struct runtime *rt, size_t *which, struct sockaddr_storage *peer)
{
    socklen_t len = sizeof *peer;
    static struct pollfd *p;
    size_t n = rt->nlisteners;
    int fd = -1;
    if (!p) {
        p = xcalloc(n + 1, sizeof *p);
        for (size_t i = 0; i < n; i++)
            p[i] = (struct pollfd){ .fd = rt->listeners[i].fd, .events = POLLIN };
        p[n] = (struct pollfd){ .fd = rt->park_fd[0], .events = POLLIN };   /* -1: none */
    }
    if (lock_accept(rt->accept_lock) != 0) {
        errno = EINTR;
        return -1;
    }
    while (!stopping && fd == -1) {
        if (poll(p, n + 1, -1) <= 0)
            break;
        if ((p[n].revents & POLLIN) && take_parked(p[n].fd))
            fd = ACCEPT_PARKED;
        for (size_t i = 0; i < n && fd == -1; i++)
            if (p[i].revents & POLLIN) {
                len = sizeof *peer;
                fd = accept4(p[i].fd, (struct sockaddr *)peer, &len,
                             SOCK_CLOEXEC | SOCK_NONBLOCK);
                *which = i;
            }
    }
    pthread_mutex_unlock(rt->accept_lock);
    return fd;
}

static enum stat_id refusal_stat(enum clients_verdict v)
{
    switch (v) {
    case CLIENTS_DENIED: return ST_REFUSED_DENIED;
    case CLIENTS_NOT_ALLOWED: return ST_REFUSED_NOT_ALLOWED;
    case CLIENTS_RATE: return ST_REFUSED_RATE;
    default: return ST_REFUSED_PER_CLIENT;
    }
}

static void log_refusal(const struct limits_conf *l, const char *client, enum clients_verdict v)
{
    switch (v) {
    case CLIENTS_DENIED:
        log_warning("client %s refused: in limits.deny", client);
        break;
    case CLIENTS_NOT_ALLOWED:
        log_warning("client %s refused: not in limits.allow", client);
        break;
    case CLIENTS_RATE:
        log_warning("client %s refused: limits.handshake_rate (%d full handshakes a second, "
                    "a burst of %d) spent", client, l->handshake_rate,
                    l->handshake_burst > l->handshake_rate ? l->handshake_burst
                                                           : l->handshake_rate);
        break;
    default:
        log_warning("client %s refused: limits.per_client (%d connections open already)",
                    client, l->per_client);
        break;
    }
}

/*
 * The client table's verdict, right after the accept and before any
 * crypto. An admitted connection's count is in *ticket (the scoreboard's
 * copy, so that the master releases it if this worker dies); a refused
 * one is counted, logged at most once a second per client, and closed at
 * once by the caller.
 */
static bool admit(struct runtime *rt, const struct sockaddr_storage *peer,
                  struct clients_ticket *ticket)
{
    int64_t now = clock_now_ms();
    enum clients_verdict v = clients_admit(rt->clients, (const struct sockaddr *)peer, now,
                                           ticket);
    if (clients_admitted(v)) {
        if (v != CLIENTS_OK)
            stats_inc(my_stats, ST_UNCOUNTED);
        return true;
    }
    stats_inc(my_stats, refusal_stat(v));
    if (clients_should_log(rt->clients, (const struct sockaddr *)peer, now)) {
        char client[ADDR_STRLEN];
        addr_format((const struct sockaddr *)peer, client, sizeof client);
        log_refusal(&rt->cfg->limits, client, v);
    }
    return false;
}

/* What the access log says of one connection. */
struct conn_log {
    char client[ADDR_STRLEN];
    const char *frontend;
    char backend[ADDR_STRLEN];
    const char *version, *cipher, *resumed;     /* static strings */
    char sni[256];          /* a copy: wolfSSL may free its own at close_notify */
    char alpn[256];
    char client_cert[260];  /* "-" or the subject, quoted */
    uint64_t in, out;
    int64_t start;
    const char *outcome;
    char reason[200];
};

/* One connection: the client's side, the backend's side, and its log line. */
struct conn {
    int client_fd;
    const struct sockaddr_storage *peer;
    const struct frontend_conf *fe;
    struct tls_conn *client;        /* the client's TLS */
    struct tls_peer client_peer;    /* its certificate, if any */
    const char *alpn;               /* negotiated, or NULL */
    size_t upstream;                /* index in the configuration */
    int server;                     /* of the upstream; -1: none yet */
    int backend_fd;                 /* -1: not connected */
    struct tls_conn *backend;       /* TLS to the backend, or NULL */
    struct clients_ticket *ticket;  /* its count in the client table */
    int64_t delivered_at;           /* the last byte delivered; 0: none yet */
    int park_failures;              /* tries to park it that failed */
    struct conn_log log;
};

#define PARK_TRIES 3                /* then the connection stays in its worker */

#define NO_SERVER_WARN_MS 1000      /* "has no server up", at most this often */

static void log_conn(const struct conn_log *l)
{
    double dur = (double)(clock_now_ms() - l->start) / 1000.0;
    bool ok = strcmp(l->outcome, "ok") == 0;
    log_access(!ok, "client=%s frontend=%s backend=%s tls=%s cipher=%s sni=%s alpn=%s "
               "resumed=%s client_cert=%s in=%llu out=%llu duration=%.3f outcome=%s%s%s%s",
               l->client, l->frontend, l->backend, l->version, l->cipher, l->sni, l->alpn,
               l->resumed, l->client_cert, (unsigned long long)l->in,
               (unsigned long long)l->out, dur, l->outcome,
               l->reason[0] ? " reason=\"" : "", l->reason, l->reason[0] ? "\"" : "");
}

/* The connect to one server worked (1) or not (0); its passive check. */
static int tried_server(struct runtime *rt, struct conn *c, int server, int fd, const char *why,
                        bool more)
{
    const struct upstream_conf *up = &rt->cfg->upstreams[c->upstream];
    const struct server_conf *sv = &up->servers[server];
    if (fd >= 0) {
        if (upstream_report(rt->ups, c->upstream, (size_t)server, true, false, NULL) > 0)
            log_notice("upstream '%s': server %s is up again (a connect worked)", up->name,
                       sv->address);
        upstream_conn_begin(rt->ups, c->upstream, (size_t)server);
        c->server = server;
        c->backend_fd = fd;
        return 1;
    }
    char err[160];
    snprintf(err, sizeof err, "connect: %s", why);
    if (upstream_report(rt->ups, c->upstream, (size_t)server, false, false, err) < 0)
        log_warning("upstream '%s': server %s is down: %s (passive check)", up->name,
                    sv->address, err);
    log_info("upstream '%s': connect to %s failed: %s%s", up->name, sv->address, why,
             more ? "; trying another server" : "");
    return 0;
}

static void no_server_up(const struct upstream_conf *up, struct conn_log *l)
{
    static int64_t warned;          /* per worker */
    l->outcome = "no-server";
    snprintf(l->reason, sizeof l->reason, "upstream '%s' has no server up", up->name);
    if (clock_now_ms() - warned >= NO_SERVER_WARN_MS) {
        warned = clock_now_ms();
        log_warning("upstream '%s' has no server up: clients are turned away", up->name);
    }
}

/*
 * Connects to a server of the connection's upstream: the balancer's
 * choice, then, if that connect fails, the next eligible server, up to
 * `retries` more. A failed connect counts against its server (passive
 * check). 0, or -1 with the outcome and reason in the log record.
 */
static int connect_backend(struct runtime *rt, struct conn *c)
{
    const struct upstream_conf *up = &rt->cfg->upstreams[c->upstream];
    bool tried[CONFIG_MAX_SERVERS] = { false };
    char why[128] = "";
    enum net_err err = NET_ERROR;
    int attempts = 0;

    for (; attempts <= up->retries; attempts++) {
        int i = upstream_choose(rt->ups, c->upstream, (const struct sockaddr *)c->peer, tried);
        if (i < 0)
            break;
        tried[i] = true;
        snprintf(c->log.backend, sizeof c->log.backend, "%s", up->servers[i].address);
        int64_t deadline = clock_deadline_ms(rt->cfg->timeouts.connect);
        int fd = net_connect(&up->servers[i].addr, deadline, &err, why, sizeof why);
        if (tried_server(rt, c, i, fd, why, attempts < up->retries))
            return 0;
    }
    if (attempts == 0) {
        no_server_up(up, &c->log);
    } else {
        c->log.outcome = net_err_outcome(err);
        snprintf(c->log.reason, sizeof c->log.reason, "%s%s", why,
                 attempts > 1 ? " (and on every other server tried)" : "");
    }
    return -1;
}

/* Per server: the backend TLS session to resume next time (this worker's). */
static void ***backend_sessions;

static void **session_slot(struct runtime *rt, size_t up, size_t server)
{
    if (!backend_sessions)
        backend_sessions = xcalloc(rt->cfg->nupstreams, sizeof *backend_sessions);
    if (!backend_sessions[up])
        backend_sessions[up] = xcalloc(rt->cfg->upstreams[up].nservers, sizeof(void *));
    return &backend_sessions[up][server];
}

/* The PROXY protocol header for the server, if it takes one. 0 or -1. */
static int send_proxy_header(const struct server_conf *sv, struct conn *c, int64_t deadline)
{
    struct sockaddr_storage local;
    socklen_t len = sizeof local;
    unsigned char hdr[PROXYPROTO_V2_MAX];
    const struct tls_peer *cp = &c->client_peer;
    getsockname(c->client_fd, (struct sockaddr *)&local, &len);
    struct proxy_info pi = {
        .src = (const struct sockaddr *)c->peer, .dst = (const struct sockaddr *)&local,
        .alpn = c->alpn, .authority = strcmp(c->log.sni, "-") ? c->log.sni : NULL,
        .tls_version = tls_conn_version(c->client), .cipher = tls_conn_cipher(c->client),
        .sig_alg = tls_conn_sig_alg(c->client), .key_alg = tls_conn_key_alg(c->client),
        .client_cn = *cp->cn ? cp->cn : NULL,
        .client_cert_conn = cp->presented, .client_cert_sess = cp->session,
        .verify = 0,    /* a certificate that did not verify ended the handshake */
    };
    ssize_t n = sv->proxy == PROXY_V1 ? proxyproto_v1(&pi, (char *)hdr, sizeof hdr)
                                      : proxyproto_v2(&pi, hdr, sizeof hdr);
    if (n < 0)
        snprintf(c->log.reason, sizeof c->log.reason, "cannot build the PROXY header");
    if (n < 0 || net_send_all(c->backend_fd, hdr, (size_t)n, deadline, c->log.reason,
                              sizeof c->log.reason) < 0) {
        c->log.outcome = "backend-error";
        return -1;
    }
    return 0;
}

/* Our TLS handshake with a TLS server. 0, or -1 with the outcome. */
static int backend_handshake(struct runtime *rt, const struct server_conf *sv, struct conn *c)
{
    char why[160];
    const struct upstream_conf *up = &rt->cfg->upstreams[c->upstream];
    void **session = session_slot(rt, c->upstream, (size_t)c->server);
    if (!(c->backend = tls_conn_new(rt->backend_ctx[c->upstream][c->server], c->backend_fd))) {
        c->log.outcome = "internal-error";
        snprintf(c->log.reason, sizeof c->log.reason, "cannot set up TLS to the backend");
        return -1;
    }
    tls_conn_readahead(c->backend, backend_rbuf, sizeof backend_rbuf);
    if (tls_conn_connect(c->backend, &sv->tls, *session, rt->cfg->timeouts.connect, why,
                         sizeof why) != TLS_IO_OK) {
        c->log.outcome = "backend-tls-failed";
        snprintf(c->log.reason, sizeof c->log.reason, "TLS to %s: %s", sv->address, why);
        log_warning("upstream '%s': TLS to server %s failed: %s", up->name, sv->address, why);
        return -1;
    }
    return 0;
}

/*
 * What the backend gets before the client's bytes: a PROXY protocol header
 * (if configured), then, for a TLS server, our TLS handshake. 0, or -1 with
 * the outcome and reason in the log record.
 */
static int open_backend(struct runtime *rt, struct conn *c)
{
    const struct server_conf *sv = &rt->cfg->upstreams[c->upstream].servers[c->server];
    int64_t deadline = clock_deadline_ms(rt->cfg->timeouts.connect);
    if (sv->proxy != PROXY_OFF && send_proxy_header(sv, c, deadline) < 0)
        return -1;
    return sv->tls.enabled ? backend_handshake(rt, sv, c) : 0;
}

/* Lets go of the backend: its TLS session kept for next time, if asked. */
static void close_backend(struct runtime *rt, struct conn *c, bool keep_session)
{
    if (c->backend && keep_session)
        tls_conn_save_session(c->backend, session_slot(rt, c->upstream, (size_t)c->server));
    tls_conn_free(c->backend);
    c->backend = NULL;
    close(c->backend_fd);
    c->backend_fd = -1;
    if (c->server >= 0)             /* -1: gone from the configuration (unparked) */
        upstream_conn_end(rt->ups, c->upstream, (size_t)c->server);
}

/* The handshake with the client; what it agreed goes into the log record. */
static int handshake(struct runtime *rt, const struct listener *ls, struct conn *c)
{
    struct conn_log *l = &c->log;
    enum tls_io hs = tls_frontend_accept(rt->fe[ls->frontend], &c->client, c->client_fd,
                                         client_rbuf, sizeof client_rbuf,
                                         rt->cfg->timeouts.handshake, l->reason,
                                         sizeof l->reason);
    snprintf(l->sni, sizeof l->sni, "%s", tls_conn_sni(c->client));
    if (hs != TLS_IO_OK) {
        l->outcome = hs == TLS_IO_TIMEOUT ? "handshake-timeout" : "handshake-failed";
        return -1;
    }
    l->version = tls_conn_version(c->client);
    l->cipher = tls_conn_cipher(c->client);
    l->resumed = tls_resumed_name(tls_conn_resumed(c->client));
    if ((c->alpn = tls_conn_alpn(c->client)))
        snprintf(l->alpn, sizeof l->alpn, "%s", c->alpn);
    tls_conn_peer(c->client, &c->client_peer);
    if (*c->client_peer.subject)
        snprintf(l->client_cert, sizeof l->client_cert, "\"%s\"", c->client_peer.subject);
    c->upstream = config_frontend_route(c->fe, c->alpn);
    return 0;
}

/* Parked when quiet: a plain backend (a TLS one's session cannot be
 * exported) and a park process to take it. A stopping worker (one the
 * pool retires) parks too, unless the park process is handing everything
 * back (a graceful stop of the daemon). */
static bool parkable(const struct runtime *rt, const struct conn *c)
{
    return rt->park_fd[0] >= 0 && rt->cfg->workers.park_after > 0 && !c->backend &&
           c->park_failures < PARK_TRIES && !(stopping && stats_park_draining(rt->stats));
}

/* One run of the relay; RELAY_QUIET: the connection may be parked. */
static enum relay_end relay(struct runtime *rt, struct conn *c)
{
    const struct config *cfg = rt->cfg;
    struct relay_result rr;
    struct relay_opts o = {
        .idle = cfg->timeouts.idle,
        .shed = cfg->limits.shed == SHED_IDLE ? &shed_stop : NULL,
        .shed_idle_ms = (int64_t)(cfg->limits.shed_idle_after * 1000.0),
        .delivered_at = my_stats ? &my_stats->delivered_at : NULL,
        .quiet_ms = parkable(rt, c) ? (int64_t)(cfg->workers.park_after * 1000.0) : 0,
        .since = c->delivered_at,
    };
    stats_set_state(my_stats, WS_RELAY, c->log.client);
    shed_asked = 0;             /* a request for an earlier connection */
    relay_run(c->client, c->backend_fd, c->backend, &o, &rr);
    stats_add(my_stats, ST_BYTES_IN, rr.to_backend);
    stats_add(my_stats, ST_BYTES_OUT, rr.to_client);
    if (rr.end == RELAY_SHED)
        stats_inc(my_stats, ST_SHED);
    c->delivered_at = rr.delivered_at;
    c->log.in += rr.to_backend;
    c->log.out += rr.to_client;
    c->log.outcome = relay_end_outcome(rr.end);
    snprintf(c->log.reason, sizeof c->log.reason, "%s", rr.reason);
    return rr.end;
}

/* The message that parks c, but for its TLS state. */
static void park_message(const struct runtime *rt, const struct conn *c, struct park_msg *m)
{
    memset(m, 0, offsetof(struct park_msg, tls));
    m->magic = PARK_MAGIC;
    m->delivered_at = c->delivered_at;
    m->idle_at = c->delivered_at + (int64_t)(rt->cfg->timeouts.idle * 1000.0);
    m->ticket = *c->ticket;
    m->peer = *c->peer;
    snprintf(m->frontend, sizeof m->frontend, "%s", c->fe->name);
    snprintf(m->upstream, sizeof m->upstream, "%s", rt->cfg->upstreams[c->upstream].name);
    snprintf(m->log.client, sizeof m->log.client, "%s", c->log.client);
    snprintf(m->log.backend, sizeof m->log.backend, "%s", c->log.backend);
    snprintf(m->log.sni, sizeof m->log.sni, "%s", c->log.sni);
    snprintf(m->log.alpn, sizeof m->log.alpn, "%s", c->log.alpn);
    snprintf(m->log.client_cert, sizeof m->log.client_cert, "%s", c->log.client_cert);
    m->log.in = c->log.in;
    m->log.out = c->log.out;
    m->log.start = c->log.start;
}

/*
 * Hands a quiet connection to the park process: 0, and this worker has let
 * go of it (its sockets, its TLS, its count, which travels in the
 * message); -1 and it is still ours.
 */
static int park(struct runtime *rt, struct conn *c)
{
    static struct park_msg m;
    char why[160];
    park_message(rt, c, &m);
    ssize_t n = tls_conn_park(c->client, m.tls, sizeof m.tls, why, sizeof why);
    int fds[2] = { c->client_fd, c->backend_fd };
    m.tls_len = n > 0 ? (uint32_t)n : 0;
    m.size = (uint32_t)(offsetof(struct park_msg, tls) + m.tls_len);
    if (n < 0 || passfd_send(rt->park_fd[0], &m, m.size, fds, 2) < 0) {
        if (n >= 0)
            snprintf(why, sizeof why, "%s", strerror(errno));
        explicit_bzero(m.tls, sizeof m.tls);
        log_info("%s: not parked: %s", c->log.client, why);
        c->park_failures++;
        return -1;
    }
    explicit_bzero(m.tls, sizeof m.tls);
    memset(c->ticket, 0, sizeof *c->ticket);       /* the park holds the count now */
    stats_inc(my_stats, ST_PARKED);
    tls_conn_free(c->client);       /* its server still counts it: it is open */
    c->client = NULL;
    close(c->client_fd);
    close(c->backend_fd);
    c->client_fd = c->backend_fd = -1;
    log_debug("%s: parked, idle %.1f s", c->log.client,
              (double)(clock_now_ms() - c->delivered_at) / 1000.0);
    return 0;
}

/* Relays to the end, or parks the connection when it goes quiet: true if
 * it was parked (and is no longer this worker's). */
static bool relay_or_park(struct runtime *rt, struct conn *c)
{
    while (relay(rt, c) == RELAY_QUIET)
        if (park(rt, c) == 0)
            return true;
    return false;
}

/* A handshake that was not a resumption costs the client a token. */
static void charge_handshake(struct runtime *rt, struct conn *c)
{
    if (!c->client || tls_conn_resumed(c->client) == TLS_RESUMED_NO)
        clients_charge_handshake(rt->clients, c->ticket, clock_now_ms());
}

/* One connection, from the accepted socket to its access-log line. */
static void serve(struct runtime *rt, const struct listener *ls, int fd,
                  const struct sockaddr_storage *peer, struct clients_ticket *ticket)
{
    const struct frontend_conf *fe = &rt->cfg->frontends[ls->frontend];
    struct conn c = {
        .client_fd = fd, .peer = peer, .fe = fe, .server = -1, .backend_fd = -1,
        .ticket = ticket,
        .log = { .frontend = fe->name, .backend = "-", .version = "-", .cipher = "-",
                 .sni = "-", .alpn = "-", .resumed = "-", .client_cert = "-",
                 .start = clock_now_ms(), .outcome = "ok" },
    };
    addr_format((const struct sockaddr *)peer, c.log.client, sizeof c.log.client);
    serving = c.log.client;
    stats_set_state(my_stats, WS_HANDSHAKE, c.log.client);
    int hs = handshake(rt, ls, &c);
    charge_handshake(rt, &c);
    if (hs == 0) {
        if (connect_backend(rt, &c) == 0 && open_backend(rt, &c) < 0)
            close_backend(rt, &c, false);
        if (c.backend_fd >= 0 && relay_or_park(rt, &c)) {
            serving = "-";
            return;                 /* parked */
        }
        if (c.backend_fd >= 0)
            close_backend(rt, &c, true);
        else
            tls_conn_close_notify(c.client);
    }
    log_conn(&c.log);
    tls_conn_free(c.client);
    close(fd);
    clients_release(rt->clients, ticket);
    serving = "-";
}

static int frontend_index(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nfrontends; i++)
        if (strcmp(cfg->frontends[i].name, name) == 0)
            return (int)i;
    return -1;
}

/* The connection's upstream and server in the configuration in force (a
 * reload may have changed both since it was parked). Its server counted
 * it all along (the upstream table carries counts over a reload). */
static void find_server(struct runtime *rt, struct conn *c, const struct park_msg *m)
{
    c->upstream = 0;
    c->server = -1;
    for (size_t u = 0; u < rt->cfg->nupstreams; u++) {
        const struct upstream_conf *up = &rt->cfg->upstreams[u];
        if (strcmp(up->name, m->upstream) != 0)
            continue;
        c->upstream = u;
        for (size_t i = 0; i < up->nservers; i++)
            if (strcmp(up->servers[i].address, m->log.backend) == 0)
                c->server = (int)i;
    }
}

/* The connection the park process handed back, as it was parked. */
static void unparked_conn(struct runtime *rt, const struct park_msg *m, int fe, struct conn *c)
{
    c->peer = &m->peer;
    c->fe = &rt->cfg->frontends[fe];
    c->delivered_at = m->delivered_at;
    c->log = (struct conn_log){ .frontend = c->fe->name, .version = "-", .cipher = "-",
                                .resumed = "-", .in = m->log.in, .out = m->log.out,
                                .start = m->log.start, .outcome = "ok" };
    snprintf(c->log.client, sizeof c->log.client, "%s", m->log.client);
    snprintf(c->log.backend, sizeof c->log.backend, "%s", m->log.backend);
    snprintf(c->log.sni, sizeof c->log.sni, "%s", m->log.sni);
    snprintf(c->log.alpn, sizeof c->log.alpn, "%s", m->log.alpn);
    snprintf(c->log.client_cert, sizeof c->log.client_cert, "%s", m->log.client_cert);
    find_server(rt, c, m);
}

/* A parked connection is back: made again from the message (its TLS state
 * too), relayed on (or parked again), logged at its end. */
static void resume(struct runtime *rt, struct park_msg *m, const int fds[2],
                   struct clients_ticket *ticket)
{
    char why[160] = "its frontend is gone after a reload";
    int fe = frontend_index(rt->cfg, m->frontend);
    *ticket = m->ticket;            /* the master gives it back if this worker dies */
    struct conn c = { .client_fd = fds[0], .backend_fd = fds[1], .ticket = ticket };
    stats_inc(my_stats, ST_UNPARKED);
    if (fe >= 0)
        c.client = tls_conn_unpark(rt->fe[fe], fds[0], m->tls, m->tls_len, why, sizeof why);
    explicit_bzero(m->tls, sizeof m->tls);
    if (!c.client) {
        log_warning("%s: a parked connection cannot go on: %s; closed", m->log.client, why);
        close(fds[0]);
        close(fds[1]);
        clients_release(rt->clients, ticket);
        return;
    }
    unparked_conn(rt, m, fe, &c);
    tls_conn_readahead(c.client, client_rbuf, sizeof client_rbuf);
    c.log.version = tls_conn_version(c.client);
    c.log.cipher = tls_conn_cipher(c.client);
    c.log.resumed = tls_resumed_name(tls_conn_resumed(c.client));
    serving = c.log.client;
    log_debug("%s: back from the park%s", c.log.client, m->expired ? ", idle too long" : "");
    if (m->expired) {
        c.log.outcome = "idle-timeout";
        snprintf(c.log.reason, sizeof c.log.reason, "no data delivered either way for %gs",
                 rt->cfg->timeouts.idle);
        tls_conn_close_notify(c.client);
    } else if (relay_or_park(rt, &c)) {
        serving = "-";
        return;
    }
    close_backend(rt, &c, false);
    log_conn(&c.log);
    tls_conn_free(c.client);
    close(c.client_fd);
    clients_release(rt->clients, ticket);
    serving = "-";
}

#define DRAIN_QUIET_MS    300       /* stopping: no parked connection back for this long */

/*
 * A graceful stop (or an upgrade's hand-over) hands every parked
 * connection back: the stopping workers take them and serve them to their
 * end, as they do the connection they hold, until none comes back for a
 * while. No connection is dropped.
 */
static void take_back_parked(struct runtime *rt, struct clients_ticket *ticket)
{
    struct pollfd p = { .fd = rt->park_fd[0], .events = POLLIN };
    while (poll(&p, 1, DRAIN_QUIET_MS) > 0)
        if (take_parked(rt->park_fd[0]))
            resume(rt, &parked, parked_fds, ticket);
}

#define IDLE_AFTER_MS     1000          /* a connection this quiet gives memory back */
#define STACK_KEPT        (16 * 1024)   /* what the relay's frames need */
#define STACK_RELEASED    (512 * 1024)  /* how far below that is given back */
#define PAGE_MASK         ((uintptr_t)4095)

/*
 * A connection held idle gives back the stack pages its handshake touched
 * (about 40 KiB with Debian's wolfSSL): the relay's frames are shallow, so
 * everything more than 16 KiB below here is unused until the next
 * handshake. Addresses below the stack's mapping are skipped by madvise.
 */
static void release_idle_memory(void)
{
    char here;
    uintptr_t top = ((uintptr_t)&here & ~PAGE_MASK) - STACK_KEPT;
    uintptr_t low = top - STACK_RELEASED;
    madvise((void *)low, top - low, MADV_DONTNEED);
    alloc_trim();
}

static void reopen_if_asked(void)
{
    if (reopen_logs) {
        char err[256];
        reopen_logs = 0;
        if (log_reopen(err, sizeof err) < 0)
            log_error("%s", err);
    }
}

/* A worker's set-up after fork: signals, confinement, its scoreboard slot. */
static void worker_begin(struct runtime *rt, int id, pid_t master)
{
    static const struct child_signals sigs = { .quit = on_quit, .usr1 = on_usr1,
                                               .shed = on_shed };
    char role[32];
    snprintf(role, sizeof role, "worker %d", id);
    child_begin(master, role, NULL, &sigs);
    sigprocmask(SIG_SETMASK, NULL, &relay_mask);
    sigdelset(&relay_mask, SIGUSR2);
    runtime_child_shared(rt);
    child_confine(rt->cfg);
    keyclient_start(rt);
    alloc_set_oom_handler(out_of_memory);
    fail_test = getenv(ALLOC_FAIL_ENV);
    /* TCP_NODELAY and SO_KEEPALIVE pass from a listener to the sockets it
     * accepts: set once here (listeners may come from an older binary),
     * not twice per connection. */
    for (size_t i = 0; i < rt->nlisteners; i++)
        net_tune(rt->listeners[i].fd);
    my_stats = stats_worker(rt->stats, (unsigned)id);
    if (my_stats)
        my_stats->pid = (int32_t)getpid();
    for (size_t i = 0; i < rt->cfg->nfrontends; i++)
        tls_frontend_set_stats(rt->fe[i], my_stats);
    relay_set_idle_hook(release_idle_memory, IDLE_AFTER_MS);
    log_debug("started");
}

/* The next client, or a parked connection back: true if one was served
 * (not refused, not a failed accept). */
static bool serve_next(struct runtime *rt, struct clients_ticket *ticket)
{
    struct sockaddr_storage peer;
    size_t which = 0;
    reopen_if_asked();
    stats_set_state(my_stats, WS_IDLE, NULL);
    int fd = accept_one(rt, &which, &peer);
    reopen_if_asked();      /* a USR1 that came while waiting for a client */
    if (fd == ACCEPT_PARKED) {
        resume(rt, &parked, parked_fds, ticket);
        return false;
    }
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            log_error("accept: %s; pausing %d ms", strerror(errno), ACCEPT_PAUSE_MS);
            poll(NULL, 0, ACCEPT_PAUSE_MS);
        }
        return false;
    }
    if (!admit(rt, &peer, ticket)) {
        close(fd);
        return false;
    }
    alloc_fail_next_if(fail_test);
    serve(rt, &rt->listeners[which], fd, &peer, ticket);
    return true;
}

void worker_run(struct runtime *rt, int id, pid_t master)
{
    static struct clients_ticket own_ticket;    /* without a scoreboard slot */
    worker_begin(rt, id, master);
    struct clients_ticket *ticket = my_stats ? &my_stats->ticket : &own_ticket;
    uint64_t served = 0;
    int max_conns = rt->cfg->workers.max_connections;
    while (!stopping) {
        if (serve_next(rt, ticket) && max_conns && ++served >= (uint64_t)max_conns) {
            log_debug("served workers.max_connections (%d): exiting", max_conns);
            break;
        }
    }
    stats_set_state(my_stats, WS_EXITING, NULL);
    if (stopping)
        log_debug("stopping: graceful stop requested");
    if (stopping && rt->park_fd[0] >= 0)
        take_back_parked(rt, ticket);
    _exit(0);
}
