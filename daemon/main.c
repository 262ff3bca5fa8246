/*
 * main — the command line: start the daemon, test a configuration, send a
 * command to the running one, write a ticket key, print versions.
 *
 * Peers: runtime (what the start builds), master (what runs then), ctl
 * (-s), upgrade (the hand-over a USR2 started us with, the pidfile), child
 * (the start-up check of what the children's confinement needs).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libconfig.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "alloc.h"
#include "child.h"
#include "ctl.h"
#include "keys.h"
#include "exit.h"
#include "log.h"
#include "master.h"
#include "runtime.h"
#include "ticketkeys.h"
#include "upgrade.h"

#define DEFAULT_CONFIG TLSOFFD_SYSCONFDIR "/tlsoffd/tlsoffd.conf"

struct options {
    const char *config;
    const char *send;       /* -s COMMAND */
    bool foreground, test;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: tlsoffd [-ftvh] [-c file] [-s command]\n"
            "       tlsoffd --gen-ticket-key file\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ")\n"
            "  -f, --foreground    do not daemonize\n"
            "  -t, --test          check the configuration and certificates, then exit\n"
            "  -s, --send CMD      to the running instance: stats (print its counters),\n"
            "                      stop, quit, reopen (send TERM, QUIT, USR1), reload,\n"
            "                      upgrade (send HUP, USR2 and wait for the outcome),\n"
            "                      or a signal name\n"
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
    printf("tlsoffd %s\n%s (%s)\ncrypto acceleration: %s\nprotocol fixes: %s\n"
           "libconfig %d.%d.%d\nallocator: %s\nparking idle connections: %s\n", TLSOFFD_VERSION,
           tls_library_version(), tls_library_linkage(), tls_acceleration(), tls_conformance(),
           LIBCONFIG_VER_MAJOR,
           LIBCONFIG_VER_MINOR, LIBCONFIG_VER_REVISION, allocator(),
           tls_park_supported() ? "yes" : "no (this wolfSSL cannot export a connection; "
                                          "the default build, WOLFSSL=fast, links one that can)");
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

/* The master's policy outside a reload (runtime_reload has its own): a
 * failed allocation ends it with status 1 and a line in the log. */
static void start_out_of_memory(size_t size, const char *file, int line)
{
    log_error("out of memory: %zu bytes at %s:%d; exiting", size, file, line);
    exit(EXIT_FAIL);
}

/* A daemon that logs elsewhere keeps no terminal on standard error. */
static void detach_stderr(void)
{
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
        dup2(null, 2);
        close(null);
    }
}

/* Everything before the master runs: the pidfile, the sockets, the log,
 * the checks, the background. 0, or -1 with the reason in err. */
static int prepare(struct runtime *rt, bool daemon, bool inherited, int *pidfd, int *ready_fd,
                   char *err, size_t errlen)
{
    const struct config *cfg = rt->cfg;
    if (cfg->pidfile[0] && (*pidfd = pidfile_open(cfg->pidfile, err, errlen)) < 0)
        return -1;
    if (runtime_bind(rt, NULL, err, errlen) < 0 ||
        log_open(cfg->log.destination, cfg->log.facility, cfg->log.level, cfg->log.access_log,
                 err, errlen) < 0 ||
        child_check_identity(cfg, err, errlen) < 0)
        return -1;
    if (cfg->uid != (uid_t)-1)
        log_chown(cfg->uid, cfg->gid);
    runtime_raise_nofile(rt);
    runtime_size_pool(rt, NULL);
    if (inherited)
        *ready_fd = upgrade_finish_inherit();   /* the old master waits for our word */
    if (daemon && daemonize(ready_fd) < 0) {
        snprintf(err, errlen, "cannot daemonize: %s", strerror(errno));
        return -1;
    }
    if (daemon && strcmp(cfg->log.destination, "stderr") != 0)
        detach_stderr();
    if (*pidfd >= 0)
        *pidfd = pidfile_write(*pidfd, cfg->pidfile);
    return 0;
}

/* Starts the daemon from a loaded runtime; returns the exit status. */
static int start(struct runtime *rt, const struct options *o, bool inherited)
{
    char err[CONFIG_ERR_MAX];
    int pidfd = -1, ready_fd = -1;
    bool daemon = rt->cfg->daemon && !o->foreground && !inherited;
    if (prepare(rt, daemon, inherited, &pidfd, &ready_fd, err, sizeof err) < 0) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        if (!log_to_stderr())
            log_error("%s", err);
        runtime_free(rt);
        return EXIT_FAIL;
    }
    log_info("allocator: %s", allocator());
    char *pidpath = xstrdup(rt->cfg->pidfile);     /* a reload replaces cfg */
    int status = master_run(rt, ready_fd, &pidpath);
    if (pidfd >= 0) {
        unlink(pidpath);
        close(pidfd);
    }
    free(pidpath);
    runtime_free(rt);
    tls_global_cleanup();
    log_close();
    return status;
}

/* Loads the configuration and what it names; -t stops there. */
static int run(const struct options *o)
{
    char err[CONFIG_ERR_MAX];
    bool inherited = !o->test && !o->send && upgrade_inherit();
    struct runtime rt = { .shm.fd = -1, .ushm.fd = -1, .park_fd = { -1, -1 },
                          .key_fd = { -1, -1 } };
    log_init_stderr("tlsoffd");
    if (!(rt.cfg = config_load(o->config, err, sizeof err))) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        return EXIT_FAIL;
    }
    if (o->send) {
        int rc = ctl_send(rt.cfg, o->send);
        runtime_free(&rt);
        return rc;
    }
    tls_global_init();
    if ((o->test ? runtime_check_key_files(rt.cfg, err, sizeof err)
                 : runtime_shared(&rt, NULL, err, sizeof err)) < 0 ||
        runtime_load_tls(&rt, err, sizeof err) < 0 || keys_check(rt.cfg, err, sizeof err) < 0) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        runtime_free(&rt);
        return EXIT_FAIL;
    }
    if (!o->test)
        return start(&rt, o, inherited);
    runtime_size_pool(&rt, stderr);
    fprintf(stderr, "tlsoffd: configuration file %s is valid\n", o->config);
    runtime_free(&rt);
    return EXIT_OK;
}

static int gen_ticket_key(const char *path)
{
    char err[CONFIG_ERR_MAX];
    if (ticketkeys_write_file(path, err, sizeof err) < 0) {
        fprintf(stderr, "tlsoffd: %s\n", err);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "foreground", no_argument, NULL, 'f' },
        { "test", no_argument, NULL, 't' },
        { "version", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { "send", required_argument, NULL, 's' },
        { "gen-ticket-key", required_argument, NULL, 'K' },
        { NULL, 0, NULL, 0 },
    };
    struct options o = { .config = DEFAULT_CONFIG };
    int c;
    alloc_set_oom_handler(start_out_of_memory);
    upgrade_remember_self(argv);
    while ((c = getopt_long(argc, argv, "c:fts:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o.config = optarg; break;
        case 's': o.send = optarg; break;
        case 'K': return gen_ticket_key(optarg);
        case 'f': o.foreground = true; break;
        case 't': o.test = true; break;
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
    return run(&o);
}
