/*
 * pool — the dynamic pool and shedding; see pool.h.
 */
#include "pool.h"

#include <signal.h>
#include <stdlib.h>

#include "alloc.h"
#include "clients.h"
#include "listen.h"
#include "log.h"

#define POOL_SHRINK_MS    500       /* spare workers are retired this often: half the excess */
#define POOL_MAX_RATE     32        /* spawns per tick, doubling while short */
#define POOL_BURST_RATE   256       /* spawns per tick while clients wait */
#define POOL_FULL_WARN_MS 10000     /* "the pool is at workers.max", at most this often */
#define SHED_AGAIN_MS     1000      /* a worker asked to shed is asked again after this */
#define SHED_LOG_MS       1000      /* the shedding line, at most this often */

/* A connection that may be shed: its worker's slot and its last delivery. */
struct shed_candidate {
    int64_t delivered_at;
    int slot;
};

/* The live process the scoreboard names in slot i, or 0. */
static pid_t scoreboard_pid(const struct pool *p, int i)
{
    struct stats_worker *w = stats_worker(p->rt->stats, (unsigned)i);
    int32_t pid = w ? __atomic_load_n(&w->pid, __ATOMIC_RELAXED) : 0;
    return pid > 0 && kill(pid, 0) == 0 ? pid : 0;
}

void pool_note_foreign(struct pool *p)
{
    for (int i = 0; i < p->nslots; i++)
        p->slots[i].foreign = scoreboard_pid(p, i) != 0;
}

/* A slot no live worker uses: not ours, and (after an upgrade) not one of
 * the old master's, which still write to the same scoreboard. What the
 * scoreboard says is believed only for the slots it named at start: a
 * worker cannot take a slot from the pool by writing a pid into it. */
bool pool_slot_free(struct pool *p, int i)
{
    struct slot *s = &p->slots[i];
    if (s->pid != 0 || s->old)
        return false;
    if (s->foreign && scoreboard_pid(p, i))
        return false;
    s->foreign = false;         /* gone: ours from now on */
    return true;
}

/* Clients waiting in the listeners' accept queues. */
static int queued_clients(const struct runtime *rt)
{
    int n = 0;
    for (size_t i = 0; i < rt->nlisteners; i++) {
        int q = listen_queued(rt->listeners[i].fd, NULL);
        n += q > 0 ? q : 0;
    }
    return n;
}

/* This generation's workers: how many, how many idle, and an idle one. */
static void census(const struct pool *p, int *total, int *idle, int *spare)
{
    *total = *idle = 0;
    *spare = -1;
    for (int i = 0; i < p->nslots; i++) {
        if (p->slots[i].pid <= 0 || p->slots[i].old)
            continue;
        (*total)++;
        enum worker_state st = stats_state(stats_worker(p->rt->stats, (unsigned)i));
        if (st == WS_IDLE || st == WS_NONE) {     /* WS_NONE: just started */
            (*idle)++;
            if (st == WS_IDLE)
                *spare = i;
        }
    }
}

/*
 * Short of spare workers: starts some, at a rate that doubles every tick;
 * with clients waiting in the accept queues, at once as many as wait (up
 * to POOL_BURST_RATE a tick), so a burst is not served at the doubling's
 * pace.
 */
static void pool_grow(struct pool *p, int total, int idle, int64_t now)
{
    const struct config *cfg = p->rt->cfg;
    int max = p->rt->pool_max;
    if (total >= max) {
        if (now - p->warned_full >= POOL_FULL_WARN_MS) {
            p->warned_full = now;
            log_warning("the pool is at workers.max (%d) with %d idle: new clients wait in "
                        "the listen queue%s", max, idle,
                        cfg->limits.shed == SHED_IDLE ? " or idle connections are shed" : "");
        }
        return;
    }
    if (now < p->hold_until) {
        p->spawn_rate = 1;     /* workers die at start: begin slowly again */
        return;
    }
    int waiting = queued_clients(p->rt);
    int want = cfg->workers.min_spare - idle + waiting;
    int rate = waiting > p->spawn_rate ? POOL_BURST_RATE : p->spawn_rate;
    if (want > rate)
        want = rate;
    if (want > max - total)
        want = max - total;
    for (int i = 0; i < p->nslots && want > 0; i++)
        if (pool_slot_free(p, i) && p->spawn(p->ctx, i) > 0)
            want--;
    if (p->spawn_rate < POOL_MAX_RATE)
        p->spawn_rate *= 2;
}

/* Too many spare workers: half of the excess (at least one) is retired
 * with a graceful stop, every POOL_SHRINK_MS. */
static void pool_shrink(struct pool *p, int idle, int64_t now)
{
    int retire = (idle - p->rt->cfg->workers.max_spare + 1) / 2;
    p->next_shrink = now + POOL_SHRINK_MS;
    log_debug("pool: %d idle workers, retiring %d", idle, retire);
    for (int i = p->nslots - 1; i >= 0 && retire > 0; i--) {
        struct stats_worker *w = stats_worker(p->rt->stats, (unsigned)i);
        if (p->slots[i].pid <= 0 || p->slots[i].old || stats_state(w) != WS_IDLE)
            continue;
        stats_set_state(w, WS_EXITING, NULL);
        kill(p->slots[i].pid, SIGQUIT);
        retire--;
    }
}

/*
 * Keeps between min_spare and max_spare idle workers, at most max in all:
 * a burst is met within a few hundred ms while the listen queue holds the
 * clients; an excess of idle workers is retired gently.
 */
static void manage(struct pool *p, int total, int idle, int spare, int64_t now)
{
    const struct config *cfg = p->rt->cfg;
    if (idle < cfg->workers.min_spare) {
        pool_grow(p, total, idle, now);
        return;
    }
    p->spawn_rate = 1;
    if (idle > cfg->workers.max_spare && spare >= 0 && now >= p->next_shrink)
        pool_shrink(p, idle, now);
}

static int older_delivery(const void *a, const void *b)
{
    const struct shed_candidate *x = a, *y = b;
    return (x->delivered_at > y->delivered_at) - (x->delivered_at < y->delivered_at);
}

/* This generation's relaying workers quiet for at least after_ms (and not
 * asked to shed within SHED_AGAIN_MS), into p->shed. Their count. */
static int shed_candidates(struct pool *p, int64_t after_ms, int64_t now)
{
    int n = 0;
    for (int i = 0; i < p->nslots; i++) {
        const struct slot *sl = &p->slots[i];
        struct stats_worker *w = stats_worker(p->rt->stats, (unsigned)i);
        if (sl->pid <= 0 || sl->old || !w || stats_state(w) != WS_RELAY ||
            now - sl->shed_at < SHED_AGAIN_MS)
            continue;
        int64_t at = __atomic_load_n(&w->delivered_at, __ATOMIC_RELAXED);
        if (at < 0 || at > now)
            at = now;           /* no time a worker could have written: not idle */
        if (now - at >= after_ms)
            p->shed[n++] = (struct shed_candidate){ .delivered_at = at, .slot = i };
    }
    return n;
}

/*
 * No worker is idle, none may be started, and clients wait: as many of the
 * connections idle longest (limits.shed_idle_after at least) as there are
 * clients waiting are asked to close (SIGUSR2: the worker sends a
 * close_notify and takes the next client).
 */
static void shed_idle(struct pool *p, int waiting, int64_t now)
{
    const struct config *cfg = p->rt->cfg;
    int64_t after = (int64_t)(cfg->limits.shed_idle_after * 1000.0);
    if (!p->shed)
        p->shed = xcalloc((size_t)p->nslots, sizeof *p->shed);
    int n = shed_candidates(p, after, now);
    if (n > waiting)
        qsort(p->shed, (size_t)n, sizeof *p->shed, older_delivery);
    int asked = n < waiting ? n : waiting;
    for (int k = 0; k < asked; k++) {
        struct slot *sl = &p->slots[p->shed[k].slot];
        sl->shed_at = now;
        kill(sl->pid, SIGUSR2);
    }
    if (asked > 0 && now - p->shed_logged >= SHED_LOG_MS) {
        p->shed_logged = now;
        log_notice("every worker is busy and %d clients wait: shedding %d connections idle "
                   "for %.1f s or more", waiting, asked,
                   (double)(now - p->shed[asked - 1].delivered_at) / 1000.0);
    }
}

/* The pool can take no more and clients wait: shed idle connections. */
static void relieve(struct pool *p, int total, int idle, int64_t now)
{
    if (p->rt->cfg->limits.shed != SHED_IDLE || idle > 0 || total < p->rt->pool_max)
        return;
    int waiting = queued_clients(p->rt);
    if (waiting > 0)
        shed_idle(p, waiting, now);
}

void pool_tick(struct pool *p, int64_t now)
{
    int total, idle, spare;
    census(p, &total, &idle, &spare);
    if (p->dynamic)
        manage(p, total, idle, spare, now);
    relieve(p, total, idle, now);
}
