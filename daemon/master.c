/*
 * master — signals and supervision of the workers, the prober and the park
 * process; see master.h. What the pool does is decided in pool.c.
 *
 * Signals arrive through a signalfd, so all of the master's work happens
 * in one loop with no handler races. Its state is one struct master.
 *
 * Peers: runtime (what it builds, reloads and releases), pool (the slots,
 * growing, retiring, shedding), worker, health and park (the children it
 * forks), upgrade (the USR2 hand-over and the pidfile).
 */
#include "master.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "clients.h"
#include "clock.h"
#include "exit.h"
#include "health.h"
#include "keys.h"
#include "listen.h"
#include "park.h"
#include "pool.h"
#include "log.h"
#include "notify.h"
#include "report.h"
#include "ticketkeys.h"
#include "upgrade.h"
#include "worker.h"

#define RESPAWN_MIN_MS    100       /* the first back-off after a quick death */
#define RESPAWN_MAX_MS    10000     /* the back-off doubles up to this */
#define QUICK_DEATH_MS    1000      /* a worker dying sooner than this backs off */
#define FAST_STOP_MS      5000      /* TERM/INT: children still alive then are killed */
#define PROBER_RETRY_MS   1000      /* a prober that died or could not fork: again then */
#define UPGRADE_WAIT_MS   30000     /* the new master of a USR2 must report within this */
#define MAX_WAIT_MS       60000     /* the longest poll of the main loop */

enum stop { RUNNING, STOP_GRACEFUL, STOP_FAST };

struct master {
    struct runtime *rt;
    char **pidpath;
    int sigfd;
    enum stop stop;
    int64_t stop_deadline;
    struct pool pool;       /* the workers' slots and the pool's state */
    struct {
        pid_t pid;          /* 0: none running */
        pid_t retiring;     /* one told to stop by a reload */
        int64_t respawn_at;
    } prober;
    struct {
        pid_t pid;          /* 0: none running (or no parking) */
        int64_t respawn_at;
    } park;
    struct {
        pid_t pid[CONFIG_MAX_KEY_PROCESSES];    /* 0: not running */
        int64_t started[CONFIG_MAX_KEY_PROCESSES];
        int n;              /* this configuration runs this many */
        int64_t respawn_at;
    } keys;
    struct {
        pid_t child;        /* the new master being started; 0: none */
        int pipe;           /* it reports on this */
        int status;         /* its wait status, if it died first; -1 */
        int64_t deadline;
    } upgrade;
    int64_t next_rotation;  /* a new ticket key then */
    bool handed_over;       /* to a new master (USR2): it speaks to systemd now */
};

static pid_t spawn(struct master *m, int id)
{
    pid_t master = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(m->sigfd);
        worker_run(m->rt, id, master);
    }
    if (pid < 0) {
        log_error("cannot fork worker %d: %s", id, strerror(errno));
        return 0;
    }
    m->pool.slots[id] = (struct slot){ .pid = pid, .started = clock_now_ms(),
                                  .respawn_at = INT64_MAX, .backoff = m->pool.slots[id].backoff };
    log_debug("worker %d started as pid %d", id, (int)pid);
    return pid;
}

static pid_t spawn_slot(void *ctx, int id)
{
    return spawn(ctx, id);
}

/* Starts the prober, or schedules another try. */
static void start_prober(struct master *m, int64_t now)
{
    m->prober.respawn_at = INT64_MAX;
    if ((m->prober.pid = health_start(m->rt)) < 0) {
        m->prober.pid = 0;
        m->prober.respawn_at = now + PROBER_RETRY_MS;
    }
}

static void signal_children(struct master *m, int sig)
{
    for (int i = 0; i < m->pool.nslots; i++)
        if (m->pool.slots[i].pid > 0)
            kill(m->pool.slots[i].pid, sig);
    if (m->prober.pid > 0)
        kill(m->prober.pid, sig == SIGQUIT ? SIGTERM : sig);
    if (m->park.pid > 0)
        kill(m->park.pid, sig);     /* QUIT: it hands everything back first */
    for (int i = 0; i < m->keys.n; i++)
        if (m->keys.pid[i] > 0)     /* QUIT: it signs for the handshakes still running */
            kill(m->keys.pid[i], sig);
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

static int live_key_processes(const struct master *m)
{
    int n = 0;
    for (int i = 0; i < m->keys.n; i++)
        n += m->keys.pid[i] > 0;
    return n;
}

static int live_children(const struct master *m)
{
    int n = (m->prober.pid > 0) + (m->park.pid > 0) + live_key_processes(m);
    for (int i = 0; i < m->pool.nslots; i++)
        n += m->pool.slots[i].pid > 0;
    return n;
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_OOM)
        snprintf(buf, len, "ran out of memory (exit status %d)", EXIT_OOM);
    else if (WIFEXITED(status))
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "was killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(buf, len, "ended with status 0x%x", status);
}

/* The back-off after a crash: doubling while workers die at start, none
 * once one lived past QUICK_DEATH_MS. */
/* Starts the key processes that are not running: 0, or -1 (with a log
 * line; another try is scheduled) if one could not start. */
static int start_keys(struct master *m, int64_t now)
{
    char err[CONFIG_ERR_MAX];
    m->keys.respawn_at = INT64_MAX;
    for (int i = 0; i < m->keys.n; i++) {
        if (m->keys.pid[i] > 0)
            continue;
        if ((m->keys.pid[i] = keys_start(m->rt, getpid(), m->sigfd, err, sizeof err)) < 0) {
            m->keys.pid[i] = 0;
            m->keys.respawn_at = now + PROBER_RETRY_MS;
            log_error("%s", err);
            return -1;
        }
        m->keys.started[i] = now;
    }
    return 0;
}

/* Key process i ended: handshakes waiting on it try another (or its
 * successor, started at once unless it died young). */
static void keys_ended(struct master *m, int i, int status)
{
    char how[128];
    pid_t pid = m->keys.pid[i];
    int64_t now = clock_now_ms();
    m->keys.pid[i] = 0;
    if (m->stop != RUNNING)
        return;
    bool recycled = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    bool young = now - m->keys.started[i] < QUICK_DEATH_MS;
    if (!recycled) {
        describe_exit(status, how, sizeof how);
        log_error("key process %d (pid %d) %s; starting another%s", i, (int)pid, how,
                  young ? " in 1 s" : "");
    }
    int64_t at = !recycled && young ? now + PROBER_RETRY_MS : now;
    if (at < m->keys.respawn_at)
        m->keys.respawn_at = at;
}

/* A reload's key processes, before it is committed: their start proves
 * the new keys. 0, or -1 with the reason (none of them is left running). */
static int start_next_keys(struct master *m, struct runtime *next, pid_t *pids, int n,
                           char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        if ((pids[i] = keys_start(next, getpid(), m->sigfd, err, errlen)) < 0) {
            while (i-- > 0) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
            }
            return -1;
        }
    return 0;
}

/* After a reload: the previous configuration's key processes serve the
 * handshakes still running, then go (keys.c); the new ones take over. */
static void retire_keys(struct master *m, const pid_t *next, int n)
{
    for (int i = 0; i < m->keys.n; i++)
        if (m->keys.pid[i] > 0)
            kill(m->keys.pid[i], SIGQUIT);
    m->keys.n = n;
    for (int i = 0; i < n; i++) {
        m->keys.pid[i] = next[i];
        m->keys.started[i] = clock_now_ms();
    }
}

static int next_backoff(const struct slot *s, int64_t now)
{
    if (now - s->started >= QUICK_DEATH_MS)
        return 0;
    int b = s->backoff ? s->backoff * 2 : RESPAWN_MIN_MS;
    return b > RESPAWN_MAX_MS ? RESPAWN_MAX_MS : b;
}

/* A worker that died while running: the pool refills itself, a fixed
 * worker is respawned; either way after a back-off if workers die fast. */
static void worker_crashed(struct master *m, int i, pid_t pid, const char *how, int64_t now)
{
    struct slot *s = &m->pool.slots[i];
    s->backoff = next_backoff(s, now);
    if (m->pool.dynamic && s->backoff)
        m->pool.hold_until = now + s->backoff;
    else if (!m->pool.dynamic)
        s->respawn_at = now + s->backoff;
    if (s->backoff >= RESPAWN_MAX_MS)
        log_error("worker %d (pid %d) %s; workers keep dying at start, %s every %d s", i,
                  (int)pid, how, m->pool.dynamic ? "starting new ones" : "respawning",
                  RESPAWN_MAX_MS / 1000);
    else
        log_warning("worker %d (pid %d) %s%s", i, (int)pid, how,
                    m->pool.dynamic ? "" : s->backoff ? "; respawning after a back-off"
                                                      : "; respawning");
}

static void worker_ended(struct master *m, int i, pid_t pid, int status)
{
    struct slot *s = &m->pool.slots[i];
    char how[128];
    describe_exit(status, how, sizeof how);
    s->pid = 0;
    struct stats_worker *w = stats_worker(m->rt->stats, (unsigned)i);
    if (w) {                    /* off the scoreboard; a count it held is given back */
        struct clients_ticket held = w->ticket;
        clients_release(m->rt->clients, &held);
        memset(&w->ticket, 0, sizeof w->ticket);
        stats_set_state(w, WS_NONE, NULL);
        w->pid = 0;
    }
    bool clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (s->old) {
        log_debug("worker %d (pid %d) of the previous configuration %s", i, (int)pid, how);
        s->old = false;
        s->respawn_at = INT64_MAX;
    } else if (m->stop != RUNNING || (clean && m->pool.dynamic)) {
        /* Stopping, or a spare or recycled worker of the pool: the pool
         * refills itself from the scoreboard. */
        log_debug("worker %d (pid %d) %s", i, (int)pid, how);
    } else if (clean) {
        /* workers.max_connections reached: replace it at once. */
        log_info("worker %d (pid %d) %s; replacing it", i, (int)pid, how);
        s->respawn_at = clock_now_ms();
    } else {
        worker_crashed(m, i, pid, how, clock_now_ms());
    }
}

static void prober_ended(struct master *m, pid_t pid, int status)
{
    char how[128];
    describe_exit(status, how, sizeof how);
    m->prober.pid = 0;
    if (m->stop != RUNNING)
        return;
    log_error("the health prober (pid %d) %s; restarting it in %d s (server states stay as "
              "they are meanwhile)", (int)pid, how, PROBER_RETRY_MS / 1000);
    m->prober.respawn_at = clock_now_ms() + PROBER_RETRY_MS;
}

/* Starts the park process (if idle connections are parked), or schedules
 * another try. */
static void start_park(struct master *m, int64_t now)
{
    m->park.respawn_at = INT64_MAX;
    if (m->rt->park_fd[0] < 0)
        return;
    if ((m->park.pid = park_start(m->rt, getpid())) < 0) {
        m->park.pid = 0;
        m->park.respawn_at = now + PROBER_RETRY_MS;
    }
}

/* The park process ended: what it held is closed, and the counts go back. */
static void park_ended(struct master *m, pid_t pid, int status)
{
    char how[128];
    describe_exit(status, how, sizeof how);
    m->park.pid = 0;
    park_release_all(m->rt);
    stats_set_parked(m->rt->stats, 0);
    if (m->stop != RUNNING)
        return;
    log_error("the park process (pid %d) %s; the idle connections it held are closed; "
              "restarting it in %d s", (int)pid, how, PROBER_RETRY_MS / 1000);
    m->park.respawn_at = clock_now_ms() + PROBER_RETRY_MS;
}

static bool key_process_ended(struct master *m, pid_t pid, int status)
{
    for (int i = 0; i < m->keys.n; i++)
        if (m->keys.pid[i] == pid) {
            keys_ended(m, i, status);
            return true;
        }
    return false;
}

static void reap(struct master *m)
{
    int status;
    pid_t pid;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (pid == m->upgrade.child) {
            m->upgrade.status = status;
        } else if (pid == m->prober.retiring) {
            m->prober.retiring = 0;
        } else if (pid == m->prober.pid) {
            prober_ended(m, pid, status);
        } else if (pid == m->park.pid) {
            park_ended(m, pid, status);
        } else if (!key_process_ended(m, pid, status)) {
            for (int i = 0; i < m->pool.nslots; i++)
                if (m->pool.slots[i].pid == pid) {
                    worker_ended(m, i, pid, status);
                    break;
                }
        }
    }
}

/* In the child forked for a USR2: becomes the new master. */
static void exec_new_master(struct master *m, int ready_fd) __attribute__((noreturn));
static void exec_new_master(struct master *m, int ready_fd)
{
    const struct runtime *rt = m->rt;
    int *fds = xcalloc(rt->nlisteners, sizeof *fds);
    sigset_t none;
    close(m->sigfd);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (size_t i = 0; i < rt->nlisteners; i++)
        fds[i] = rt->listeners[i].fd;
    upgrade_exec(rt->shm.fd, fds, rt->nlisteners, ready_fd);
    _exit(127);
}

/* An upgrade that failed: said in the log, to systemd (this master
 * serves on) and to tlsoffd -s upgrade. */
static void upgrade_failed(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void upgrade_failed(const char *fmt, ...)
{
    char why[REPORT_TEXT_MAX], status[REPORT_TEXT_MAX + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    log_error("upgrade failed: %s; this master (pid %d) keeps serving", why, (int)getpid());
    snprintf(status, sizeof status, "serving (pid %d); upgrade failed: %s", (int)getpid(), why);
    notify_status(status);
    report_upgrade_done(false, 0, why);
}

/*
 * USR2: starts the binary again (it may have been replaced on disk) as a
 * new master that inherits the listening sockets and the shared segment.
 * This master serves on until the new one says it runs, then drains.
 */
static void start_upgrade(struct master *m)
{
    int p[2];
    report_upgrade_begin();     /* one under way reports for this USR2 too */
    if (m->upgrade.child) {
        log_warning("SIGUSR2: an upgrade is already under way (pid %d)", (int)m->upgrade.child);
        return;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        upgrade_failed("pipe: %s", strerror(errno));
        return;
    }
    pidfile_rename(m->pidpath, true);
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        exec_new_master(m, p[1]);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        pidfile_rename(m->pidpath, false);
        upgrade_failed("cannot fork: %s", strerror(errno));
        return;
    }
    m->upgrade.child = pid;
    m->upgrade.deadline = clock_now_ms() + UPGRADE_WAIT_MS;
    m->upgrade.pipe = p[0];
    m->upgrade.status = -1;
    log_notice("SIGUSR2: starting a new master (pid %d); serving on until it runs", (int)pid);
    char status[64];
    snprintf(status, sizeof status, "upgrading: starting a new master (pid %d)", (int)pid);
    notify_status(status);
}

/* The new master reported (or died). Returns true if it runs. */
static bool finish_upgrade(struct master *m)
{
    char c = 0;
    ssize_t n;
    m->upgrade.deadline = INT64_MAX;
    while ((n = read(m->upgrade.pipe, &c, 1)) < 0 && errno == EINTR)
        ;
    close(m->upgrade.pipe);
    m->upgrade.pipe = -1;
    pid_t child = m->upgrade.child;
    m->upgrade.child = 0;
    if (n == 1 && c == '1') {
        log_notice("upgrade: the new master (pid %d) runs; this one stops accepting and "
                   "drains its workers", (int)child);
        m->handed_over = true;      /* no word to systemd any more: not even STOPPING */
        report_upgrade_done(true, child, NULL);
        report_set_state(REPORT_HANDED_OVER);
        return true;
    }
    int status = m->upgrade.status;
    if (status < 0 && waitpid(child, &status, 0) < 0)
        status = 0;
    char how[128];
    describe_exit(status, how, sizeof how);
    pidfile_rename(m->pidpath, false);
    upgrade_failed("the new master (pid %d) %s (its messages are in the log)", (int)child,
                   how);
    return false;
}

/* Stopping: children get sig, and must be gone within ms. */
static void begin_stop(struct master *m, enum stop how, int64_t ms, int sig)
{
    m->stop = how;
    m->stop_deadline = clock_now_ms() + ms;
    signal_children(m, sig);
}

/* The new master runs: the sockets are its too, so no shutdown(); this
 * master just stops accepting and lets its workers finish. */
static void hand_over(struct master *m)
{
    struct runtime *rt = m->rt;
    begin_stop(m, STOP_GRACEFUL, (int64_t)(rt->cfg->timeouts.shutdown * 1000), SIGQUIT);
    for (size_t i = 0; i < rt->nlisteners; i++)
        close(rt->listeners[i].fd);
    rt->nlisteners = 0;
}

/* The next ticket key rotation, if keys are generated (not from files). */
static void schedule_rotation(struct master *m)
{
    const struct tls_conf *tls = &m->rt->cfg->tls;
    if (!m->rt->keys || tls->tickets.nkey_files)
        m->next_rotation = INT64_MAX;
    else if (m->next_rotation == INT64_MAX)
        m->next_rotation = clock_now_ms() + (int64_t)(tls->tickets.rotate * 1000);
}

static void rotate_ticket_key(struct master *m)
{
    runtime_rotate_ticket_key(m->rt);
    m->next_rotation = INT64_MAX;
    schedule_rotation(m);
    log_info("ticket key rotated (generation %llu)",
             (unsigned long long)ticketkeys_generation(m->rt->keys));
}

/* Starts the workers of the configuration in free slots; returns how many. */
static int start_generation(struct master *m)
{
    const struct config *cfg = m->rt->cfg;
    m->pool.dynamic = cfg->workers.count == 0;
    m->pool.spawn_rate = 1;
    int want = m->pool.dynamic ? cfg->workers.min_spare : cfg->workers.count, n = 0;
    for (int i = 0; i < m->pool.nslots && n < want; i++) {
        if (!pool_slot_free(&m->pool, i))
            continue;
        if (!spawn(m, i))
            m->pool.slots[i].respawn_at = clock_now_ms() + RESPAWN_MIN_MS;
        n++;
    }
    return n;
}

/* A reload: the running workers and prober finish and go. Returns how
 * many workers drain. */
static int retire_generation(struct master *m)
{
    int old = 0;
    for (int i = 0; i < m->pool.nslots; i++)
        if (m->pool.slots[i].pid > 0 && !m->pool.slots[i].old) {
            m->pool.slots[i].old = true;
            kill(m->pool.slots[i].pid, SIGQUIT);
            old++;
        } else if (m->pool.slots[i].pid == 0) {
            m->pool.slots[i].respawn_at = INT64_MAX;
        }
    if (m->prober.pid > 0) {
        m->prober.retiring = m->prober.pid;
        kill(m->prober.pid, SIGTERM);
        m->prober.pid = 0;
    }
    return old;
}

static void reopen_configured_log(const struct config *cfg)
{
    char err[CONFIG_ERR_MAX];
    if (log_open(cfg->log.destination, cfg->log.facility, cfg->log.level, cfg->log.access_log,
                 err, sizeof err) < 0)
        log_error("SIGHUP: %s; logging as before", err);
    else if (cfg->uid != (uid_t)-1)
        log_chown(cfg->uid, cfg->gid);
}

/*
 * SIGHUP: read the configuration and certificates again. If anything is
 * wrong, say so and keep serving as before. Otherwise start workers with
 * the new configuration and let the old ones finish their connection and
 * exit; listening sockets that stay are kept (no connection is refused),
 * new ones are opened and removed ones closed; sessions, ticket keys,
 * counters and the state of servers that remain carry over.
 */
static bool reload(struct master *m, char *err, size_t errlen)
{
    alloc_fail_next_if(getenv(ALLOC_FAIL_ENV));
    struct runtime *next = runtime_reload(m->rt, err, errlen);
    if (!next) {
        log_error("SIGHUP: reload failed, still serving with the previous configuration: %s",
                  err);
        return false;
    }
    pid_t keys[CONFIG_MAX_KEY_PROCESSES];
    int nkeys = keys_processes(next->cfg);
    if (start_next_keys(m, next, keys, nkeys, err, errlen) < 0) {
        log_error("SIGHUP: reload failed, still serving with the previous configuration: %s",
                  err);
        runtime_release(next, m->rt);
        free(next);
        return false;
    }
    retire_keys(m, keys, nkeys);
    int old = retire_generation(m);
    reopen_configured_log(next->cfg);
    struct runtime prev = *m->rt;
    *m->rt = *next;
    free(next);
    runtime_release(&prev, m->rt);
    runtime_size_pool(m->rt, NULL);
    schedule_rotation(m);
    int started = start_generation(m);
    start_prober(m, clock_now_ms());
    log_notice("SIGHUP: configuration reloaded from %s: %d new workers, %zu listeners; %d "
               "workers of the previous configuration finish their connections",
               m->rt->cfg->path, started, m->rt->nlisteners, old);
    return true;
}

/* A reload as systemd and tlsoffd -s reload see it: RELOADING=1 first,
 * READY=1 after whatever the outcome (a failed reload leaves the previous
 * configuration serving), then the outcome on the report page. */
static void reload_and_tell(struct master *m)
{
    char err[CONFIG_ERR_MAX] = "", status[CONFIG_ERR_MAX + 64];
    report_reload_begin();
    notify_reloading();
    bool ok = reload(m, err, sizeof err);
    if (ok)
        snprintf(status, sizeof status, "serving: configuration reloaded from %s",
                 m->rt->cfg->path);
    else
        snprintf(status, sizeof status, "reload failed: %s", err);
    notify_ready(status);
    report_reload_done(ok, err);
}

static void reopen_logs(struct master *m)
{
    char err[256];
    const struct config *cfg = m->rt->cfg;
    if (log_reopen(err, sizeof err) < 0)
        log_error("SIGUSR1: %s", err);
    else
        log_notice("SIGUSR1: log files reopened");
    /* New files are the master's: hand them to the workers' user before
     * the workers reopen them. */
    if (cfg->uid != (uid_t)-1)
        log_chown(cfg->uid, cfg->gid);
    signal_children(m, SIGUSR1);
}

/* A stop begins: systemd hears STOPPING=1, unless a new master took over. */
static void tell_stopping(const struct master *m, const char *status)
{
    report_set_state(m->handed_over ? REPORT_HANDED_OVER : REPORT_STOPPING);
    if (!m->handed_over)
        notify_stopping(status);
}

static void on_signal(struct master *m, int sig)
{
    const struct config *cfg = m->rt->cfg;
    switch (sig) {
    case SIGCHLD:
        break;
    case SIGTERM:
    case SIGINT:
        if (m->stop != STOP_FAST) {
            log_notice("%s: fast stop", strsignal(sig));
            tell_stopping(m, "stopping (fast)");
            begin_stop(m, STOP_FAST, FAST_STOP_MS, SIGTERM);
        }
        break;
    case SIGQUIT:
        if (m->stop == RUNNING) {
            log_notice("SIGQUIT: graceful stop; waiting up to %gs for %d workers to finish "
                       "their connections", cfg->timeouts.shutdown, live_children(m));
            tell_stopping(m, "stopping: workers finish their connections");
            begin_stop(m, STOP_GRACEFUL, (int64_t)(cfg->timeouts.shutdown * 1000), SIGQUIT);
            stop_listening(m->rt);
        }
        break;
    case SIGUSR1:
        reopen_logs(m);
        break;
    case SIGHUP:
        if (m->stop == RUNNING)
            reload_and_tell(m);
        break;
    case SIGUSR2:
        if (m->stop == RUNNING)
            start_upgrade(m);
        break;
    }
    reap(m);
}

/* How long the main loop may sleep: until the next thing it must do. */
static int next_timeout(const struct master *m)
{
    int64_t now = clock_now_ms(), when = m->next_rotation;
    if (m->stop != RUNNING) {
        when = m->stop_deadline;
    } else {
        if (m->prober.respawn_at < when)
            when = m->prober.respawn_at;
        if (m->park.respawn_at < when)
            when = m->park.respawn_at;
        if (m->keys.respawn_at < when)
            when = m->keys.respawn_at;
        if ((m->pool.dynamic || m->rt->cfg->limits.shed == SHED_IDLE) &&
            now + POOL_TICK_MS < when)
            when = now + POOL_TICK_MS;
        for (int i = 0; i < m->pool.nslots; i++)
            if (m->pool.slots[i].pid == 0 && m->pool.slots[i].respawn_at < when)
                when = m->pool.slots[i].respawn_at;
    }
    if (m->upgrade.child && m->upgrade.deadline < when)
        when = m->upgrade.deadline;
    if (when == INT64_MAX)
        return -1;
    return when <= now ? 0 : (int)(when - now > MAX_WAIT_MS ? MAX_WAIT_MS : when - now);
}

/* Sleeps until a signal, the upgrade pipe or the next timer, and handles
 * what came. */
static void wait_and_handle(struct master *m)
{
    struct pollfd pf[2] = { { .fd = m->sigfd, .events = POLLIN },
                            { .fd = m->upgrade.pipe, .events = POLLIN } };
    int rc = poll(pf, m->upgrade.pipe >= 0 ? 2 : 1, next_timeout(m));
    if (m->upgrade.pipe >= 0 && clock_now_ms() >= m->upgrade.deadline) {
        log_error("upgrade: the new master (pid %d) did not report within %d s; killing it",
                  (int)m->upgrade.child, UPGRADE_WAIT_MS / 1000);
        kill(m->upgrade.child, SIGKILL);
        m->upgrade.deadline = INT64_MAX;
    }
    if (rc > 0 && m->upgrade.pipe >= 0 && pf[1].revents && finish_upgrade(m) &&
        m->stop == RUNNING)
        hand_over(m);
    if (rc > 0 && pf[0].revents) {
        struct signalfd_siginfo si;
        while (read(m->sigfd, &si, sizeof si) == (ssize_t)sizeof si)
            on_signal(m, (int)si.ssi_signo);
    }
}

/* Stopping: true once every child is gone, or killed at the deadline. The
 * key processes go last, when nobody is left to need a signature. */
static bool drained(struct master *m)
{
    int keys = live_key_processes(m);
    if (live_children(m) == 0)
        return true;
    if (live_children(m) == keys) {
        for (int i = 0; i < m->keys.n; i++)
            if (m->keys.pid[i] > 0)
                kill(m->keys.pid[i], SIGTERM);
        return false;
    }
    if (clock_now_ms() < m->stop_deadline)
        return false;
    log_warning("%d workers still busy after the %s; killing them",
                live_children(m) - live_key_processes(m),
                m->stop == STOP_GRACEFUL ? "shutdown timeout" : "fast stop");
    signal_children(m, SIGKILL);
    for (int i = 0; i < m->pool.nslots; i++)
        if (m->pool.slots[i].pid > 0)
            waitpid(m->pool.slots[i].pid, NULL, 0);
    if (m->prober.pid > 0)
        waitpid(m->prober.pid, NULL, 0);
    if (m->park.pid > 0)
        waitpid(m->park.pid, NULL, 0);
    for (int i = 0; i < m->keys.n; i++)
        if (m->keys.pid[i] > 0)
            waitpid(m->keys.pid[i], NULL, 0);
    return true;
}

/* Running: the timers (prober, ticket key, respawns, the pool). */
static void tick(struct master *m)
{
    int64_t now = clock_now_ms();
    if (now >= m->prober.respawn_at)
        start_prober(m, now);
    if (now >= m->park.respawn_at)
        start_park(m, now);
    if (now >= m->keys.respawn_at)
        start_keys(m, now);
    if (now >= m->next_rotation)
        rotate_ticket_key(m);
    for (int i = 0; i < m->pool.nslots; i++)
        if (m->pool.slots[i].pid == 0 && m->pool.slots[i].respawn_at <= now && !spawn(m, i))
            m->pool.slots[i].respawn_at = now + RESPAWN_MAX_MS;
    pool_tick(&m->pool, now);
}

static int open_signals(struct master *m)
{
    static const int sigs[] = { SIGCHLD, SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGUSR1, SIGUSR2 };
    sigset_t set;
    sigemptyset(&set);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaddset(&set, sigs[i]);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    if ((m->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK)) < 0) {
        log_error("signalfd: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static void announce(const struct master *m, int started, int ready_fd)
{
    const struct runtime *rt = m->rt;
    const struct config *cfg = rt->cfg;
    if (m->pool.dynamic)
        log_notice("tlsoffd %s running: %d workers (pool: %d..%d spare, at most %d), %zu "
                   "listeners, %s", TLSOFFD_VERSION, started, cfg->workers.min_spare,
                   cfg->workers.max_spare, rt->pool_max, rt->nlisteners,
                   tls_library_version());
    else
        log_notice("tlsoffd %s running: %d workers, %zu listeners, %s", TLSOFFD_VERSION,
                   started, rt->nlisteners, tls_library_version());
    log_info("%s from %s; crypto acceleration: %s", tls_library_version(), tls_library_path(),
             tls_acceleration());
    if (rt->park_fd[0] >= 0)
        log_info("idle connections are parked after %g s (workers.park_after)",
                 cfg->workers.park_after);
    else if (cfg->workers.park_after > 0)
        log_info("idle connections stay in their workers: this wolfSSL cannot export a "
                 "connection (the default build's does: this one is WOLFSSL=system)");
    char status[128];
    snprintf(status, sizeof status, "serving: %d workers, %zu listeners", started,
             rt->nlisteners);
    notify_serving(status);
    if (ready_fd >= 0) {
        ssize_t w = write(ready_fd, "1", 1);
        (void)w;
        close(ready_fd);
    }
}

int master_run(struct runtime *rt, int ready_fd, char **pidpath)
{
    struct master m = { .rt = rt, .pidpath = pidpath, .sigfd = -1,
                        .pool.nslots = CONFIG_MAX_WORKERS,  /* the scoreboard's size */
                        .prober.respawn_at = INT64_MAX, .park.respawn_at = INT64_MAX,
                        .keys.respawn_at = INT64_MAX,
                        .upgrade.pipe = -1,
                        .upgrade.deadline = INT64_MAX, .next_rotation = INT64_MAX };
    log_set_role("master");
    if (open_signals(&m) < 0)
        return EXIT_FAIL;
    report_open();
    m.pool.rt = rt;
    m.pool.spawn = spawn_slot;
    m.pool.ctx = &m;
    m.pool.slots = xcalloc((size_t)m.pool.nslots, sizeof *m.pool.slots);
    for (int i = 0; i < m.pool.nslots; i++)
        m.pool.slots[i].respawn_at = INT64_MAX;
    pool_note_foreign(&m.pool);
    schedule_rotation(&m);
    m.keys.n = keys_processes(rt->cfg);
    if (start_keys(&m, clock_now_ms()) < 0) {
        signal_children(&m, SIGTERM);
        free(m.pool.slots);
        close(m.sigfd);
        return EXIT_FAIL;
    }
    int started = start_generation(&m);
    start_prober(&m, clock_now_ms());
    start_park(&m, clock_now_ms());
    announce(&m, started, ready_fd);
    for (;;) {
        wait_and_handle(&m);
        if (m.stop != RUNNING) {
            if (drained(&m))
                break;
        } else {
            tick(&m);
        }
    }
    log_notice("stopped");
    free(m.pool.slots);
    close(m.sigfd);
    return EXIT_OK;
}
