/*
 * master — forks the workers and keeps them alive; answers signals.
 *
 * It never touches client traffic. Signals arrive through a signalfd, so
 * all of the master's work happens in one loop with no handler races.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tlsoffd.h"
#include "clock.h"
#include "log.h"
#include "ticketkeys.h"

#define RESPAWN_MIN_MS   100
#define RESPAWN_MAX_MS   10000
#define FAST_STOP_MS     5000
#define QUICK_DEATH_MS   1000   /* a worker dying sooner than this backs off */

struct slot {
    pid_t pid;
    int64_t started;
    int64_t respawn_at;     /* when pid == 0 */
    int backoff;            /* ms */
    bool old;               /* of a configuration replaced by a reload: draining */
};

enum stop { RUNNING, STOP_GRACEFUL, STOP_FAST };

static struct slot *slots;
static int nslots;
static int sigfd = -1;

/* The dynamic pool (workers.count = 0), Apache prefork style. */
#define POOL_TICK_MS     100     /* how often the master looks at the scoreboard */
#define POOL_SHRINK_MS   500     /* spare workers are retired this often: half the excess */
#define POOL_MAX_RATE    32      /* spawns per tick, doubling while short */
static bool dynamic;
static struct stats *rt_stats;
static int spawn_rate = 1;
static int64_t next_shrink, pool_hold_until;

static pid_t spawn(struct runtime *rt, int id)
{
    pid_t pid = fork();
    if (pid == 0) {
        close(sigfd);
        worker_run(rt, id);
    }
    if (pid < 0) {
        log_error("cannot fork worker %d: %s", id, strerror(errno));
        return 0;
    }
    slots[id].pid = pid;
    slots[id].started = clock_now_ms();
    slots[id].respawn_at = INT64_MAX;
    slots[id].old = false;
    log_debug("worker %d started as pid %d", id, (int)pid);
    return pid;
}

static pid_t prober;             /* the health prober; 0: none running */
static pid_t prober_retiring;    /* a prober told to stop by a reload */

/* USR2: the new master being started, and the pipe it reports on. */
#define UPGRADE_WAIT_MS  30000  /* the new master must report within this */
static pid_t upgrade_child;
static int64_t upgrade_deadline = INT64_MAX;
static int upgrade_pipe = -1;
static int upgrade_status = -1;     /* its exit status, if it died */
static bool handed_over;            /* the new master runs: we drain and go */
static int64_t prober_respawn_at = INT64_MAX;

/* Workers and the prober. */
static void signal_workers(int sig)
{
    for (int i = 0; i < nslots; i++)
        if (slots[i].pid > 0)
            kill(slots[i].pid, sig);
    if (prober > 0)
        kill(prober, sig == SIGQUIT ? SIGTERM : sig);
}

/*
 * Closes the listening sockets for every process at once: shutdown() on a
 * listening socket stops it in the kernel, so new clients are refused at
 * once instead of waiting in a queue nobody serves, and workers blocked in
 * accept() wake up.
 */
static void stop_listening(struct runtime *rt)
{
    for (size_t i = 0; i < rt->nlisteners; i++)
        shutdown(rt->listeners[i].fd, SHUT_RDWR);
}

static int live_workers(void)
{
    int n = prober > 0;
    for (int i = 0; i < nslots; i++)
        n += slots[i].pid > 0;
    return n;
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "ended with status 0x%x", status);
}

static void reap(enum stop stop)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == upgrade_child) {
            upgrade_status = status;
            continue;
        }
        if (pid == prober_retiring) {
            prober_retiring = 0;
            continue;
        }
        if (pid == prober) {
            char how[128];
            describe_exit(status, how, sizeof how);
            prober = 0;
            if (stop == RUNNING) {
                log_error("the health prober (pid %d) %s; restarting it in 1 s (server "
                          "states stay as they are meanwhile)", (int)pid, how);
                prober_respawn_at = clock_now_ms() + 1000;
            }
            continue;
        }
        for (int i = 0; i < nslots; i++) {
            struct slot *s = &slots[i];
            if (s->pid != pid)
                continue;
            char how[128];
            describe_exit(status, how, sizeof how);
            s->pid = 0;
            struct stats_worker *w = stats_worker(rt_stats, (unsigned)i);
            if (w) {                    /* off the scoreboard */
                stats_set_state(w, WS_NONE, NULL);
                w->pid = 0;
            }
            bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (s->old) {
                log_debug("worker %d (pid %d) of the previous configuration %s", i, (int)pid,
                          how);
                s->old = false;
                s->respawn_at = INT64_MAX;
                break;
            }
            if (stop != RUNNING || (clean && dynamic)) {
                /* Stopping, or a spare or recycled worker of the pool:
                 * the pool refills itself from the scoreboard. */
                log_debug("worker %d (pid %d) %s", i, (int)pid, how);
                break;
            }
            int64_t now = clock_now_ms();
            if (dynamic) {
                /* A crash: back off the whole pool if workers die at once. */
                if (now - s->started < QUICK_DEATH_MS) {
                    s->backoff = s->backoff ? s->backoff * 2 : RESPAWN_MIN_MS;
                    if (s->backoff > RESPAWN_MAX_MS)
                        s->backoff = RESPAWN_MAX_MS;
                    pool_hold_until = now + s->backoff;
                }
                if (s->backoff >= RESPAWN_MAX_MS)
                    log_error("worker %d (pid %d) %s; workers keep dying at start, "
                              "starting new ones every %d s", i, (int)pid, how,
                              RESPAWN_MAX_MS / 1000);
                else
                    log_warning("worker %d (pid %d) %s", i, (int)pid, how);
                break;
            }
            if (clean) {
                /* workers.max_connections reached: replace it at once. */
                log_info("worker %d (pid %d) %s; replacing it", i, (int)pid, how);
                s->respawn_at = now;
                break;
            }
            if (now - s->started < QUICK_DEATH_MS)
                s->backoff = s->backoff ? s->backoff * 2 : RESPAWN_MIN_MS;
            else
                s->backoff = 0;
            if (s->backoff > RESPAWN_MAX_MS)
                s->backoff = RESPAWN_MAX_MS;
            s->respawn_at = now + s->backoff;
            if (s->backoff >= RESPAWN_MAX_MS)
                log_error("worker %d (pid %d) %s; workers keep dying at start, "
                          "respawning every %d s", i, (int)pid, how, RESPAWN_MAX_MS / 1000);
            else
                log_warning("worker %d (pid %d) %s; respawning%s", i, (int)pid, how,
                            s->backoff ? " after a back-off" : "");
            break;
        }
    }
}

/* A slot no live worker uses: not ours, and (after an upgrade) not one of
 * the old master's, which still write to the same scoreboard. */
static bool slot_free(int i)
{
    if (slots[i].pid != 0 || slots[i].old)
        return false;
    struct stats_worker *w = stats_worker(rt_stats, (unsigned)i);
    return !w || w->pid == 0 || kill(w->pid, 0) < 0;
}

/*
 * Keeps between min_spare and max_spare idle workers, at most max in all:
 * when short, it starts workers at a rate that doubles every tick (so a
 * burst is met within a few hundred ms while the listen queue holds the
 * clients); when there are too many idle ones, it retires one a second
 * with a graceful stop.
 */
static void manage_pool(struct runtime *rt, int64_t now)
{
    const struct config *cfg = rt->cfg;
    int idle = 0, total = 0, spare = -1;    /* spare: some idle worker */
    for (int i = 0; i < nslots; i++) {
        if (slots[i].pid <= 0 || slots[i].old)
            continue;
        total++;
        enum worker_state st = stats_state(stats_worker(rt->stats, (unsigned)i));
        if (st == WS_IDLE || st == WS_NONE) {     /* WS_NONE: just started */
            idle++;
            if (st == WS_IDLE)
                spare = i;
        }
    }
    if (idle < cfg->workers.min_spare && total >= cfg->workers.max) {
        static int64_t warned;
        if (now - warned >= 10000) {
            warned = now;
            log_warning("the pool is at workers.max (%d) with %d idle: new clients wait in "
                        "the listen queue", cfg->workers.max, idle);
        }
        return;
    }
    if (idle < cfg->workers.min_spare && now >= pool_hold_until) {
        int want = cfg->workers.min_spare - idle;
        if (want > spawn_rate)
            want = spawn_rate;
        if (want > cfg->workers.max - total)
            want = cfg->workers.max - total;
        for (int i = 0; i < nslots && want > 0; i++)
            if (slot_free(i) && spawn(rt, i) > 0)
                want--;
        if (spawn_rate < POOL_MAX_RATE)
            spawn_rate *= 2;
        return;
    }
    spawn_rate = 1;
    if (idle > cfg->workers.max_spare && spare >= 0 && now >= next_shrink) {
        /* Gently: half of the excess (at least one) every half second. */
        int retire = (idle - cfg->workers.max_spare + 1) / 2;
        next_shrink = now + POOL_SHRINK_MS;
        log_debug("pool: %d idle workers, retiring %d", idle, retire);
        for (int i = nslots - 1; i >= 0 && retire > 0; i--) {
            struct stats_worker *w = stats_worker(rt->stats, (unsigned)i);
            if (slots[i].pid <= 0 || slots[i].old || stats_state(w) != WS_IDLE)
                continue;
            stats_set_state(w, WS_EXITING, NULL);
            kill(slots[i].pid, SIGQUIT);
            retire--;
        }
    }
}

static int64_t next_rotation = INT64_MAX;   /* ms: a new ticket key then */


static void rename_pidfile(char **pidpath, bool to_oldbin)
{
    char *oldbin, *from, *to;
    if (!*pidpath || !**pidpath)
        return;
    size_t n = strlen(*pidpath);
    if (to_oldbin) {
        if (asprintf(&oldbin, "%s.oldbin", *pidpath) < 0)
            return;
        from = *pidpath;
        to = oldbin;
    } else {
        oldbin = strndup(*pidpath, n - strlen(".oldbin"));
        from = *pidpath;
        to = oldbin;
    }
    if (rename(from, to) < 0) {
        log_error("cannot rename the pidfile %s to %s: %s", from, to, strerror(errno));
        free(oldbin);
        return;
    }
    free(*pidpath);
    *pidpath = to;
}

/*
 * USR2: starts the binary again (it may have been replaced on disk) as a
 * new master that inherits the listening sockets and the shared segment.
 * This master serves on until the new one says it runs, then drains.
 */
static void start_upgrade(struct runtime *rt, char **pidpath)
{
    int p[2];
    if (upgrade_child) {
        log_warning("SIGUSR2: an upgrade is already under way (pid %d)", (int)upgrade_child);
        return;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        log_error("SIGUSR2: pipe: %s", strerror(errno));
        return;
    }
    rename_pidfile(pidpath, true);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        close(sigfd);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        runtime_exec_upgrade(rt, p[1]);
        _exit(127);
    }
    close(p[1]);
    if (pid < 0) {
        log_error("SIGUSR2: cannot fork: %s", strerror(errno));
        close(p[0]);
        rename_pidfile(pidpath, false);
        return;
    }
    upgrade_child = pid;
    upgrade_deadline = clock_now_ms() + UPGRADE_WAIT_MS;
    upgrade_pipe = p[0];
    upgrade_status = -1;
    log_notice("SIGUSR2: starting a new master (pid %d); serving on until it runs",
               (int)pid);
}

/* The new master reported (or died). Returns true if it runs. */
static bool finish_upgrade(char **pidpath)
{
    upgrade_deadline = INT64_MAX;
    char c = 0;
    ssize_t n;
    while ((n = read(upgrade_pipe, &c, 1)) < 0 && errno == EINTR)
        ;
    close(upgrade_pipe);
    upgrade_pipe = -1;
    if (n == 1 && c == '1') {
        log_notice("upgrade: the new master (pid %d) runs; this one stops accepting and "
                   "drains its workers", (int)upgrade_child);
        upgrade_child = 0;
        return true;
    }
    int status = upgrade_status;
    if (status < 0 && waitpid(upgrade_child, &status, 0) < 0)
        status = 0;
    char how[128] = "exited before it ran";
    describe_exit(status, how, sizeof how);
    log_error("upgrade failed: the new master (pid %d) %s (its messages are in the log); "
              "this master keeps serving", (int)upgrade_child, how);
    upgrade_child = 0;
    rename_pidfile(pidpath, false);
    return false;
}

/* The next ticket key rotation, if keys are generated (not from files). */
static void schedule_rotation(const struct runtime *rt)
{
    const struct tls_conf *tc = &rt->cfg->tls;
    if (!rt->keys || tc->tickets.nkey_files)
        next_rotation = INT64_MAX;
    else if (next_rotation == INT64_MAX)
        next_rotation = clock_now_ms() + (int64_t)(tc->tickets.rotate * 1000);
}

/* Starts the workers of rt's configuration in free slots; returns how many. */
static int start_generation(struct runtime *rt)
{
    const struct config *cfg = rt->cfg;
    dynamic = cfg->workers.count == 0;
    spawn_rate = 1;
    int want = dynamic ? cfg->workers.min_spare : cfg->workers.count, n = 0;
    for (int i = 0; i < nslots && n < want; i++) {
        if (!slot_free(i))
            continue;
        if (!spawn(rt, i))
            slots[i].respawn_at = clock_now_ms() + RESPAWN_MIN_MS;
        n++;
    }
    return n;
}

/*
 * SIGHUP: read the configuration and certificates again. If anything is
 * wrong, say so and keep serving as before. Otherwise start workers with
 * the new configuration and let the old ones finish their connection and
 * exit; listening sockets that stay are kept (no connection is refused),
 * new ones are opened and removed ones closed; sessions, ticket keys,
 * counters and the state of servers that remain carry over.
 */
static void reload(struct runtime *rt)
{
    char err[CONFIG_ERR_MAX];
    struct runtime *next = runtime_reload(rt, err, sizeof err);
    if (!next) {
        log_error("SIGHUP: reload failed, still serving with the previous configuration: %s",
                  err);
        return;
    }
    int old = 0;
    for (int i = 0; i < nslots; i++)
        if (slots[i].pid > 0 && !slots[i].old) {
            slots[i].old = true;
            kill(slots[i].pid, SIGQUIT);
            old++;
        } else if (slots[i].pid == 0) {
            slots[i].respawn_at = INT64_MAX;
        }
    if (prober > 0) {
        prober_retiring = prober;
        kill(prober, SIGTERM);
        prober = 0;
    }
    const struct config *nc = next->cfg;
    if (log_open(nc->log.destination, nc->log.facility, nc->log.level, nc->log.access_log, err,
                 sizeof err) < 0)
        log_error("SIGHUP: %s; logging as before", err);
    else if (nc->uid != (uid_t)-1)
        log_chown(nc->uid, nc->gid);
    struct runtime prev = *rt;
    *rt = *next;
    free(next);
    runtime_release(&prev, rt);
    rt_stats = rt->stats;
    schedule_rotation(rt);
    int started = start_generation(rt);
    if ((prober = health_start(rt)) < 0) {
        prober = 0;
        prober_respawn_at = clock_now_ms() + 1000;
    }
    log_notice("SIGHUP: configuration reloaded from %s: %d new workers, %zu listeners; %d "
               "workers of the previous configuration finish their connections", rt->cfg->path,
               started, rt->nlisteners, old);
}

/*
 * systemd's readiness protocol: one datagram to $NOTIFY_SOCKET (a path,
 * or an abstract name written with a leading '@'). No library needed.
 */
static void notify_systemd(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (!path || !*path || strlen(path) >= sizeof sa.sun_path)
        return;
    memcpy(sa.sun_path, path, strlen(path));
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s\nMAINPID=%d", state, (int)getpid());
    if (sendto(fd, msg, (size_t)n, 0, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path))) < 0)
        log_warning("cannot notify systemd at %s: %s", path, strerror(errno));
    close(fd);
}

static int next_timeout(enum stop stop, int64_t deadline)
{
    int64_t now = clock_now_ms(), when = next_rotation;
    if (stop != RUNNING)
        when = deadline;
    else if (prober_respawn_at < when)
        when = prober_respawn_at;
    if (stop == RUNNING && dynamic && now + POOL_TICK_MS < when)
        when = now + POOL_TICK_MS;
    if (stop == RUNNING)
        for (int i = 0; i < nslots; i++)
            if (slots[i].pid == 0 && slots[i].respawn_at < when)
                when = slots[i].respawn_at;
    if (when == INT64_MAX)
        return -1;
    return when <= now ? 0 : (int)(when - now > 60000 ? 60000 : when - now);
}

int master_run(struct runtime *rt, int ready_fd, char **pidpath)
{
    sigset_t set;
    enum stop stop = RUNNING;
    int64_t deadline = 0;

    log_set_role("master");
    sigemptyset(&set);
    for (int s = 0, sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
         s < 7; s++)
        sigaddset(&set, sigs[s]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        log_error("signalfd: %s", strerror(errno));
        return 1;
    }

    schedule_rotation(rt);
    const struct config *cfg = rt->cfg;
    rt_stats = rt->stats;
    nslots = CONFIG_MAX_WORKERS;        /* the scoreboard's size: room for reloads */
    slots = calloc((size_t)nslots, sizeof *slots);
    for (int i = 0; i < nslots; i++)
        slots[i].respawn_at = INT64_MAX;
    int start = start_generation(rt);
    if ((prober = health_start(rt)) < 0) {
        prober = 0;
        prober_respawn_at = clock_now_ms() + 1000;
    }
    if (dynamic)
        log_notice("%s %s running: %d workers (pool: %d..%d spare, at most %d), %zu listeners, "
                   "%s", "tlsoffd", TLSOFFD_VERSION, start, cfg->workers.min_spare,
                   cfg->workers.max_spare, cfg->workers.max, rt->nlisteners,
                   tls_library_version());
    else
        log_notice("%s %s running: %d workers, %zu listeners, %s", "tlsoffd", TLSOFFD_VERSION,
                   start, rt->nlisteners, tls_library_version());
    log_info("%s from %s; crypto acceleration: %s", tls_library_version(), tls_library_path(),
             tls_acceleration());
    notify_systemd("READY=1");
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "1", 1);
        (void)w;
        close(ready_fd);
    }

    for (;;) {
        struct pollfd pf[2] = { { .fd = sigfd, .events = POLLIN },
                                { .fd = upgrade_pipe, .events = POLLIN } };
        int timeout = next_timeout(stop, deadline);
        if (upgrade_child) {
            int64_t left = upgrade_deadline - clock_now_ms();
            if (timeout < 0 || left < timeout)
                timeout = left < 0 ? 0 : (int)left;
        }
        int rc = poll(pf, upgrade_pipe >= 0 ? 2 : 1, timeout);
        if (upgrade_child && clock_now_ms() >= upgrade_deadline && upgrade_pipe >= 0) {
            log_error("upgrade: the new master (pid %d) did not report within %d s; killing it",
                      (int)upgrade_child, UPGRADE_WAIT_MS / 1000);
            kill(upgrade_child, SIGKILL);
            upgrade_deadline = INT64_MAX;
        }
        if (rc > 0 && upgrade_pipe >= 0 && pf[1].revents) {
            if (finish_upgrade(pidpath) && stop == RUNNING) {
                /* The sockets are the new master's too: no shutdown(),
                 * just stop accepting here and let the workers finish. */
                handed_over = true;
                stop = STOP_GRACEFUL;
                deadline = clock_now_ms() + (int64_t)(rt->cfg->timeouts.shutdown * 1000);
                signal_workers(SIGQUIT);
                for (size_t i = 0; i < rt->nlisteners; i++)
                    close(rt->listeners[i].fd);
                rt->nlisteners = 0;
            }
        }
        if (rc > 0 && pf[0].revents) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
                switch (si.ssi_signo) {
                case SIGCHLD:
                    reap(stop);
                    break;
                case SIGTERM:
                case SIGINT:
                    if (stop != STOP_FAST) {
                        log_notice("%s: fast stop", strsignal((int)si.ssi_signo));
                        stop = STOP_FAST;
                        deadline = clock_now_ms() + FAST_STOP_MS;
                        signal_workers(SIGTERM);
                    }
                    break;
                case SIGQUIT:
                    if (stop == RUNNING) {
                        log_notice("SIGQUIT: graceful stop; waiting up to %gs for %d "
                                   "workers to finish their connections",
                                   rt->cfg->timeouts.shutdown, live_workers());
                        stop = STOP_GRACEFUL;
                        deadline = clock_now_ms() + (int64_t)(rt->cfg->timeouts.shutdown * 1000);
                        signal_workers(SIGQUIT);
                        stop_listening(rt);
                    }
                    break;
                case SIGUSR1: {
                    char err[256];
                    if (log_reopen(err, sizeof err) < 0)
                        log_error("SIGUSR1: %s", err);
                    else
                        log_notice("SIGUSR1: log files reopened");
                    /* New files are the master's: hand them to the
                     * workers' user before the workers reopen them. */
                    if (rt->cfg->uid != (uid_t)-1)
                        log_chown(rt->cfg->uid, rt->cfg->gid);
                    signal_workers(SIGUSR1);
                    break;
                }
                case SIGHUP:
                    if (stop == RUNNING)
                        reload(rt);
                    break;
                case SIGUSR2:
                    if (stop == RUNNING)
                        start_upgrade(rt, pidpath);
                    break;
                }
                if (si.ssi_signo != SIGCHLD)
                    reap(stop);
            }
        }
        if (stop != RUNNING) {
            if (live_workers() == 0)
                break;
            if (clock_now_ms() >= deadline) {
                log_warning("%d workers still busy after the %s; killing them",
                            live_workers(), stop == STOP_GRACEFUL ? "shutdown timeout"
                                                                  : "fast stop");
                signal_workers(SIGKILL);
                for (int i = 0; i < nslots; i++)
                    if (slots[i].pid > 0)
                        waitpid(slots[i].pid, NULL, 0);
                if (prober > 0)
                    waitpid(prober, NULL, 0);
                break;
            }
            continue;
        }
        int64_t now = clock_now_ms();
        if (now >= prober_respawn_at) {
            prober_respawn_at = INT64_MAX;
            if ((prober = health_start(rt)) < 0) {
                prober = 0;
                prober_respawn_at = now + 1000;
            }
        }
        if (now >= next_rotation) {
            runtime_rotate_ticket_key(rt);
            next_rotation = INT64_MAX;
            schedule_rotation(rt);
            log_info("ticket key rotated (generation %llu)",
                     (unsigned long long)ticketkeys_generation(rt->keys));
        }
        for (int i = 0; i < nslots; i++)
            if (slots[i].pid == 0 && slots[i].respawn_at <= now && !spawn(rt, i))
                slots[i].respawn_at = now + RESPAWN_MAX_MS;
        if (dynamic)
            manage_pool(rt, now);
    }
    notify_systemd("STOPPING=1");
    log_notice("stopped");
    free(slots);
    close(sigfd);
    return 0;
}
