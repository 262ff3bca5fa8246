/*
 * runtime — build, reload and release what the processes share; see
 * runtime.h.
 */
#include "runtime.h"
#include "capacity.h"
#include "park.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "clients.h"
#include "clock.h"
#include "listen.h"
#include "log.h"
#include "sesscache.h"
#include "ticketkeys.h"
#include "upgrade.h"
#include "upstream.h"

#define SPARE_FDS 64    /* open files beyond listeners and the pool: logs, pipes, ... */

/* The datagram socket pair on which workers hand channels to the key
 * processes (keyclient.c, keys.c). */
static int open_key_rendezvous(struct runtime *rt, char *err, size_t errlen)
{
    rt->key_fd[0] = rt->key_fd[1] = -1;
    if (!rt->cfg->keys.isolate || rt->cfg->keys.n == 0)
        return 0;
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, rt->key_fd) < 0) {
        snprintf(err, errlen, "socketpair (key processes): %s", strerror(errno));
        rt->key_fd[0] = rt->key_fd[1] = -1;
        return -1;
    }
    return 0;
}

int runtime_load_tls(struct runtime *rt, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    if (open_key_rendezvous(rt, err, errlen) < 0)
        return -1;
    const struct tls_resumption r = { .cache = rt->cache, .keys = rt->keys,
                                      .cache_timeout = cfg->tls.session_cache.timeout,
                                      .ticket_lifetime = cfg->tls.tickets.lifetime,
                                      .ticket_max_age = cfg->tls.tickets.max_age };
    rt->fe = xcalloc(cfg->nfrontends, sizeof *rt->fe);
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        size_t stapling, n;
        if (!(rt->fe[i] = tls_frontend_new(&cfg->tls, &cfg->frontends[i], &r, err, errlen)))
            return -1;
        n = tls_frontend_certs(rt->fe[i], &stapling);
        log_debug("frontend '%s': %zu certificate%s, %zu with an OCSP staple",
                  cfg->frontends[i].name, n, n == 1 ? "" : "s", stapling);
    }
    rt->backend_ctx = xcalloc(cfg->nupstreams, sizeof *rt->backend_ctx);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct upstream_conf *up = &cfg->upstreams[i];
        rt->backend_ctx[i] = xcalloc(up->nservers, sizeof **rt->backend_ctx);
        for (size_t j = 0; j < up->nservers; j++)
            if (up->servers[j].tls.enabled &&
                !(rt->backend_ctx[i][j] = tls_client_ctx_new(&up->servers[j].tls,
                                                             up->servers[j].where, err, errlen)))
                return -1;
    }
    return 0;
}

/* Reads every configured ticket key file into keys; returns how many. */
static int read_key_files(const struct tls_conf *tls, struct ticket_key *keys, char *err,
                          size_t errlen)
{
    for (size_t i = 0; i < tls->tickets.nkey_files; i++) {
        char why[512];
        if (ticketkeys_read_file(tls->tickets.key_files[i], &keys[i], why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: tls.tickets.key_files: %s", tls->where, why);
            return -1;
        }
    }
    return (int)tls->tickets.nkey_files;
}

int runtime_check_key_files(const struct config *cfg, char *err, size_t errlen)
{
    struct ticket_key keys[CONFIG_MAX_TICKET_KEYS];
    int n = cfg->tls.tickets.enabled ? read_key_files(&cfg->tls, keys, err, errlen) : 0;
    memset(keys, 0, sizeof keys);
    return n < 0 ? -1 : 0;
}

/* A new upstream table for rt's configuration, carrying the state of the
 * servers that old (if any) also had. */
static int runtime_upstreams(struct runtime *rt, struct runtime *old, char *err, size_t errlen)
{
    size_t size = upstream_region_size(rt->cfg);
    if (shm_blob_create(&rt->ushm, "tlsoffd-upstreams", size, err, errlen) < 0)
        return -1;
    rt->ups = upstream_init(rt->ushm.base, rt->ushm.size, rt->cfg);
    if (old && old->ups)
        upstream_carry(rt->ups, old->ups);
    return 0;
}

/* USR2: the old master's segment, with its sessions, keys and counters. */
static int attach_inherited(struct runtime *rt, int fd, char *err, size_t errlen)
{
    size_t size;
    void *region;
    if (shm_attach(&rt->shm, fd, err, errlen) < 0)
        return -1;
    region = shm_region(&rt->shm, SHM_SESSCACHE, &size);
    rt->cache = size ? sesscache_open(region, size) : NULL;
    if (shm_blob_take(&rt->kshm, TICKETKEYS_SHM_NAME, err, errlen) < 0)
        return -1;
    rt->ring = ticketkeys_open(rt->kshm.base, rt->kshm.size);
    region = shm_region(&rt->shm, SHM_STATS, &size);
    rt->stats = stats_open(region, size);
    region = shm_region(&rt->shm, SHM_CLIENTS, &size);
    rt->clients = clients_open(region, size);
    rt->park_table = shm_region(&rt->shm, SHM_PARKED, &size);
    if (size < park_table_size())
        rt->park_table = NULL;
    if (!rt->ring || !rt->stats || !rt->clients || !rt->park_table) {
        snprintf(err, errlen, "the inherited shared segment is damaged");
        return -1;
    }
    return 0;
}

static uint64_t random_seed(void)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
        seed = (uint64_t)clock_real_ms();
    return seed;
}

/* The client table's policy: the limits group, as the table takes it. */
static void clients_policy_of(const struct limits_conf *l, struct clients_policy *p)
{
    *p = (struct clients_policy){
        .per_client = (uint32_t)l->per_client, .handshake_rate = (uint32_t)l->handshake_rate,
        .handshake_burst = (uint32_t)l->handshake_burst, .ipv6_prefix = (uint8_t)l->ipv6_prefix,
        .ndeny = l->ndeny, .deny = l->deny, .nallow = l->nallow, .allow = l->allow,
    };
}

/* The socket pair between the workers and the park process, if idle
 * connections are parked (workers.park_after, and a wolfSSL that can). */
static int open_park(struct runtime *rt, char *err, size_t errlen)
{
    rt->park_fd[0] = rt->park_fd[1] = -1;
    if (rt->cfg->workers.park_after <= 0 || !tls_park_supported())
        return 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, rt->park_fd) < 0) {
        snprintf(err, errlen, "socketpair (parking): %s", strerror(errno));
        rt->park_fd[0] = rt->park_fd[1] = -1;
        return -1;
    }
    return 0;
}

static int create_segment(struct runtime *rt, char *err, size_t errlen)
{
    const struct tls_conf *tls = &rt->cfg->tls;
    size_t sizes[SHM_NREGIONS] = {
        [SHM_SESSCACHE] = tls->session_cache.size,
        [SHM_STATS] = stats_region_size(CONFIG_MAX_WORKERS),   /* room for any reload */
        [SHM_CLIENTS] = clients_region_size((size_t)rt->cfg->limits.table_size),
        [SHM_PARKED] = park_table_size(),
    };
    if (shm_create(&rt->shm, sizes, err, errlen) < 0 ||
        shm_blob_create(&rt->kshm, TICKETKEYS_SHM_NAME, ticketkeys_region_size(), err,
                        errlen) < 0)
        return -1;
    size_t size;
    struct clients_policy policy;
    clients_policy_of(&rt->cfg->limits, &policy);
    void *clients = shm_region(&rt->shm, SHM_CLIENTS, &size);
    rt->clients = clients_init(clients, size, &policy, random_seed());
    if (!rt->clients) {
        snprintf(err, errlen, "limits.table_size: no room for the client table");
        return -1;
    }
    if (tls->session_cache.size) {
        void *region = shm_region(&rt->shm, SHM_SESSCACHE, &size);
        rt->cache = sesscache_init(region, size,
                                   (int64_t)(tls->session_cache.timeout * 1000), random_seed());
        if (!rt->cache) {
            snprintf(err, errlen, "%s: tls.session_cache.size: %zu bytes is too small for "
                     "one shard of the cache (use 0 to turn it off)", tls->where, size);
            return -1;
        }
    }
    rt->ring = ticketkeys_init(rt->kshm.base);
    rt->park_table = shm_region(&rt->shm, SHM_PARKED, NULL);
    rt->stats = stats_init(shm_region(&rt->shm, SHM_STATS, NULL), CONFIG_MAX_WORKERS);
    return 0;
}

/* The ticket keys in force: from the key files, kept, or a fresh one. */
static void set_ticket_keys(struct runtime *rt, const struct runtime *old,
                            const struct ticket_key *keys, int nkeys)
{
    rt->keys = rt->ring;
    bool had_files = old && old->cfg->tls.tickets.nkey_files;
    if (nkeys > 0)
        ticketkeys_set(rt->keys, keys, (size_t)nkeys);
    else if ((!old && ticketkeys_count(rt->keys, clock_real_ms()) == 0) ||
             (old && (had_files || !old->keys)))
        runtime_rotate_ticket_key(rt);
}

int runtime_shared(struct runtime *rt, struct runtime *old, char *err, size_t errlen)
{
    const struct tls_conf *tls = &rt->cfg->tls;
    struct ticket_key keys[CONFIG_MAX_TICKET_KEYS];
    int nkeys = 0, rc = -1, inherited;

    if (tls->tickets.enabled && (nkeys = read_key_files(tls, keys, err, errlen)) < 0)
        return -1;
    if (old) {
        /* A reload: the segment and what is in it stay. */
        if (tls->session_cache.size != old->cfg->tls.session_cache.size)
            log_warning("reload: tls.session_cache.size changes only at restart");
        if (rt->cfg->limits.table_size != old->cfg->limits.table_size)
            log_warning("reload: limits.table_size changes only at restart");
        rt->shm = old->shm;
        rt->kshm = old->kshm;
        rt->cache = old->cache;
        rt->ring = old->ring;
        rt->stats = old->stats;
        rt->park_table = old->park_table;
        rt->park_fd[0] = old->park_fd[0];
        rt->park_fd[1] = old->park_fd[1];
        size_t size;
        void *region = shm_region(&rt->shm, SHM_CLIENTS, &size);
        rt->clients = clients_open(region, size);
    } else if ((inherited = upgrade_take_segment()) >= 0) {
        if (attach_inherited(rt, inherited, err, errlen) < 0)
            goto out;
    } else if (create_segment(rt, err, errlen) < 0) {
        goto out;
    }
    if (!rt->clients) {
        snprintf(err, errlen, "the client table in the shared segment is damaged");
        goto out;
    }
    if (!old && open_park(rt, err, errlen) < 0)
        goto out;
    struct clients_policy policy;
    clients_policy_of(&rt->cfg->limits, &policy);
    clients_set_policy(rt->clients, &policy);
    if (runtime_upstreams(rt, old, err, errlen) < 0)
        goto out;
    if (tls->tickets.enabled)
        set_ticket_keys(rt, old, keys, nkeys);
    rc = 0;
out:
    memset(keys, 0, sizeof keys);
    return rc;
}

void runtime_rotate_ticket_key(struct runtime *rt)
{
    struct ticket_key k;
    if (!rt->keys || rt->cfg->tls.tickets.nkey_files)
        return;
    if (ticketkeys_generate(&k) < 0) {
        log_error("cannot make a ticket key: %s; keeping the current one", strerror(errno));
        return;
    }
    ticketkeys_rotate(rt->keys, &k, clock_real_ms(),
                      (int64_t)(rt->cfg->tls.tickets.lifetime * 1000));
    memset(&k, 0, sizeof k);
}

void runtime_child_shared(struct runtime *rt)
{
    char err[256];
    if (rt->kshm.base && shm_make_readonly(&rt->kshm, err, sizeof err) < 0) {
        log_error("the ticket keys: %s; exiting", err);
        _exit(1);
    }
    shm_close_fd(&rt->shm);
    shm_close_fd(&rt->ushm);
}

/*
 * Each worker holds a client, a backend and the listeners; the master
 * holds every listener and one pipe per child. Raises the soft limit on
 * open files to cover that, as far as the hard limit allows.
 */
void runtime_size_pool(struct runtime *rt, FILE *f)
{
    struct capacity cap;
    capacity_probe(&cap, rt->nlisteners);
    rt->pool_max = capacity_pool_max(&cap, rt->cfg);
    capacity_check(&cap, rt->cfg, f);
    if (rt->stats)
        stats_set_pool_max(rt->stats, (unsigned)rt->pool_max);
}

void runtime_raise_nofile(const struct runtime *rt)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)(rt->nlisteners + SPARE_FDS);   /* workers have their own tables */
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= need)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < need)
        log_warning("open files limited to %llu; %llu would be safe",
                    (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

/* The fd old listens on at a, or -1. */
static int old_listener(const struct runtime *old, const struct addr *a)
{
    for (size_t i = 0; old && i < old->cfg->nfrontends; i++)
        for (size_t j = 0; j < old->cfg->frontends[i].nlisten; j++) {
            const struct addr *b = &old->cfg->frontends[i].listen[j].addr;
            if (a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0)
                for (size_t k = 0; k < old->nlisteners; k++)
                    if (old->listeners[k].addr == b)
                        return old->listeners[k].fd;
        }
    return -1;
}

/*
 * The accept lock: a process-shared robust mutex in a mapping of its own,
 * so that a worker killed while holding it leaves EOWNERDEAD rather than a
 * pool that never accepts again.
 */
static pthread_mutex_t *accept_lock_create(void)
{
    pthread_mutex_t *m = mmap(NULL, sizeof *m, PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t a;
    if (m == MAP_FAILED)
        return NULL;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return m;
}

/* A's socket: old's, an old master's (USR2), or a new one. */
static int listener_fd(const struct runtime *old, const struct frontend_conf *fe,
                       const struct addr *a, char *err, size_t errlen)
{
    char why[256];
    int fd = old_listener(old, a);
    if (fd < 0)
        fd = upgrade_take_listener(a);
    if (fd < 0 && (fd = listen_open(a, why, sizeof why)) < 0)
        snprintf(err, errlen, "%s: frontend '%s': %s", fe->where, fe->name, why);
    return fd;
}

int runtime_bind(struct runtime *rt, const struct runtime *old, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nfrontends; i++)
        n += cfg->frontends[i].nlisten;
    rt->listeners = xcalloc(n, sizeof *rt->listeners);
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct frontend_conf *fe = &cfg->frontends[i];
        for (size_t j = 0; j < fe->nlisten; j++) {
            const struct addr *a = &fe->listen[j].addr;
            int fd = listener_fd(old, fe, a, err, errlen);
            if (fd < 0)
                return -1;
            rt->listeners[rt->nlisteners++] = (struct listener){ fd, i, a };
        }
    }
    if (!(rt->accept_lock = accept_lock_create())) {
        snprintf(err, errlen, "cannot create the accept lock: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static bool listens_on(const struct runtime *rt, int fd)
{
    for (size_t i = 0; rt && i < rt->nlisteners; i++)
        if (rt->listeners[i].fd == fd)
            return true;
    return false;
}

static void free_backend_contexts(struct runtime *rt)
{
    for (size_t i = 0; rt->backend_ctx && i < rt->cfg->nupstreams; i++) {
        for (size_t j = 0; rt->backend_ctx[i] && j < rt->cfg->upstreams[i].nservers; j++)
            tls_ctx_free(rt->backend_ctx[i][j]);
        free(rt->backend_ctx[i]);
    }
    free(rt->backend_ctx);
}

void runtime_release(struct runtime *rt, const struct runtime *other)
{
    for (size_t i = 0; rt->fe && i < rt->cfg->nfrontends; i++)
        tls_frontend_free(rt->fe[i]);
    free(rt->fe);
    free_backend_contexts(rt);
    for (size_t i = 0; i < rt->nlisteners; i++)
        if (!listens_on(other, rt->listeners[i].fd))
            close(rt->listeners[i].fd);
    free(rt->listeners);
    if (rt->accept_lock)
        munmap(rt->accept_lock, sizeof *rt->accept_lock);
    upstream_free(rt->ups);
    clients_free(rt->clients);
    if (rt->park_fd[0] >= 0 && !(other && other->park_fd[0] == rt->park_fd[0])) {
        close(rt->park_fd[0]);
        close(rt->park_fd[1]);
    }
    for (int i = 0; i < 2; i++)
        if (rt->key_fd[i] >= 0)
            close(rt->key_fd[i]);
    if (rt->ushm.base)
        shm_detach(&rt->ushm);
    if (rt->shm.base && !(other && other->shm.base == rt->shm.base))
        shm_detach(&rt->shm);
    if (rt->kshm.base && !(other && other->kshm.base == rt->kshm.base))
        shm_detach(&rt->kshm);
    config_free(rt->cfg);
}

void runtime_free(struct runtime *rt)
{
    runtime_release(rt, NULL);
}

/* A reload that runs out of memory fails and leaves the running
 * configuration in force; what it had built is not freed (its state is
 * not known at the failed call). */
static sigjmp_buf reload_oom;

static void reload_out_of_memory(size_t size, const char *file, int line)
{
    log_error("reload: out of memory (%zu bytes at %s:%d)", size, file, line);
    siglongjmp(reload_oom, 1);
}

static struct runtime *build_next(struct runtime *old, char *err, size_t errlen)
{
    struct runtime *rt = xcalloc(1, sizeof *rt);
    rt->shm.fd = rt->ushm.fd = -1;
    rt->park_fd[0] = rt->park_fd[1] = -1;
    rt->key_fd[0] = rt->key_fd[1] = -1;
    if (!(rt->cfg = config_load(old->cfg->path, err, errlen)))
        goto fail;
    if (runtime_shared(rt, old, err, errlen) < 0 || runtime_load_tls(rt, err, errlen) < 0 ||
        runtime_bind(rt, old, err, errlen) < 0)
        goto fail;
    if (strcmp(rt->cfg->pidfile, old->cfg->pidfile) != 0)
        log_warning("reload: pidfile changes only at restart");
    return rt;
fail:
    if (rt->cfg)
        runtime_release(rt, old);
    free(rt);
    return NULL;
}

struct runtime *runtime_reload(struct runtime *old, char *err, size_t errlen)
{
    struct runtime *volatile rt = NULL;
    alloc_oom_fn before = alloc_set_oom_handler(reload_out_of_memory);
    if (sigsetjmp(reload_oom, 0) == 0) {
        rt = build_next(old, err, errlen);
    } else {
        snprintf(err, errlen, "out of memory");
    }
    alloc_set_oom_handler(before);
    return rt;
}
