/*
 * park — the parking process; see park.h.
 *
 * One epoll loop: the socket pair's end (connections parked by workers),
 * and the two sockets of each connection held, level-triggered and taken
 * out of the set at their first event. A connection whose hand-back finds
 * the socket pair full waits in its slot (pending) and is tried again on
 * the next turn.
 */
#include "park.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "alloc.h"
#include "child.h"
#include "clock.h"
#include "log.h"
#include "passfd.h"

#define PARK_TICK_MS   1000     /* expiry is looked for this often */
#define PARK_RETRY_MS  10       /* a pending hand-back is tried again after this */
#define PARK_EVENTS    256

struct held {
    struct park_msg *m;         /* NULL: the slot is free */
    int fd[2];                  /* the client's, the backend's */
    bool pending;               /* to be handed back; the socket pair was full */
};

struct park {
    int sock;                   /* our end of the socket pair */
    int ep;
    struct held *slots;
    uint32_t *free;             /* a stack of free slots */
    uint32_t nfree, npending;
    struct clients_ticket *table;   /* the shared park table */
    struct clients *clients;        /* a count given back when a connection is closed here */
    struct stats *stats;
};

static volatile sig_atomic_t stopping, draining;
static struct stats *drain_flag;    /* where the workers see that we drain */

static void on_stop(int sig)
{
    (void)sig;
    stopping = 1;
}

/* SIGQUIT: a graceful stop or an upgrade's hand-over. Every connection
 * goes back to the (stopping) workers, which serve them to their end. */
static void on_drain(int sig)
{
    (void)sig;
    stats_set_park_draining(drain_flag, true);      /* before anything goes back */
    draining = 1;
}

static void drop(struct park *p, uint32_t i)
{
    struct held *h = &p->slots[i];
    close(h->fd[0]);
    close(h->fd[1]);
    explicit_bzero(h->m, sizeof *h->m);
    free(h->m);
    h->m = NULL;
    h->pending = false;
    memset(&p->table[i], 0, sizeof p->table[i]);
    p->free[p->nfree++] = i;
}

/* Hands slot i back to the workers; false if the socket pair is full (it
 * stays, pending). A hand-back that fails otherwise closes it. */
static bool hand_back(struct park *p, uint32_t i, bool expired)
{
    struct held *h = &p->slots[i];
    if (!h->pending) {
        epoll_ctl(p->ep, EPOLL_CTL_DEL, h->fd[0], NULL);
        epoll_ctl(p->ep, EPOLL_CTL_DEL, h->fd[1], NULL);
        h->m->expired = expired;
    }
    if (passfd_send(p->sock, h->m, h->m->size, h->fd, 2) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            if (!h->pending)
                p->npending++;
            h->pending = true;
            return false;
        }
        log_warning("cannot hand the parked connection from %s back: %s; it is closed",
                    h->m->log.client, strerror(errno));
        clients_release(p->clients, &p->table[i]);
    }
    if (h->pending)
        p->npending--;
    drop(p, i);
    return true;
}

static bool watch(struct park *p, uint32_t i)
{
    struct held *h = &p->slots[i];
    for (int side = 0; side < 2; side++) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP,
                                  .data.u64 = (uint64_t)i << 1 | (uint64_t)side };
        if (epoll_ctl(p->ep, EPOLL_CTL_ADD, h->fd[side], &ev) < 0)
            return false;
    }
    return true;
}

/* A worker wrote the message: its strings end in the fields they are in
 * (they are logged here, and used by the worker that takes it back). */
static void terminate_strings(struct park_msg *m)
{
    char *fields[] = { m->frontend, m->upstream, m->log.client, m->log.backend, m->log.sni,
                       m->log.alpn, m->log.client_cert };
    size_t sizes[] = { sizeof m->frontend, sizeof m->upstream, sizeof m->log.client,
                       sizeof m->log.backend, sizeof m->log.sni, sizeof m->log.alpn,
                       sizeof m->log.client_cert };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        fields[i][sizes[i] - 1] = '\0';
}

/* One connection from a worker: held, or (no room, damaged) closed. */
static void take(struct park *p, struct park_msg *m, ssize_t n, const int *fds, int nfds)
{
    if (nfds != 2 || n < (ssize_t)offsetof(struct park_msg, tls) || m->magic != PARK_MAGIC ||
        m->size != (uint32_t)n || m->tls_len > sizeof m->tls || p->nfree == 0) {
        log_warning("a parked connection refused (%s): closed",
                    p->nfree == 0 ? "every slot is taken" : "a damaged message");
        for (int i = 0; i < nfds; i++)
            close(fds[i]);
        if (n >= (ssize_t)offsetof(struct park_msg, tls) && m->magic == PARK_MAGIC)
            clients_release(p->clients, &m->ticket);
        explicit_bzero(m, sizeof *m);
        return;
    }
    uint32_t i = p->free[--p->nfree];
    struct held *h = &p->slots[i];
    h->m = xmalloc(sizeof *m);
    memcpy(h->m, m, (size_t)n);
    terminate_strings(h->m);
    explicit_bzero(m, sizeof *m);
    h->m->slot = i;
    h->fd[0] = fds[0];
    h->fd[1] = fds[1];
    p->table[i] = h->m->ticket;
    if (!watch(p, i)) {
        log_warning("epoll: %s; the connection from %s is handed back", strerror(errno),
                    h->m->log.client);
        hand_back(p, i, false);
    }
}

/* Draining: everything held goes back; true once nothing is left. */
static bool drained(struct park *p)
{
    for (uint32_t i = 0; i < PARK_SLOTS; i++)
        if (p->slots[i].m && !p->slots[i].pending)
            hand_back(p, i, false);
    return p->nfree == PARK_SLOTS;
}

static void take_all(struct park *p)
{
    static struct park_msg m;
    int fds[PASSFD_MAX], nfds;
    ssize_t n;
    while ((n = passfd_recv(p->sock, &m, sizeof m, fds, PASSFD_MAX, &nfds)) >= 0) {
        take(p, &m, n, fds, nfds);
        if (draining)
            drained(p);             /* straight back */
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EMSGSIZE)
        log_error("receiving parked connections: %s", strerror(errno));
}

/* Expired connections, and those waiting for room, go back. */
static void sweep(struct park *p, int64_t now, bool expiry)
{
    for (uint32_t i = 0; i < PARK_SLOTS; i++) {
        struct held *h = &p->slots[i];
        if (!h->m)
            continue;
        if (h->pending)
            hand_back(p, i, h->m->expired);
        else if (expiry && now >= h->m->idle_at)
            hand_back(p, i, true);
    }
}

static void park_loop(struct park *p)
{
    struct epoll_event ev[PARK_EVENTS];
    int64_t next_sweep = clock_now_ms() + PARK_TICK_MS;
    while (!stopping && !(draining && drained(p))) {
        int ms = p->npending ? PARK_RETRY_MS : PARK_TICK_MS;
        int n = epoll_wait(p->ep, ev, PARK_EVENTS, ms);
        for (int k = 0; k < n; k++) {
            if (ev[k].data.u64 == UINT64_MAX) {
                take_all(p);
                continue;
            }
            uint32_t i = (uint32_t)(ev[k].data.u64 >> 1);
            if (i < PARK_SLOTS && p->slots[i].m && !p->slots[i].pending)
                hand_back(p, i, false);
        }
        stats_set_parked(p->stats, PARK_SLOTS - p->nfree);
        int64_t now = clock_now_ms();
        if (p->npending || now >= next_sweep) {
            sweep(p, now, now >= next_sweep);
            if (now >= next_sweep)
                next_sweep = now + PARK_TICK_MS;
        }
    }
}

static void park_run(struct runtime *rt, pid_t master)
{
    static const struct child_signals sigs = { .quit = on_drain, .term = on_stop };
    child_begin(master, "park", "tlsoffd-park", &sigs);
    runtime_child_shared(rt);
    child_confine(rt->cfg);
    alloc_set_oom_handler(child_out_of_memory);
    struct park p = { .sock = rt->park_fd[1], .table = rt->park_table,
                      .clients = rt->clients, .stats = rt->stats };
    drain_flag = p.stats;
    stats_set_park_draining(p.stats, false);
    p.slots = xcalloc(PARK_SLOTS, sizeof *p.slots);
    p.free = xcalloc(PARK_SLOTS, sizeof *p.free);
    for (uint32_t i = 0; i < PARK_SLOTS; i++)
        p.free[p.nfree++] = PARK_SLOTS - 1 - i;
    struct epoll_event ev = { .events = EPOLLIN, .data.u64 = UINT64_MAX };
    if ((p.ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        epoll_ctl(p.ep, EPOLL_CTL_ADD, p.sock, &ev) < 0) {
        log_error("epoll: %s", strerror(errno));
        _exit(1);
    }
    log_debug("started: holds up to %d idle connections", PARK_SLOTS);
    park_loop(&p);
    log_debug("stopping: %u idle connections closed", PARK_SLOTS - p.nfree);
    stats_set_parked(p.stats, 0);
    _exit(0);
}

pid_t park_start(struct runtime *rt, pid_t master)
{
    pid_t pid = fork();
    if (pid == 0)
        park_run(rt, master);
    if (pid < 0)
        log_error("cannot fork the park process: %s", strerror(errno));
    return pid;
}

size_t park_table_size(void)
{
    return PARK_SLOTS * sizeof(struct clients_ticket);
}

void park_release_all(struct runtime *rt)
{
    for (uint32_t i = 0; rt->park_table && i < PARK_SLOTS; i++) {
        struct clients_ticket t = rt->park_table[i];
        clients_release(rt->clients, &t);
        memset(&rt->park_table[i], 0, sizeof t);
    }
}
