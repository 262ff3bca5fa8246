/*
 * health — the prober process: checks every server of every upstream that
 * has health checks, on the upstream's interval, and writes the verdicts
 * into the shared segment, where the workers read them.
 *
 * One thread per server, so a slow or silent server never delays the
 * checks of the others. The master restarts the prober if it dies; while
 * it is gone, the states stay as they were rather than flip.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "health.h"
#include "keyclient.h"

#include "alloc.h"
#include "child.h"
#include "log.h"
#include "probe.h"
#include "threadstack.h"
#include "upstream.h"

#define NS_PER_S 1000000000L

/* A check thread's own stack: a TLS probe (wolfSSL's handshake) fits. */
#define CHECK_STACK (256 * 1024)

struct checker {
    struct runtime *rt;
    size_t up, server;
    struct probe_conf pc;
    char host[ADDR_STRLEN];
};

static volatile sig_atomic_t reopen_logs;

static void on_usr1(int sig)
{
    (void)sig;
    reopen_logs = 1;
}

static void sleep_until(const struct timespec *t)
{
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, t, NULL) == EINTR)
        ;
}

static void *check_loop(void *arg)
{
    struct checker *c = arg;
    const struct upstream_conf *up = &c->rt->cfg->upstreams[c->up];
    const struct server_conf *sv = &up->servers[c->server];
    const struct health_conf *h = &up->health;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        struct probe_result r;
        if (reopen_logs && __atomic_exchange_n(&reopen_logs, 0, __ATOMIC_SEQ_CST)) {
            char err[256];
            if (log_reopen(err, sizeof err) < 0)
                log_error("%s", err);
        }
        probe_run(&c->pc, &sv->addr, &r);
        int changed = upstream_report(c->rt->ups, c->up, c->server, r.ok, true, r.reason);
        if (changed > 0)
            log_notice("upstream '%s': server %s is up: %s (%d good checks in a row)",
                       up->name, sv->address, r.reason, h->rise);
        else if (changed < 0)
            log_warning("upstream '%s': server %s is down: %s (%d failed checks in a row)",
                        up->name, sv->address, r.reason, h->fall);
        else
            log_debug("upstream '%s': server %s: %s", up->name, sv->address, r.reason);
        long ns = (long)(h->interval * 1e9);
        next.tv_sec += ns / NS_PER_S;
        next.tv_nsec += ns % NS_PER_S;
        if (next.tv_nsec >= NS_PER_S) {
            next.tv_sec++;
            next.tv_nsec -= NS_PER_S;
        }
        sleep_until(&next);
    }
    return NULL;
}

/* The probe of one server, from its upstream's health settings. */
static int setup(struct checker *c, char *err, size_t errlen)
{
    const struct upstream_conf *up = &c->rt->cfg->upstreams[c->up];
    const struct server_conf *sv = &up->servers[c->server];
    const struct health_conf *h = &up->health;
    struct probe_conf *pc = &c->pc;

    memset(pc, 0, sizeof *pc);
    pc->type = h->type == HEALTH_TCP ? PROBE_TCP : h->type == HEALTH_HTTP ? PROBE_HTTP
                                                                          : PROBE_TLS;
    pc->timeout = h->timeout;
    pc->path = h->path;
    if (h->host) {
        pc->host = h->host;
    } else {
        /* The server's address without its port. */
        snprintf(c->host, sizeof c->host, "%s", sv->address);
        char *colon = strrchr(c->host, ':');
        if (colon)
            *colon = '\0';
        pc->host = c->host;
    }
    pc->expect_lo = h->expect_lo;
    pc->expect_hi = h->expect_hi;
    pc->body = h->body;
    if (sv->tls.enabled) {
        /* The workers' context for this server: the same CA, name check
         * and client certificate as real traffic. */
        pc->tls_ctx = c->rt->backend_ctx[c->up][c->server];
        pc->sni = sv->tls.sni;
        pc->verify_name = sv->tls.verify && sv->tls.verify_name;
        pc->check_name = sv->tls.verify_name;
    } else if (h->type == HEALTH_TLS) {
        /* A TLS check of a server we talk to in plain text: the handshake
         * only, not verified. */
        if (!(pc->tls_ctx = probe_tls_ctx_new(NULL, false, err, errlen)))
            return -1;
    }
    return 0;
}

static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

static void run(struct runtime *rt)
{
    size_t n = 0;
    for (size_t i = 0; i < rt->cfg->nupstreams; i++)
        if (rt->cfg->upstreams[i].health.type != HEALTH_NONE)
            n += rt->cfg->upstreams[i].nservers;
    struct checker *cs = xcalloc(n, sizeof *cs);
    size_t k = 0;
    for (size_t i = 0; i < rt->cfg->nupstreams; i++) {
        if (rt->cfg->upstreams[i].health.type == HEALTH_NONE)
            continue;
        for (size_t j = 0; j < rt->cfg->upstreams[i].nservers; j++, k++) {
            char err[256];
            cs[k] = (struct checker){ .rt = rt, .up = i, .server = j };
            if (setup(&cs[k], err, sizeof err) < 0) {
                log_error("upstream '%s': server %s: cannot set up its check: %s",
                          rt->cfg->upstreams[i].name, rt->cfg->upstreams[i].servers[j].address,
                          err);
                _exit(1);
            }
        }
    }
    /* Checks are set up (CA files read) first, then privileges dropped. */
    child_confine(rt->cfg);
    keyclient_start(rt);            /* TLS checks with a client certificate sign there */
    for (k = 0; k < n; k++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, threadstack_size(CHECK_STACK));
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&t, &a, check_loop, &cs[k]);
        if (rc != 0) {
            log_error("cannot start a check thread: %s", strerror(rc));
            _exit(1);
        }
        pthread_attr_destroy(&a);
    }
    log_debug("checking %zu servers", n);
    for (;;)
        pause();
}

pid_t health_start(struct runtime *rt)
{
    bool any = false;
    for (size_t i = 0; i < rt->cfg->nupstreams; i++)
        any |= rt->cfg->upstreams[i].health.type != HEALTH_NONE;
    if (!any)
        return 0;
    static const struct child_signals sigs = { .quit = on_term, .usr1 = on_usr1,
                                               .term = on_term };
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot fork the health prober: %s", strerror(errno));
        return -1;
    }
    if (pid > 0)
        return pid;
    /* Never hold a listening socket: when the master and workers are gone,
     * the port must close. */
    for (size_t i = 0; i < rt->nlisteners; i++)
        close(rt->listeners[i].fd);
    child_begin(master, "health", "tlsoffd-health", &sigs);
    runtime_child_shared(rt);
    alloc_set_oom_handler(child_out_of_memory);
    run(rt);
    _exit(0);
}
