/*
 * ctl — the -s client; see ctl.h.
 */
#include "ctl.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "clock.h"
#include "report.h"
#include "exit.h"
#include "sesscache.h"
#include "shm.h"
#include "stats.h"
#include "clients.h"
#include "ticketkeys.h"
#include "upstream.h"

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

/* A signal for the master, by its purpose or its name (any case); 0 if none. */
static int signal_of(const char *what)
{
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

static void print_resumption(struct shm *shm, int pid)
{
    char err[512];
    size_t csize;
    void *creg = shm_region(shm, SHM_SESSCACHE, &csize);
    struct sesscache *cache = csize ? sesscache_open(creg, csize) : NULL;
    struct shm kshm = { .fd = -1 };
    struct ticketkeys *keys = NULL;
    if (shm_blob_attach_pid(&kshm, pid, TICKETKEYS_SHM_NAME, err, sizeof err) == 0)
        keys = ticketkeys_open(kshm.base, kshm.size);
    if (cache)
        printf("session_cache capacity=%zu repairs=%llu\n", sesscache_capacity(cache),
               (unsigned long long)sesscache_repairs(cache));
    else
        printf("session_cache off\n");
    sesscache_free(cache);
    if (keys && ticketkeys_generation(keys) > 0)
        printf("ticket_keys generation=%llu decrypting=%zu\n",
               (unsigned long long)ticketkeys_generation(keys),
               ticketkeys_count(keys, clock_real_ms()));
    else
        printf("ticket_keys off\n");
    if (kshm.base)
        shm_detach(&kshm);
}

/* The servers' states, if the running master has this configuration. */
static void print_servers(const struct config *cfg, int pid)
{
    char err[512];
    struct shm ushm = { .fd = -1 };
    struct upstreams *ups = NULL;
    if (shm_blob_attach_pid(&ushm, pid, "tlsoffd-upstreams", err, sizeof err) == 0)
        ups = upstream_open(ushm.base, ushm.size, cfg);
    for (size_t i = 0; ups && i < cfg->nupstreams; i++)
        for (size_t j = 0; j < cfg->upstreams[i].nservers; j++) {
            const struct server_state *ss = upstream_state(ups, i, j);
            char error[sizeof ss->error + 1];
            printf("server upstream=%s address=%s state=%s active=%llu total=%llu "
                   "failures=%llu fails=%u passes=%u last_error=\"%s\"\n",
                   cfg->upstreams[i].name, cfg->upstreams[i].servers[j].address,
                   ss->up ? "up" : "down", (unsigned long long)ss->active,
                   (unsigned long long)ss->total, (unsigned long long)ss->failures, ss->fails,
                   ss->passes, stats_text(ss->error, sizeof ss->error, error, sizeof error));
        }
    if (!ups && cfg->nupstreams)
        printf("servers: the running instance has another configuration\n");
    upstream_free(ups);
    if (ushm.base)
        shm_detach(&ushm);
}

#define TOP_CLIENTS 10

/* The clients with the most connections open, from the client table. */
static void print_top_clients(const struct shm *shm)
{
    size_t size;
    struct clients_usage top[TOP_CLIENTS];
    void *region = shm_region(shm, SHM_CLIENTS, &size);
    struct clients *t = clients_open(region, size);
    if (!t)
        return;
    size_t n = clients_top(t, top, TOP_CLIENTS);
    for (size_t i = 0; i < n; i++) {
        char net[ADDR_STRLEN + 8];
        addr_cidr_format(&top[i].client, net, sizeof net);
        printf("client=%s connections=%u handshake_tokens=%d\n", net, top[i].connections,
               top[i].tokens);
    }
    clients_free(t);
}

static int print_stats(const struct config *cfg, int pid)
{
    char err[512];
    struct shm shm = { .fd = -1 };
    if (shm_attach_pid(&shm, pid, err, sizeof err) < 0) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        return EXIT_FAIL;
    }
    size_t ssize;
    void *region = shm_region(&shm, SHM_STATS, &ssize);
    struct stats *st = stats_open(region, ssize);
    printf("master=%d\n", pid);
    print_resumption(&shm, pid);
    if (st)
        stats_print(st, stdout);
    print_top_clients(&shm);
    print_servers(cfg, pid);
    bool good = st;
    stats_free(st);
    shm_detach(&shm);
    return good ? EXIT_OK : EXIT_FAIL;
}

#define WAIT_MS     60000       /* -s reload and -s upgrade give up then */
#define POLL_MS     20

/* Sends sig to the master: 0, or -1 with a message on stderr. */
static int signal_master(int pid, int sig)
{
    if (kill(pid, sig) == 0)
        return 0;
    fprintf(stderr, "tlsoffd: cannot signal pid %d: %s\n", pid, strerror(errno));
    return -1;
}

/* Which outcome a command waits for on the report page. */
static const struct report_outcome *outcome_of(const struct report_page *p, int sig)
{
    return sig == SIGHUP ? &p->reload : &p->upgrade;
}

/* How the reload or upgrade that sig started ended; the exit status. */
static int report_outcome(const struct report_outcome *o, int sig)
{
    if (sig == SIGHUP) {
        if (o->ok)
            return EXIT_OK;
        fprintf(stderr, "tlsoffd: reload failed, still serving with the previous "
                "configuration: %s\n", o->error);
        return EXIT_FAIL;
    }
    if (o->ok) {
        printf("%d\n", (int)o->pid);
        return EXIT_OK;
    }
    fprintf(stderr, "tlsoffd: upgrade failed, the running master serves on: %s\n", o->error);
    return EXIT_FAIL;
}

/* A master that makes no report page (one of a tlsoffd from before it,
 * still running while the package is upgraded) is signalled all the same:
 * a reload must not stop working until the next restart. */
static int signal_blind(int pid, int sig, const char *why)
{
    if (signal_master(pid, sig) < 0)
        return EXIT_FAIL;
    fprintf(stderr, "tlsoffd: sent %s to pid %d, which cannot report the outcome (%s): "
            "see its log\n", sig == SIGHUP ? "HUP" : "USR2", pid, why);
    return EXIT_OK;
}

/*
 * HUP or USR2, and the wait for the master to finish what it started: the
 * outcome is on its report page (report.h), which it alone can write.
 * begun is read before the signal, so only work that began after it counts.
 */
static int signal_and_wait(int pid, int sig)
{
    char err[512];
    struct report_page now;
    const struct report_page *page = report_attach(pid, err, sizeof err);
    if (!page)
        return signal_blind(pid, sig, err);
    report_read(page, &now);
    uint64_t begun = outcome_of(&now, sig)->begun;
    if (signal_master(pid, sig) < 0)
        return EXIT_FAIL;
    for (int64_t end = clock_now_ms() + WAIT_MS; clock_now_ms() < end; usleep(POLL_MS * 1000)) {
        report_read(page, &now);
        if (outcome_of(&now, sig)->done > begun)
            return report_outcome(outcome_of(&now, sig), sig);
        if (now.state != REPORT_SERVING || kill(pid, 0) < 0) {
            fprintf(stderr, "tlsoffd: the master (pid %d) %s\n", pid,
                    now.state == REPORT_SERVING ? "exited"
                    : now.state == REPORT_HANDED_OVER ? "has handed over to a new master "
                                                        "(USR2): try again"
                                                      : "is stopping");
            return EXIT_FAIL;
        }
    }
    fprintf(stderr, "tlsoffd: timed out: the master (pid %d) did not finish the %s within "
            "%d s\n", pid, sig == SIGHUP ? "reload" : "upgrade", WAIT_MS / 1000);
    return EXIT_FAIL;
}

int ctl_send(const struct config *cfg, const char *what)
{
    int sig = signal_of(what);
    if (!sig && strcmp(what, "stats") != 0) {
        fprintf(stderr, "tlsoffd: -s %s: unknown command (known: stats, stop, quit, reopen, "
                "reload, upgrade, or a signal name: TERM, QUIT, USR1, HUP, USR2, INT)\n", what);
        return EXIT_USAGE;
    }
    int pid = running_pid(cfg);
    if (pid < 0)
        return EXIT_FAIL;
    if (!sig)
        return print_stats(cfg, pid);
    if (strcmp(what, "reload") == 0 || strcmp(what, "upgrade") == 0)
        return signal_and_wait(pid, sig);
    return signal_master(pid, sig) < 0 ? EXIT_FAIL : EXIT_OK;
}
