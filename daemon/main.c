/*
 * main — the command line: start the daemon, test a configuration,
 * print versions.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libconfig.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "tlsoffd.h"
#include "clock.h"
#include "listen.h"
#include "log.h"
#include "sesscache.h"
#include "ticketkeys.h"
#include "upstream.h"

#define DEFAULT_CONFIG TLSOFFD_SYSCONFDIR "/tlsoffd/tlsoffd.conf"

/* USR2: what a new master inherits from the old one, through the
 * environment (TLSOFFD_UPGRADE="ready=FD shm=FD listen=FD,FD,..."). */
#define UPGRADE_ENV "TLSOFFD_UPGRADE"
static struct {
    bool active;
    int ready, shm;
    int listen[256];
    size_t nlisten;
} inherit = { .ready = -1, .shm = -1 };
static char self_path[PATH_MAX];
static char **saved_argv;

static void parse_inherit(void)
{
    const char *env = getenv(UPGRADE_ENV);
    if (!env)
        return;
    inherit.active = true;
    char *copy = strdup(env), *save = NULL;
    for (char *t = strtok_r(copy, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        if (strncmp(t, "ready=", 6) == 0)
            inherit.ready = atoi(t + 6);
        else if (strncmp(t, "shm=", 4) == 0)
            inherit.shm = atoi(t + 4);
        else if (strncmp(t, "listen=", 7) == 0) {
            char *save2 = NULL;
            for (char *f = strtok_r(t + 7, ",", &save2); f && inherit.nlisten < 256;
                 f = strtok_r(NULL, ",", &save2))
                inherit.listen[inherit.nlisten++] = atoi(f);
        }
    }
    free(copy);
    unsetenv(UPGRADE_ENV);
}

/* An inherited listening socket bound to a, taken (-1 if none). */
static int take_inherited(const struct addr *a)
{
    for (size_t i = 0; i < inherit.nlisten; i++) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        int fd = inherit.listen[i];
        if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
            continue;
        if (len == a->len && memcmp(&ss, &a->sa, len) == 0) {
            inherit.listen[i] = -1;
            fcntl(fd, F_SETFD, FD_CLOEXEC);
            return fd;
        }
    }
    return -1;
}

int runtime_exec_upgrade(const struct runtime *rt, int ready_fd)
{
    char env[4096];
    size_t off = (size_t)snprintf(env, sizeof env, "%s=ready=%d shm=%d listen=", UPGRADE_ENV,
                                  ready_fd, rt->shm.fd);
    fcntl(ready_fd, F_SETFD, 0);
    fcntl(rt->shm.fd, F_SETFD, 0);
    for (size_t i = 0; i < rt->nlisteners && off < sizeof env - 16; i++) {
        fcntl(rt->listeners[i].fd, F_SETFD, 0);
        off += (size_t)snprintf(env + off, sizeof env - off, "%s%d", i ? "," : "",
                                rt->listeners[i].fd);
    }
    putenv(env);
    execv(self_path, saved_argv);
    fprintf(stderr, "tlsoffd: cannot run %s: %s\n", self_path, strerror(errno));
    return -1;
}

/* Exit statuses (documented in tlsoffd(8)). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tlsoffd [-ftvh] [-c file] [-s command]\n"
            "       tlsoffd --gen-ticket-key file\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "  -f, --foreground    do not daemonize\n"
            "  -t, --test          check the configuration and certificates, then exit\n"
            "  -s, --send CMD      to the running instance: stats (print its counters),\n"
            "                      stop, quit, reopen, reload, upgrade (send TERM, QUIT,\n"
            "                      USR1, HUP, USR2), or a signal name\n"
            "  --gen-ticket-key FILE  write a new session-ticket key file (mode 0600)\n"
            "  -v, --version       print the versions of tlsoffd and its libraries\n"
            "  -h, --help          this text\n");
}

static const char *allocator(void)
{
#ifdef HAVE_JEMALLOC
    static char buf[128];
    const char *v = NULL;
    size_t len = sizeof v;
    if (mallctl("version", &v, &len, NULL, 0) == 0 && v) {
        snprintf(buf, sizeof buf, "jemalloc %s", v);
        return buf;
    }
    return "jemalloc (version unknown)";
#else
    return "libc malloc (built without jemalloc)";
#endif
}

static void version(void)
{
    printf("tlsoffd %s\n%s (%s)\ncrypto acceleration: %s\nlibconfig %d.%d.%d\n"
           "allocator: %s\n", TLSOFFD_VERSION, tls_library_version(), tls_library_path(),
           tls_acceleration(), LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
           LIBCONFIG_VER_REVISION, allocator());
}

int runtime_load_tls(struct runtime *rt, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    const struct tls_resumption r = { .cache = rt->cache, .keys = rt->keys,
                                      .cache_timeout = cfg->tls.session_cache.timeout,
                                      .ticket_lifetime = cfg->tls.tickets.lifetime };
    rt->fe = calloc(cfg->nfrontends, sizeof *rt->fe);
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        size_t stapling, n;
        if (!(rt->fe[i] = tls_frontend_new(&cfg->tls, &cfg->frontends[i], &r, err, errlen)))
            return -1;
        n = tls_frontend_certs(rt->fe[i], &stapling);
        log_debug("frontend '%s': %zu certificate%s, %zu with an OCSP staple",
                  cfg->frontends[i].name, n, n == 1 ? "" : "s", stapling);
    }
    rt->backend_ctx = calloc(cfg->nupstreams, sizeof *rt->backend_ctx);
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        const struct upstream_conf *up = &cfg->upstreams[i];
        rt->backend_ctx[i] = calloc(up->nservers, sizeof **rt->backend_ctx);
        for (size_t j = 0; j < up->nservers; j++)
            if (up->servers[j].tls.enabled &&
                !(rt->backend_ctx[i][j] = tls_client_ctx_new(&up->servers[j].tls,
                                                             up->servers[j].where, err, errlen)))
                return -1;
    }
    return 0;
}

/* Reads every configured ticket key file into keys; returns how many. */
static int read_key_files(const struct tls_conf *tc, struct ticket_key *keys, char *err,
                          size_t errlen)
{
    for (size_t i = 0; i < tc->tickets.nkey_files; i++) {
        char why[512];
        if (ticketkeys_read_file(tc->tickets.key_files[i], &keys[i], why, sizeof why) < 0) {
            snprintf(err, errlen, "%s: tls.tickets.key_files: %s", tc->where, why);
            return -1;
        }
    }
    return (int)tc->tickets.nkey_files;
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

int runtime_shared(struct runtime *rt, struct runtime *old, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    const struct tls_conf *tc = &cfg->tls;
    size_t sizes[SHM_NREGIONS] = {
        [SHM_SESSCACHE] = tc->session_cache.size,
        [SHM_TICKETKEYS] = ticketkeys_region_size(),
        [SHM_STATS] = stats_region_size(CONFIG_MAX_WORKERS),   /* room for any reload */
    };
    struct ticket_key keys[CONFIG_MAX_TICKET_KEYS];
    uint64_t seed = 0;
    int nkeys = 0;

    if (tc->tickets.enabled && (nkeys = read_key_files(tc, keys, err, errlen)) < 0)
        return -1;
    if (old) {
        /* A reload: the segment and what is in it stay. */
        if (tc->session_cache.size != old->cfg->tls.session_cache.size)
            log_warning("reload: tls.session_cache.size changes only at restart");
        rt->shm = old->shm;
        rt->cache = old->cache;
        rt->ring = old->ring;
        rt->stats = old->stats;
    } else if (inherit.shm >= 0) {
        /* USR2: the old master's segment, with its sessions and keys. */
        size_t size;
        void *region;
        if (shm_attach(&rt->shm, inherit.shm, err, errlen) < 0)
            return -1;
        fcntl(inherit.shm, F_SETFD, FD_CLOEXEC);
        inherit.shm = -1;
        region = shm_region(&rt->shm, SHM_SESSCACHE, &size);
        rt->cache = size ? sesscache_open(region, size) : NULL;
        region = shm_region(&rt->shm, SHM_TICKETKEYS, &size);
        rt->ring = ticketkeys_open(region, size);
        region = shm_region(&rt->shm, SHM_STATS, &size);
        rt->stats = stats_open(region, size);
        if (!rt->ring || !rt->stats) {
            snprintf(err, errlen, "the inherited shared segment is damaged");
            return -1;
        }
    } else {
        if (shm_create(&rt->shm, sizes, err, errlen) < 0)
            return -1;
        if (tc->session_cache.size) {
            size_t size;
            void *region = shm_region(&rt->shm, SHM_SESSCACHE, &size);
            if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed)
                seed = (uint64_t)clock_real_ms();
            rt->cache = sesscache_init(region, size,
                                       (int64_t)(tc->session_cache.timeout * 1000), seed);
            if (!rt->cache) {
                snprintf(err, errlen, "%s: tls.session_cache.size: %zu bytes is too small for "
                         "one shard of the cache (use 0 to turn it off)", tc->where, size);
                return -1;
            }
        }
        rt->ring = ticketkeys_init(shm_region(&rt->shm, SHM_TICKETKEYS, NULL));
        rt->stats = stats_init(shm_region(&rt->shm, SHM_STATS, NULL), CONFIG_MAX_WORKERS);
    }
    if (runtime_upstreams(rt, old, err, errlen) < 0)
        return -1;
    if (tc->tickets.enabled) {
        rt->keys = rt->ring;
        bool had_files = old && old->cfg->tls.tickets.nkey_files;
        if (nkeys > 0)
            ticketkeys_set(rt->keys, keys, (size_t)nkeys);
        else if ((!old && ticketkeys_count(rt->keys, clock_real_ms()) == 0) ||
                 (old && (had_files || !old->keys)))
            runtime_rotate_ticket_key(rt);
        memset(keys, 0, sizeof keys);
    }
    return 0;
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

int runtime_drop_privileges(const struct config *cfg, char *err, size_t errlen)
{
    if (cfg->chroot && (chroot(cfg->chroot) < 0 || chdir("/") < 0)) {
        snprintf(err, errlen, "chroot '%s': %s", cfg->chroot, strerror(errno));
        return -1;
    }
    if (cfg->gid != (gid_t)-1 &&
        (setgroups(1, &cfg->gid) < 0 || setgid(cfg->gid) < 0)) {
        snprintf(err, errlen, "cannot become group %d: %s", (int)cfg->gid, strerror(errno));
        return -1;
    }
    if (cfg->uid != (uid_t)-1) {
        if (setuid(cfg->uid) < 0) {
            snprintf(err, errlen, "cannot become user '%s': %s", cfg->user, strerror(errno));
            return -1;
        }
        if (cfg->uid != 0 && setuid(0) == 0) {
            snprintf(err, errlen, "could become root again after dropping to '%s'", cfg->user);
            return -1;
        }
    }
    return 0;
}

/* Checks, before anything starts, what dropping privileges will need. */
static int check_identity(const struct config *cfg, char *err, size_t errlen)
{
    char path[4096];
    if ((cfg->user || cfg->group || cfg->chroot) && geteuid() != 0) {
        snprintf(err, errlen, "%s: user, group and chroot need tlsoffd to start as root",
                 cfg->path);
        return -1;
    }
    if (cfg->chroot) {
        /* wolfSSL seeds every connection's generator from /dev/urandom. */
        snprintf(path, sizeof path, "%s/dev/urandom", cfg->chroot);
        if (access(path, R_OK) < 0) {
            snprintf(err, errlen, "%s: chroot '%s' has no readable dev/urandom (%s), which "
                     "TLS needs", cfg->path, cfg->chroot, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/*
 * Each worker holds a client, a backend and the listeners; the master
 * holds every listener and one pipe per child. Raises the soft limit on
 * open files to cover that, as far as the hard limit allows.
 */
static void raise_nofile(const struct runtime *rt)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)(rt->nlisteners + (size_t)config_worker_slots(rt->cfg) + 64);
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

int runtime_bind(struct runtime *rt, const struct runtime *old, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nfrontends; i++)
        n += cfg->frontends[i].nlisten;
    rt->listeners = calloc(n, sizeof *rt->listeners);
    rt->listener_kept = calloc(n, sizeof *rt->listener_kept);
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct frontend_conf *fe = &cfg->frontends[i];
        for (size_t j = 0; j < fe->nlisten; j++) {
            char why[256];
            int fd = old_listener(old, &fe->listen[j].addr);
            if (fd < 0 && (fd = take_inherited(&fe->listen[j].addr)) >= 0) {
                rt->listeners[rt->nlisteners++] = (struct listener){ fd, i, &fe->listen[j].addr };
                continue;
            }
            if (fd >= 0) {
                rt->listener_kept[rt->nlisteners] = true;
                rt->listeners[rt->nlisteners++] = (struct listener){ fd, i, &fe->listen[j].addr };
                continue;
            }
            fd = listen_open(&fe->listen[j].addr, why, sizeof why);
            if (fd < 0) {
                snprintf(err, errlen, "%s: frontend '%s': %s", fe->where, fe->name, why);
                return -1;
            }
            rt->listeners[rt->nlisteners++] = (struct listener){ fd, i, &fe->listen[j].addr };
        }
    }
    if (!(rt->accept_lock = worker_accept_lock_create())) {
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

/*
 * Frees a runtime. other, if set, is a runtime that shares parts of it (the
 * next one after a reload, or the running one when a reload failed): the
 * listening sockets and shared segment they have in common stay open.
 */
void runtime_release(struct runtime *rt, const struct runtime *other)
{
    for (size_t i = 0; rt->fe && i < rt->cfg->nfrontends; i++)
        tls_frontend_free(rt->fe[i]);
    for (size_t i = 0; rt->backend_ctx && i < rt->cfg->nupstreams; i++) {
        for (size_t j = 0; rt->backend_ctx[i] && j < rt->cfg->upstreams[i].nservers; j++)
            tls_ctx_free(rt->backend_ctx[i][j]);
        free(rt->backend_ctx[i]);
    }
    free(rt->backend_ctx);
    for (size_t i = 0; i < rt->nlisteners; i++)
        if (!listens_on(other, rt->listeners[i].fd))
            close(rt->listeners[i].fd);
    free(rt->fe);
    free(rt->listeners);
    free(rt->listener_kept);
    if (rt->accept_lock)
        munmap(rt->accept_lock, sizeof *rt->accept_lock);
    upstream_free(rt->ups);
    if (rt->ushm.base)
        shm_detach(&rt->ushm);
    if (rt->shm.base && !(other && other->shm.base == rt->shm.base))
        shm_detach(&rt->shm);
    config_free(rt->cfg);
}

void runtime_free(struct runtime *rt)
{
    runtime_release(rt, NULL);
}

struct runtime *runtime_reload(struct runtime *old, char *err, size_t errlen)
{
    struct runtime *rt = calloc(1, sizeof *rt);
    rt->shm.fd = rt->ushm.fd = -1;
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

/* The pid in the configured pidfile, or -1 with a message on stderr. */
static int running_pid(const struct config *cfg)
{
    char buf[32] = "";
    if (!cfg->pidfile[0]) {
        fprintf(stderr, "tlsoffd: %s sets no pidfile: cannot find the running master\n",
                cfg->path);
        return -1;
    }
    int fd = open(cfg->pidfile, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    int pid = n > 0 ? atoi(buf) : 0;
    if (pid <= 0 || kill(pid, 0) < 0) {
        fprintf(stderr, "tlsoffd: no running master (pidfile %s%s%s)\n", cfg->pidfile,
                pid > 0 ? " names a dead pid " : n < 0 ? ": " : " is empty",
                pid > 0 ? buf : n < 0 ? strerror(errno) : "");
        return -1;
    }
    return pid;
}

/* -s: talk to the running master. */
/* -s NAME: a signal for the master, by its name or its purpose. */
static int signal_of(const char *what)
{
    /* By purpose, then by signal name (upper or lower case). */
    static const struct { const char *purpose, *name; int sig; } sigs[] = {
        { .purpose = "stop", .name = "term", .sig = SIGTERM },
        { .purpose = "quit", .name = "quit", .sig = SIGQUIT },
        { .purpose = "reopen", .name = "usr1", .sig = SIGUSR1 },
        { .purpose = "reload", .name = "hup", .sig = SIGHUP },
        { .purpose = "upgrade", .name = "usr2", .sig = SIGUSR2 },
        { .purpose = "int", .name = "int", .sig = SIGINT },
    };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (strcmp(sigs[i].purpose, what) == 0 || strcasecmp(sigs[i].name, what) == 0)
            return sigs[i].sig;
    return 0;
}

static int send_command(const struct config *cfg, const char *what)
{
    char err[512];
    struct shm shm = { .fd = -1 };
    int sig = signal_of(what);
    if (!sig && strcmp(what, "stats") != 0) {
        fprintf(stderr, "tlsoffd: -s %s: unknown command (known: stats, stop, quit, reopen, "
                "reload, upgrade, or a signal name: TERM, QUIT, USR1, HUP, USR2, INT)\n", what);
        return EXIT_USAGE;
    }
    int pid = running_pid(cfg);
    if (pid < 0)
        return EXIT_FAIL;
    if (sig) {
        if (kill(pid, sig) < 0) {
            fprintf(stderr, "tlsoffd: cannot signal pid %d: %s\n", pid, strerror(errno));
            return EXIT_FAIL;
        }
        return EXIT_OK;
    }
    if (shm_attach_pid(&shm, pid, err, sizeof err) < 0) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        return EXIT_FAIL;
    }
    size_t ssize, csize, ksize;
    void *sreg = shm_region(&shm, SHM_STATS, &ssize);
    void *creg = shm_region(&shm, SHM_SESSCACHE, &csize);
    void *kreg = shm_region(&shm, SHM_TICKETKEYS, &ksize);
    struct stats *st = stats_open(sreg, ssize);
    struct sesscache *cache = csize ? sesscache_open(creg, csize) : NULL;
    struct ticketkeys *keys = ticketkeys_open(kreg, ksize);
    printf("master=%d\n", pid);
    if (cache)
        printf("session_cache capacity=%zu repairs=%llu\n", sesscache_capacity(cache),
               (unsigned long long)sesscache_repairs(cache));
    else
        printf("session_cache off\n");
    if (keys && ticketkeys_generation(keys) > 0)
        printf("ticket_keys generation=%llu decrypting=%zu\n",
               (unsigned long long)ticketkeys_generation(keys),
               ticketkeys_count(keys, clock_real_ms()));
    else
        printf("ticket_keys off\n");
    if (st)
        stats_print(st, stdout);
    struct shm ushm = { .fd = -1 };
    struct upstreams *ups = NULL;
    if (shm_blob_attach_pid(&ushm, pid, "tlsoffd-upstreams", err, sizeof err) == 0)
        ups = upstream_open(ushm.base, ushm.size, cfg);
    for (size_t i = 0; ups && i < cfg->nupstreams; i++)
        for (size_t j = 0; j < cfg->upstreams[i].nservers; j++) {
            const struct server_state *ss = upstream_state(ups, i, j);
            printf("server upstream=%s address=%s state=%s active=%llu total=%llu "
                   "failures=%llu fails=%u passes=%u last_error=\"%s\"\n",
                   cfg->upstreams[i].name, cfg->upstreams[i].servers[j].address,
                   ss->up ? "up" : "down", (unsigned long long)ss->active,
                   (unsigned long long)ss->total, (unsigned long long)ss->failures, ss->fails,
                   ss->passes, ss->error);
        }
    if (!ups && cfg->nupstreams)
        printf("servers: the running instance has another configuration\n");
    upstream_free(ups);
    if (ushm.base)
        shm_detach(&ushm);
    shm_detach(&shm);
    return st ? EXIT_OK : EXIT_FAIL;
}

/*
 * The pidfile is locked for the master's whole life, so a second instance
 * can tell a live one (lock held) from a stale file (lock free).
 */
static int pidfile_open(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "pidfile '%s': %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char buf[32] = "";
        ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        snprintf(err, errlen, "pidfile '%s' is locked: tlsoffd is already running as pid %s",
                 path, buf[0] ? buf : "?");
        close(fd);
        return -1;
    }
    return fd;
}

/*
 * Writes our pid so that no reader ever sees an empty or partial file: a
 * new file next to it, locked, then renamed over it. The lock on the old
 * file is held until the new one is in place, so a second instance never
 * finds the path unlocked. Returns the fd that now holds the lock.
 */
static int pidfile_write(int fd, const char *path)
{
    char buf[32], tmp[4200];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", path, (int)getpid());
    int nfd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (nfd < 0 || flock(nfd, LOCK_EX | LOCK_NB) < 0 || write(nfd, buf, (size_t)n) != n ||
        rename(tmp, path) < 0) {
        log_warning("cannot write the pidfile %s: %s; writing it in place", path,
                    strerror(errno));
        if (nfd >= 0) {
            unlink(tmp);
            close(nfd);
        }
        if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
            log_warning("cannot write the pidfile: %s", strerror(errno));
        return fd;
    }
    close(fd);
    return nfd;
}

/* Forks into the background. The parent waits until the master reports
 * that it runs (or fails), so the exit status of the start is true. */
static int daemonize(int *ready_fd)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid > 0) {
        char c = 0;
        close(p[1]);
        ssize_t n;
        while ((n = read(p[0], &c, 1)) < 0 && errno == EINTR)
            ;
        _exit(n == 1 && c == '1' ? EXIT_OK : EXIT_FAIL);
    }
    close(p[0]);
    setsid();
    if (chdir("/") < 0)
        return -1;
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, 0);
        dup2(null, 1);
        close(null);
    }
    *ready_fd = p[1];
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "foreground", no_argument, NULL, 'f' },
        { "test", no_argument, NULL, 't' },
        { "version", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "send", required_argument, NULL, 's' },
        { "gen-ticket-key", required_argument, NULL, 'K' },
        { NULL, 0, NULL, 0 },
    };
    const char *send = NULL;
    const char *path = DEFAULT_CONFIG;
    bool foreground = false, test = false;
    saved_argv = argv;
    if (!realpath(argv[0], self_path)) {
        ssize_t n = readlink("/proc/self/exe", self_path, sizeof self_path - 1);
        self_path[n > 0 ? n : 0] = '\0';
    }
    char err[CONFIG_ERR_MAX];
    int c;

    while ((c = getopt_long(argc, argv, "c:fts:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 's': send = optarg; break;
        case 'K':
            if (ticketkeys_write_file(optarg, err, sizeof err) < 0) {
                fprintf(stderr, "tlsoffd: %s\n", err);
                return EXIT_FAIL;
            }
            return EXIT_OK;
        case 'f': foreground = true; break;
        case 't': test = true; break;
        case 'v': version(); return EXIT_OK;
        case 'h': usage(stdout); return EXIT_OK;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "tlsoffd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }

    log_init_stderr("tlsoffd");
    if (!test && !send)
        parse_inherit();
    struct runtime rt = { 0 };
    if (!(rt.cfg = config_load(path, err, sizeof err))) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        return EXIT_FAIL;
    }
    if (send) {
        int rc = send_command(rt.cfg, send);
        runtime_free(&rt);
        return rc;
    }
    tls_global_init();
    if (!test && runtime_shared(&rt, NULL, err, sizeof err) < 0) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        runtime_free(&rt);
        return EXIT_FAIL;
    }
    if (test && rt.cfg->tls.tickets.enabled) {
        struct ticket_key keys[CONFIG_MAX_TICKET_KEYS];
        if (read_key_files(&rt.cfg->tls, keys, err, sizeof err) < 0) {
            fprintf(stderr, "tlsoffd: %s\n", err);
            runtime_free(&rt);
            return EXIT_FAIL;
        }
        memset(keys, 0, sizeof keys);
    }
    if (runtime_load_tls(&rt, err, sizeof err) < 0) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        runtime_free(&rt);
        return EXIT_FAIL;
    }
    if (test) {
        fprintf(stderr, "tlsoffd: configuration file %s is valid\n", path);
        runtime_free(&rt);
        return EXIT_OK;
    }

    const struct config *cfg = rt.cfg;
    bool daemon = cfg->daemon && !foreground;
    int pidfd = -1, ready_fd = -1;
    if (cfg->pidfile[0] && (pidfd = pidfile_open(cfg->pidfile, err, sizeof err)) < 0)
        goto fail;
    if (runtime_bind(&rt, NULL, err, sizeof err) < 0)
        goto fail;
    if (log_open(cfg->log.destination, cfg->log.facility, cfg->log.level, cfg->log.access_log,
                 err, sizeof err) < 0)
        goto fail;
    if (check_identity(cfg, err, sizeof err) < 0)
        goto fail;
    if (cfg->uid != (uid_t)-1)
        log_chown(cfg->uid, cfg->gid);
    raise_nofile(&rt);
    if (inherit.active) {
        /* USR2: we are the new master; the old one waits for our word. */
        daemon = false;
        ready_fd = inherit.ready;
        for (size_t i = 0; i < inherit.nlisten; i++)
            if (inherit.listen[i] >= 0)
                close(inherit.listen[i]);          /* no longer configured */
    }
    if (daemon && daemonize(&ready_fd) < 0) {
        snprintf(err, sizeof err, "cannot daemonize: %s", strerror(errno));
        goto fail;
    }
    if (daemon && strcmp(cfg->log.destination, "stderr") != 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 2);
            close(null);
        }
    }
    if (pidfd >= 0)
        pidfd = pidfile_write(pidfd, cfg->pidfile);
    log_info("allocator: %s", allocator());

    char *pidpath = strdup(cfg->pidfile);     /* a reload replaces cfg */
    int status = master_run(&rt, ready_fd, &pidpath);
    if (pidfd >= 0) {
        unlink(pidpath);
        close(pidfd);
    }
    free(pidpath);
    runtime_free(&rt);
    tls_global_cleanup();
    log_close();
    return status;

fail:
    fprintf(stderr, "tlsoffd: %s\n", err);
    if (!log_to_stderr())
        log_error("%s", err);
    runtime_free(&rt);
    return EXIT_FAIL;
}
