/*
 * capacity — how many workers the machine allows; see capacity.h.
 */
#include "capacity.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "log.h"

#define TASK_HEADROOM   256     /* pids and threads left for the rest of the system */
#define FDS_PER_WORKER  8       /* besides the listeners: client, backend, logs, segment */

/* The first number in a file; -1 if unreadable, LONG_MAX for "max". */
static long read_long(const char *path)
{
    FILE *f = fopen(path, "re");
    char buf[64] = "";
    if (!f)
        return -1;
    if (!fgets(buf, sizeof buf, f))
        buf[0] = '\0';
    fclose(f);
    if (strncmp(buf, "max", 3) == 0)
        return LONG_MAX;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    return end == buf || errno ? -1 : v;
}

/* Tasks (threads) on the system now: the 4th field of /proc/loadavg, "1/345". */
static long tasks_now(void)
{
    FILE *f = fopen("/proc/loadavg", "re");
    long running = 0, total = -1;
    if (f) {
        if (fscanf(f, "%*s %*s %*s %ld/%ld", &running, &total) != 2)
            total = -1;
        fclose(f);
    }
    return total;
}

/* This process's cgroup (v2) directory, or "" if unknown. */
static void cgroup_dir(char *buf, size_t len)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    char line[256];
    buf[0] = '\0';
    if (!f)
        return;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(buf, len, "/sys/fs/cgroup%s", line + 3);
        }
    fclose(f);
}

__attribute__((format(printf, 4, 5)))
static void bound(struct capacity *c, const char *what, long allows, const char *fmt, ...)
{
    va_list ap;
    if (c->n >= CAPACITY_MAX_BOUNDS)
        return;
    struct capacity_bound *b = &c->b[c->n];
    b->what = what;
    b->allows = allows < 0 ? 0 : allows;
    va_start(ap, fmt);
    vsnprintf(b->detail, sizeof b->detail, fmt, ap);
    va_end(ap);
    if (c->n == 0 || b->allows < c->b[c->binding].allows)
        c->binding = c->n;
    c->n++;
}

static void probe_tasks(struct capacity *c)
{
    long tasks = tasks_now(), pid_max = read_long("/proc/sys/kernel/pid_max");
    long threads = read_long("/proc/sys/kernel/threads-max");
    if (tasks < 0)
        return;
    if (pid_max > 0)
        bound(c, "kernel.pid_max", pid_max - tasks - TASK_HEADROOM,
              "%ld, with %ld tasks running; raise it: sysctl kernel.pid_max=4194304", pid_max,
              tasks);
    if (threads > 0)
        bound(c, "kernel.threads-max", threads - tasks - TASK_HEADROOM,
              "%ld, with %ld tasks running; raise it: sysctl kernel.threads-max=...", threads,
              tasks);
}

static void probe_cgroup(struct capacity *c, long *mem_kib)
{
    char dir[300], path[340];
    cgroup_dir(dir, sizeof dir);
    if (!dir[0])
        return;
    snprintf(path, sizeof path, "%s/pids.max", dir);
    long max = read_long(path);
    snprintf(path, sizeof path, "%s/pids.current", dir);
    long cur = read_long(path);
    if (max > 0 && max != LONG_MAX && cur >= 0)
        bound(c, "the cgroup's pids.max", max - cur,
              "%ld, %ld used, in %s; under systemd: TasksMax=infinity", max, cur, dir);
    snprintf(path, sizeof path, "%s/memory.max", dir);
    max = read_long(path);
    snprintf(path, sizeof path, "%s/memory.current", dir);
    cur = read_long(path);
    if (max > 0 && max != LONG_MAX && cur >= 0 && (max - cur) / 1024 < *mem_kib)
        *mem_kib = (max - cur) / 1024;
}

/* MemAvailable, in KiB; -1 if unknown. */
static long mem_available_kib(void)
{
    FILE *f = fopen("/proc/meminfo", "re");
    char line[128];
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void probe_files(struct capacity *c, size_t nlisteners)
{
    struct rlimit rl;
    long need = (long)nlisteners + FDS_PER_WORKER;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        (long)rl.rlim_cur < need)
        bound(c, "RLIMIT_NOFILE", 0, "%ld, but each worker needs %ld; ulimit -n, or LimitNOFILE=",
              (long)rl.rlim_cur, need);
    FILE *f = fopen("/proc/sys/fs/file-nr", "re");
    long used = 0, unused = 0, max = 0;
    if (f) {
        if (fscanf(f, "%ld %ld %ld", &used, &unused, &max) == 3 && max > 0)
            bound(c, "fs.file-max", (max - used) / 2,
                  "%ld, %ld open, two a connection; raise it: sysctl fs.file-max=...", max, used);
        fclose(f);
    }
    if (geteuid() != 0 && getrlimit(RLIMIT_NPROC, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        bound(c, "RLIMIT_NPROC", (long)rl.rlim_cur - 16,
              "%ld for this user, all its processes counted; ulimit -u, or LimitNPROC=",
              (long)rl.rlim_cur);
}

void capacity_probe(struct capacity *c, size_t nlisteners)
{
    memset(c, 0, sizeof *c);
    long mem = mem_available_kib();
    probe_tasks(c);
    probe_cgroup(c, &mem);
    probe_files(c, nlisteners);
    if (mem > 0)
        bound(c, "memory", mem / CAPACITY_CONN_KIB,
              "%ld MiB available, at about %d KiB a worker", mem / 1024,
              CAPACITY_CONN_KIB);
}

int capacity_pool_max(const struct capacity *c, const struct config *cfg)
{
    if (cfg->workers.count)
        return cfg->workers.count;
    if (cfg->workers.max != CONFIG_WORKERS_AUTO)
        return cfg->workers.max;
    long max = CONFIG_MAX_WORKERS;
    for (int i = 0; i < c->n; i++) {
        /* memory: half of what is available, the rest for the system */
        long allows = strcmp(c->b[i].what, "memory") == 0 ? c->b[i].allows / 2 : c->b[i].allows;
        if (allows < max)
            max = allows;
    }
    return max < cfg->workers.max_spare ? cfg->workers.max_spare : (int)max;
}

bool capacity_check(const struct capacity *c, const struct config *cfg, FILE *f)
{
    int want = capacity_pool_max(c, cfg);
    const struct capacity_bound *b = &c->b[c->binding];
    const char *key = cfg->workers.count ? "workers.count" : "workers.max";
    if (f && c->n)
        fprintf(f, "tlsoffd: pool: at most %d workers (%s%s); the machine allows about %ld: "
                "%s binds: %s\n", want, key,
                !cfg->workers.count && cfg->workers.max == CONFIG_WORKERS_AUTO ? " = auto" : "",
                b->allows, b->what, b->detail);
    if (c->n == 0 || want <= b->allows)
        return true;
    if (f)
        fprintf(f, "tlsoffd: warning: %s is %d, but %s allows about %ld workers: %s\n", key,
                want, b->what, b->allows, b->detail);
    else
        log_warning("%s is %d, but %s allows about %ld workers: %s", key, want, b->what,
                    b->allows, b->detail);
    return false;
}
