/*
 * main — the command line: start the daemon, test a configuration,
 * print versions.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libconfig.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "tlsoffd.h"
#include "listen.h"
#include "log.h"

#define DEFAULT_CONFIG TLSOFFD_SYSCONFDIR "/tlsoffd/tlsoffd.conf"

/* Exit statuses (documented in tlsoffd(8)). */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tlsoffd [-ftvh] [-c file]\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "  -f, --foreground    do not daemonize\n"
            "  -t, --test          check the configuration and certificates, then exit\n"
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
    printf("tlsoffd %s\n%s\nlibconfig %d.%d.%d\nallocator: %s\n", TLSOFFD_VERSION,
           tls_library_version(), LIBCONFIG_VER_MAJOR, LIBCONFIG_VER_MINOR,
           LIBCONFIG_VER_REVISION, allocator());
}

int runtime_load_tls(struct runtime *rt, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    rt->ctx = calloc(cfg->nfrontends, sizeof *rt->ctx);
    for (size_t i = 0; i < cfg->nfrontends; i++)
        if (!(rt->ctx[i] = tls_server_ctx_new(&cfg->tls, &cfg->frontends[i], err, errlen)))
            return -1;
    return 0;
}

int runtime_bind(struct runtime *rt, char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    size_t n = 0;
    for (size_t i = 0; i < cfg->nfrontends; i++)
        n += cfg->frontends[i].nlisten;
    rt->listeners = calloc(n, sizeof *rt->listeners);
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct frontend_conf *fe = &cfg->frontends[i];
        for (size_t j = 0; j < fe->nlisten; j++) {
            char why[256];
            int fd = listen_open(&fe->listen[j].addr, why, sizeof why);
            if (fd < 0) {
                snprintf(err, errlen, "%s: frontend '%s': %s", fe->where, fe->name, why);
                return -1;
            }
            rt->listeners[rt->nlisteners++] = (struct listener){ fd, i };
        }
    }
    /* One listener: workers wait in a blocking accept(2) (see worker.c). */
    if (rt->nlisteners == 1) {
        int fl = fcntl(rt->listeners[0].fd, F_GETFL);
        fcntl(rt->listeners[0].fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    if (rt->nlisteners > 1 && !(rt->accept_lock = worker_accept_lock_create())) {
        snprintf(err, errlen, "cannot create the accept lock: %s", strerror(errno));
        return -1;
    }
    return 0;
}

void runtime_free(struct runtime *rt)
{
    for (size_t i = 0; rt->ctx && i < rt->cfg->nfrontends; i++)
        tls_ctx_free(rt->ctx[i]);
    for (size_t i = 0; i < rt->nlisteners; i++)
        close(rt->listeners[i].fd);
    free(rt->ctx);
    free(rt->listeners);
    config_free(rt->cfg);
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

static void pidfile_write(int fd)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
        log_warning("cannot write the pidfile: %s", strerror(errno));
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
        { NULL, 0, NULL, 0 },
    };
    const char *path = DEFAULT_CONFIG;
    bool foreground = false, test = false;
    char err[CONFIG_ERR_MAX];
    int c;

    while ((c = getopt_long(argc, argv, "c:ftvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
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
    struct runtime rt = { 0 };
    if (!(rt.cfg = config_load(path, err, sizeof err))) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        return EXIT_FAIL;
    }
    tls_global_init();
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
    if (runtime_bind(&rt, err, sizeof err) < 0)
        goto fail;
    if (log_open(cfg->log.destination, cfg->log.facility, cfg->log.level, cfg->log.access_log,
                 err, sizeof err) < 0)
        goto fail;
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
        pidfile_write(pidfd);
    log_info("allocator: %s", allocator());

    int status = master_run(&rt, ready_fd);
    if (pidfd >= 0) {
        unlink(cfg->pidfile);
        close(pidfd);
    }
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
