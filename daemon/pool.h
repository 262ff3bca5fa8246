/*
 * pool — the workers' slots and the dynamic pool (Apache prefork style):
 * how many run, how many are idle, starting more when clients wait and
 * retiring spare ones, and shedding the longest-idle connections when the
 * pool may not grow and clients wait. The master owns the struct and the
 * workers' lives (it forks through pool.spawn); this file decides.
 *
 * Peers: none in daemon/ (the master calls it; it reads the scoreboard
 * and the listeners' accept queues through the runtime).
 */
#ifndef TLSOFFD_POOL_H
#define TLSOFFD_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime.h"

#define POOL_TICK_MS      100       /* how often the master looks at the scoreboard */

/* One worker's place: the scoreboard entry of the same index. */
struct slot {
    pid_t pid;
    int64_t started;
    int64_t respawn_at;     /* when pid == 0 */
    int backoff;            /* ms */
    bool old;               /* of a configuration replaced by a reload: draining */
    int64_t shed_at;        /* when it was last asked to shed its connection */
    bool foreign;           /* at start the scoreboard named a live process here (an
                             * old master's worker): not ours until it is gone */
};

struct shed_candidate;

struct pool {
    struct runtime *rt;
    struct slot *slots;     /* one per scoreboard entry: room for reloads */
    int nslots;
    bool dynamic;           /* workers.count = 0 */
    int spawn_rate;
    int64_t next_shrink, hold_until, warned_full;
    struct shed_candidate *shed;    /* room for every slot */
    int64_t shed_logged;
    pid_t (*spawn)(void *ctx, int slot);    /* the master's fork: its pid, 0 if none */
    void *ctx;
};

/* Once, before the first worker starts: the slots the scoreboard says a
 * live process uses (after an upgrade, the old master's workers). */
void pool_note_foreign(struct pool *p);

/* A slot no live worker uses: not ours, and not one of those noted at
 * start while the process there lives. */
bool pool_slot_free(struct pool *p, int i);

/*
 * Every POOL_TICK_MS, from one census of the scoreboard: a dynamic pool
 * grows toward min_spare (at once by as many as clients wait) or retires
 * spare workers; if every worker is busy, none may start and clients
 * wait, the longest-idle connections are asked to close (limits.shed).
 */
void pool_tick(struct pool *p, int64_t now);

#endif
