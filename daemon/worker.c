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
#include <time.h>
#include <unistd.h>

#include "worker.h"

#include "alloc.h"
#include "child.h"
#include "clock.h"
#include "exit.h"
#include "log.h"
#include "net.h"
#include "proxyproto.h"
#include "relay.h"
#include "upstream.h"

/* One connection at a time: its read-ahead buffers are the worker's. */
static uint8_t client_rbuf[TLS_READAHEAD_SIZE], backend_rbuf[TLS_READAHEAD_SIZE];

/* Tests: while the file this names exists, the next connection (the one
 * worker that removes it) fails its first allocation. */
#define FAIL_TEST_ENV "TLSOFFD_TEST_ALLOC_FAIL"
static const char *fail_test;

static volatile sig_atomic_t stopping;
static struct stats_worker *my_stats;      /* this worker's scoreboard slot */
static volatile sig_atomic_t reopen_logs;

static char serving[ADDR_STRLEN] = "-";     /* the client being served */

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

/* Waits for and accepts one connection; -1 if stopping or nothing came. */
static int accept_one(struct runtime *rt, size_t *which, struct sockaddr_storage *peer)
{
    socklen_t len = sizeof *peer;
    static struct pollfd *p;
    size_t n = rt->nlisteners;
    int fd = -1;
    if (!p) {
        p = xcalloc(n, sizeof *p);
        for (size_t i = 0; i < n; i++)
            p[i] = (struct pollfd){ .fd = rt->listeners[i].fd, .events = POLLIN };
    }
    if (lock_accept(rt->accept_lock) != 0) {
        errno = EINTR;
        return -1;
    }
    while (!stopping && fd < 0) {
        if (poll(p, n, -1) <= 0)
            break;
        for (size_t i = 0; i < n && fd < 0; i++)
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

/*
 * Connects to a server of the frontend's upstream: the balancer's choice,
 * then, if that connect fails, the next eligible server, up to `retries`
 * more. A failed connect counts against its server (passive check).
 * Returns the socket, or -1 with the outcome and reason in l.
 */
static int connect_backend(struct runtime *rt, size_t ui, const struct sockaddr_storage *peer,
                           int *si, struct conn_log *l)
{
    const struct upstream_conf *up = &rt->cfg->upstreams[ui];
    bool tried[CONFIG_MAX_SERVERS] = { false };
    char why[128] = "";
    enum net_err ue = NET_ERROR;
    int attempts = 0;

    for (; attempts <= up->retries; attempts++) {
        int i = upstream_choose(rt->ups, ui, (const struct sockaddr *)peer, tried);
        if (i < 0)
            break;
        const struct server_conf *sv = &up->servers[i];
        tried[i] = true;
        snprintf(l->backend, sizeof l->backend, "%s", sv->address);
        int64_t deadline = clock_deadline_ms(rt->cfg->timeouts.connect);
        int b = net_connect(&sv->addr, deadline, &ue, why, sizeof why);
        if (b >= 0) {
            if (upstream_report(rt->ups, ui, (size_t)i, true, false, NULL) > 0)
                log_notice("upstream '%s': server %s is up again (a connect worked)",
                           up->name, sv->address);
            upstream_conn_begin(rt->ups, ui, (size_t)i);
            *si = i;
            return b;
        }
        char err[160];
        snprintf(err, sizeof err, "connect: %s", why);
        if (upstream_report(rt->ups, ui, (size_t)i, false, false, err) < 0)
            log_warning("upstream '%s': server %s is down: %s (passive check)", up->name,
                        sv->address, err);
        log_info("upstream '%s': connect to %s failed: %s%s", up->name, sv->address, why,
                 attempts < up->retries ? "; trying another server" : "");
    }
    if (attempts == 0) {
        static int64_t warned;      /* at most one line a second per worker */
        l->outcome = "no-server";
        snprintf(l->reason, sizeof l->reason, "upstream '%s' has no server up", up->name);
        if (clock_now_ms() - warned >= 1000) {
            warned = clock_now_ms();
            log_warning("upstream '%s' has no server up: clients are turned away", up->name);
        }
    } else {
        l->outcome = net_err_outcome(ue);
        snprintf(l->reason, sizeof l->reason, "%s%s", why,
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

/*
 * What the backend gets before the client's bytes: a PROXY protocol header
 * (if configured), then, for a TLS server, our TLS handshake. 0, or -1 with
 * the outcome and reason in l.
 */
static int open_backend(struct runtime *rt, size_t ui, size_t si, int b, int client_fd,
                        const struct sockaddr_storage *peer, struct tls_conn *client,
                        const struct tls_peer *cp, struct tls_conn **bt, struct conn_log *l)
{
    const struct upstream_conf *up = &rt->cfg->upstreams[ui];
    const struct server_conf *sv = &up->servers[si];
    double timeout = rt->cfg->timeouts.connect;

    if (sv->proxy != PROXY_OFF) {
        struct sockaddr_storage local;
        socklen_t ll = sizeof local;
        unsigned char hdr[PROXYPROTO_V2_MAX];
        getsockname(client_fd, (struct sockaddr *)&local, &ll);
        struct proxy_info pi = {
            .src = (const struct sockaddr *)peer, .dst = (const struct sockaddr *)&local,
            .alpn = tls_conn_alpn(client),
            .authority = strcmp(l->sni, "-") ? l->sni : NULL,
            .tls_version = tls_conn_version(client), .cipher = tls_conn_cipher(client),
            .sig_alg = tls_conn_sig_alg(client), .key_alg = tls_conn_key_alg(client),
            .client_cn = *cp->cn ? cp->cn : NULL,
            .client_cert_conn = cp->presented, .client_cert_sess = cp->session,
            .verify = 0,    /* a certificate that did not verify ended the handshake */
        };
        ssize_t n = sv->proxy == PROXY_V1 ? proxyproto_v1(&pi, (char *)hdr, sizeof hdr)
                                          : proxyproto_v2(&pi, hdr, sizeof hdr);
        int64_t deadline = clock_deadline_ms(timeout);
        if (n < 0 || net_send_all(b, hdr, (size_t)n, deadline, l->reason, sizeof l->reason) != 0) {
            if (n < 0)
                snprintf(l->reason, sizeof l->reason, "cannot build the PROXY header");
            l->outcome = "backend-error";
            return -1;
        }
    }
    if (!sv->tls.enabled)
        return 0;
    char why[160];
    void **session = session_slot(rt, ui, si);
    if (!(*bt = tls_conn_new(rt->backend_ctx[ui][si], b))) {
        l->outcome = "internal-error";
        snprintf(l->reason, sizeof l->reason, "cannot set up TLS to the backend");
        return -1;
    }
    tls_conn_readahead(*bt, backend_rbuf, sizeof backend_rbuf);
    if (tls_conn_connect(*bt, &sv->tls, *session, timeout, why, sizeof why) != TLS_IO_OK) {
        l->outcome = "backend-tls-failed";
        snprintf(l->reason, sizeof l->reason, "TLS to %s: %s", sv->address, why);
        log_warning("upstream '%s': TLS to server %s failed: %s", up->name, sv->address, why);
        return -1;
    }
    return 0;
}

static void serve(struct runtime *rt, const struct listener *ls, int fd,
                  const struct sockaddr_storage *peer)
{
    const struct frontend_conf *fe = &rt->cfg->frontends[ls->frontend];
    const struct config *cfg = rt->cfg;
    struct tls_conn *conn;
    struct conn_log l = { .frontend = fe->name, .backend = "-", .version = "-",
                          .cipher = "-", .sni = "-", .alpn = "-", .resumed = "-",
                          .client_cert = "-", .start = clock_now_ms(), .outcome = "ok" };

    addr_format((const struct sockaddr *)peer, l.client, sizeof l.client);
    memcpy(serving, l.client, sizeof serving);
    stats_set_state(my_stats, WS_HANDSHAKE, l.client);
    enum tls_io hs = tls_frontend_accept(rt->fe[ls->frontend], &conn, fd, client_rbuf,
                                         sizeof client_rbuf, cfg->timeouts.handshake,
                                         l.reason, sizeof l.reason);
    snprintf(l.sni, sizeof l.sni, "%s", tls_conn_sni(conn));
    if (hs != TLS_IO_OK) {
        l.outcome = hs == TLS_IO_TIMEOUT ? "handshake-timeout" : "handshake-failed";
        goto out;
    }
    l.version = tls_conn_version(conn);
    l.cipher = tls_conn_cipher(conn);
    l.resumed = tls_resumed_name(tls_conn_resumed(conn));
    const char *alpn = tls_conn_alpn(conn);
    if (alpn)
        snprintf(l.alpn, sizeof l.alpn, "%s", alpn);
    struct tls_peer cp;
    tls_conn_peer(conn, &cp);
    if (*cp.subject)
        snprintf(l.client_cert, sizeof l.client_cert, "\"%s\"", cp.subject);
    size_t ui = config_frontend_route(fe, alpn);

    int si = -1;
    struct tls_conn *bt = NULL;
    int b = connect_backend(rt, ui, peer, &si, &l);
    if (b >= 0 && open_backend(rt, ui, (size_t)si, b, fd, peer, conn, &cp, &bt, &l) < 0) {
        upstream_conn_end(rt->ups, ui, (size_t)si);
        tls_conn_free(bt);
        close(b);
        b = -1;
    }
    if (b < 0) {
        tls_conn_close_notify(conn);
        goto out;
    }
    struct relay_result rr;
    stats_set_state(my_stats, WS_RELAY, l.client);
    relay_run(conn, b, bt, cfg->timeouts.idle, &rr);
    stats_add(my_stats, ST_BYTES_IN, rr.to_backend);
    stats_add(my_stats, ST_BYTES_OUT, rr.to_client);
    if (bt) {
        tls_conn_save_session(bt, session_slot(rt, ui, (size_t)si));
        tls_conn_free(bt);
    }
    close(b);
    upstream_conn_end(rt->ups, ui, (size_t)si);
    l.in = rr.to_backend;
    l.out = rr.to_client;
    l.outcome = relay_end_outcome(rr.end);
    snprintf(l.reason, sizeof l.reason, "%s", rr.reason);
out:
    log_conn(&l);
    tls_conn_free(conn);
    close(fd);
}

/*
 * A connection held idle gives back the stack pages its handshake touched
 * (about 40 KiB with Debian's wolfSSL): the relay's frames are shallow, so
 * everything more than 16 KiB below here is unused until the next
 * handshake. Addresses below the stack's mapping are skipped by madvise.
 */
static void release_idle_memory(void)
{
    char here;
    uintptr_t top = ((uintptr_t)&here & ~(uintptr_t)4095) - 16 * 1024;
    uintptr_t low = top - 512 * 1024;
    madvise((void *)low, top - low, MADV_DONTNEED);
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

void worker_run(struct runtime *rt, int id, pid_t master)
{
    static const struct child_signals sigs = { .quit = on_quit, .usr1 = on_usr1 };
    char role[32];
    snprintf(role, sizeof role, "worker %d", id);
    child_begin(master, role, NULL, &sigs);
    child_confine(rt->cfg);
    alloc_set_oom_handler(out_of_memory);
    fail_test = getenv(FAIL_TEST_ENV);
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
    relay_set_idle_hook(release_idle_memory, 1000);
    uint64_t served = 0;
    int max_conns = rt->cfg->workers.max_connections;
    log_debug("started");

    while (!stopping) {
        struct sockaddr_storage peer;
        size_t which = 0;
        reopen_if_asked();
        stats_set_state(my_stats, WS_IDLE, NULL);
        int fd = accept_one(rt, &which, &peer);
        reopen_if_asked();      /* a USR1 that came while waiting for a client */
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                log_error("accept: %s; pausing 100 ms", strerror(errno));
                poll(NULL, 0, 100);
            }
            continue;
        }
        if (fail_test && unlink(fail_test) == 0)
            alloc_fail_next();
        serve(rt, &rt->listeners[which], fd, &peer);
        if (max_conns && ++served >= (uint64_t)max_conns) {
            log_debug("served workers.max_connections (%d): exiting", max_conns);
            break;
        }
    }
    stats_set_state(my_stats, WS_EXITING, NULL);
    if (stopping)
        log_debug("stopping: graceful stop requested");
    _exit(0);
}
