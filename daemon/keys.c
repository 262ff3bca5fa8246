/*
 * keys — the key processes; see keys.h.
 *
 * One epoll loop: the rendezvous (new channels, one descriptor per
 * datagram) and every channel taken, level-triggered. A request is
 * answered before the next event is looked at; signing is the only work.
 */
#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "alloc.h"
#include "child.h"
#include "clock.h"
#include "exit.h"
#include "keystore.h"
#include "log.h"
#include "passfd.h"
#include "pkcs11.h"

#define KEYS_START_MS       30000   /* a key process must be ready within this */
#define KEYS_AUTO_MAX       8       /* keys.processes = "auto": one per CPU, at most this */
#define KEYS_EVENTS         64
#define KEYS_SPARE_FDS      32      /* descriptors that are not channels */
/* wolfSSL's generator reseeds from /dev/urandom after 1,000,000 requests:
 * a key process in an empty root has none, and makes way for a fresh one
 * long before that (each signature takes a few). */
#define KEYS_RECYCLE_SIGNS  100000
#define RENDEZVOUS          UINT32_MAX

struct chan {
    int fd;                 /* -1: free */
    int64_t used;           /* the last request, for eviction */
};

struct keyproc {
    struct keystore *ks;
    int rendezvous, ep;
    struct chan *chans;
    uint32_t nchans, cap;
    uint64_t signed_;
    uint64_t recycle_after; /* 0: never */
    int64_t last_complaint;
};

static volatile sig_atomic_t stopping, retiring;

static void on_term(int sig)
{
    (void)sig;
    stopping = 1;
}

static void on_quit(int sig)
{
    (void)sig;
    retiring = 1;
}

int keys_processes(const struct config *cfg)
{
    if (!cfg->keys.isolate || cfg->keys.n == 0)
        return 0;
    if (cfg->keys.processes > 0)
        return cfg->keys.processes;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > KEYS_AUTO_MAX ? KEYS_AUTO_MAX : (int)n;
}

/* Every key of cfg into a new store; NULL with the first error. */
static struct keystore *load_all(const struct config *cfg, char *err, size_t errlen)
{
    struct keystore *ks = keystore_new(err, errlen);
    for (size_t i = 0; ks && i < cfg->keys.n; i++)
        if (keystore_add(ks, &cfg->keys.list[i], cfg->keys.pkcs11_module, err, errlen) < 0) {
            keystore_free(ks);
            return NULL;
        }
    return ks;
}

/* The child's word to its parent: "" (ready) or an error. */
static void report(int fd, const char *msg)
{
    size_t n = strlen(msg) + 1;
    ssize_t w = write(fd, msg, n);
    (void)w;
    close(fd);
}

/* Waits for a child's word on fd: 0 if it is ready, else -1 with the reason. */
static int await_report(int fd, pid_t pid, char *err, size_t errlen)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    char buf[CONFIG_ERR_MAX];
    int r;
    while ((r = poll(&p, 1, KEYS_START_MS)) < 0 && errno == EINTR)
        ;
    ssize_t n = r > 0 ? read(fd, buf, sizeof buf - 1) : -1;
    close(fd);
    if (n > 0 && buf[0] == 0)
        return 0;
    if (n > 0) {
        buf[n] = 0;
        snprintf(err, errlen, "%s", buf);
    } else {
        snprintf(err, errlen, r == 0 ? "the key process (pid %d) was not ready within %d s"
                                     : "the key process (pid %d) exited while starting (see "
                                       "the log)", (int)pid, KEYS_START_MS / 1000);
    }
    return -1;
}

/* A child to run fn(arg, status fd), which reports on the fd; waits for
 * the report: the child's pid (killed and reaped if it failed, and then
 * -1 with the reason). */
static pid_t fork_reporting(void (*fn)(void *, int), void *arg, char *err, size_t errlen)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(p[0]);
        fn(arg, p[1]);
        _exit(EXIT_FAIL);
    }
    close(p[1]);
    if (pid < 0) {
        close(p[0]);
        snprintf(err, errlen, "cannot fork a key process: %s", strerror(errno));
        return -1;
    }
    if (await_report(p[0], pid, err, errlen) < 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    return pid;
}

/* keys_check's child: loads, reports, exits. */
static void check_all(void *arg, int status)
{
    char err[CONFIG_ERR_MAX];
    prctl(PR_SET_DUMPABLE, 0);
    struct keystore *ks = load_all(arg, err, sizeof err);
    report(status, ks ? "" : err);
    _exit(ks ? EXIT_OK : EXIT_FAIL);
}

int keys_check(const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->keys.isolate || cfg->keys.n == 0)
        return 0;
    pid_t pid = fork_reporting(check_all, (void *)cfg, err, errlen);
    if (pid < 0)
        return -1;
    waitpid(pid, NULL, 0);
    return 0;
}

/* ---- confinement ---- */

/* Lets go of what the master holds that a key process must not. */
static void let_go(struct runtime *rt)
{
    for (size_t i = 0; i < rt->nlisteners; i++)
        close(rt->listeners[i].fd);
    for (int i = 0; i < 2; i++)
        if (rt->park_fd[i] >= 0)
            close(rt->park_fd[i]);
    close(rt->key_fd[0]);
    shm_detach(&rt->shm);
    shm_detach(&rt->ushm);
    shm_detach(&rt->kshm);          /* the ticket keys are not ours either */
}

/* A root that is an empty directory, removed once we are in it: nothing
 * can be created there or reached from it. 0, or -1 (not root: stay). */
static int empty_root(void)
{
    char dir[] = "/tmp/tlsoffd-keys.XXXXXX";
    int parent = open("/tmp", O_DIRECTORY | O_RDONLY | O_CLOEXEC);
    int rc = -1;
    if (parent >= 0 && mkdtemp(dir)) {
        if (chroot(dir) == 0 && chdir("/") == 0)
            rc = 0;
        unlinkat(parent, dir + strlen("/tmp/"), AT_REMOVEDIR);
    }
    if (parent >= 0)
        close(parent);
    return rc;
}

/* Room for a channel per worker, while we may still raise the limit. */
static uint32_t channel_room(const struct runtime *rt)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)rt->pool_max + 16 + KEYS_SPARE_FDS;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        struct rlimit up = { want, want > rl.rlim_max ? want : rl.rlim_max };
        if (setrlimit(RLIMIT_NOFILE, &up) < 0 && rl.rlim_max > rl.rlim_cur) {
            up = (struct rlimit){ rl.rlim_max, rl.rlim_max };
            setrlimit(RLIMIT_NOFILE, &up);
        }
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur > KEYS_SPARE_FDS + 1 ? (uint32_t)(rl.rlim_cur - KEYS_SPARE_FDS) : 1;
}

/* Does a key live on a token? Its module may read files at every
 * signature (SoftHSM2 re-reads its token directory). */
static bool has_token_keys(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->keys.n; i++)
        if (pkcs11_is_uri(cfg->keys.list[i].key))
            return true;
    return false;
}

static void confine(struct keyproc *k, const struct config *cfg)
{
    if (!cfg->chroot && has_token_keys(cfg)) {
        log_info("the key processes stay outside a chroot: a PKCS#11 module reads its own "
                 "files (set chroot to confine them; see tlsoffd.conf(5), PKCS#11 keys)");
    } else if (!cfg->chroot) {
        if (empty_root() == 0)
            k->recycle_after = KEYS_RECYCLE_SIGNS;
        else if (geteuid() == 0)
            log_warning("cannot confine the key process to an empty directory in /tmp: %s",
                        strerror(errno));
    }
    child_confine(cfg);
    prctl(PR_SET_DUMPABLE, 0);      /* a credential change may have reset it */
}

/* ---- channels ---- */

static void drop_chan(struct keyproc *k, uint32_t i)
{
    epoll_ctl(k->ep, EPOLL_CTL_DEL, k->chans[i].fd, NULL);
    close(k->chans[i].fd);
    k->chans[i].fd = -1;
    k->nchans--;
}

/* A free slot: the first, or the longest unused channel's. */
static uint32_t free_slot(struct keyproc *k)
{
    uint32_t oldest = 0;
    for (uint32_t i = 0; i < k->cap; i++) {
        if (k->chans[i].fd < 0)
            return i;
        if (k->chans[i].used < k->chans[oldest].used)
            oldest = i;
    }
    drop_chan(k, oldest);           /* that worker asks for another if it needs one */
    return oldest;
}

static void add_chan(struct keyproc *k, int fd)
{
    uint32_t i = free_slot(k);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = i };
    if (epoll_ctl(k->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        close(fd);
        return;
    }
    k->chans[i] = (struct chan){ fd, clock_now_ms() };
    k->nchans++;
}

/* Something other than a request came: say so (at most once a second). */
static void complain(struct keyproc *k, const char *what)
{
    int64_t now = clock_now_ms();
    if (now - k->last_complaint < 1000)
        return;
    k->last_complaint = now;
    log_warning("a process without keys sent %s; its channel is closed", what);
}

/* New channels from the rendezvous, one descriptor per datagram. */
static void take_channels(struct keyproc *k)
{
    struct keyproto_hello h;
    int fds[PASSFD_MAX], nfds;
    ssize_t n;
    while ((n = passfd_recv(k->rendezvous, &h, sizeof h, fds, PASSFD_MAX, &nfds)) >= 0 ||
           errno == EMSGSIZE) {
        if (n == (ssize_t)sizeof h && h.magic == KEYPROTO_MAGIC && nfds == 1) {
            add_chan(k, fds[0]);
            continue;
        }
        for (int i = 0; n >= 0 && i < nfds; i++)
            close(fds[i]);
        complain(k, "a rendezvous message that is not a channel");
    }
}

static void answer(struct keyproc *k, uint32_t i)
{
    struct keyproto_req rq;
    struct keyproto_rep rep;
    uint8_t buf[sizeof rq + 1];
    const char *why;
    ssize_t n = recv(k->chans[i].fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {                   /* that worker is gone */
        drop_chan(k, i);
        return;
    }
    if (keyproto_parse_req(buf, (size_t)n > sizeof buf ? sizeof buf : (size_t)n, &rq, &why) < 0) {
        complain(k, why);
        drop_chan(k, i);
        return;
    }
    keystore_sign(k->ks, &rq, &rep);
    if (rep.status == KEYPROTO_FAILED)
        log_warning("signing with key %u (%s) failed", rq.key,
                    keystore_describe(k->ks, rq.key));
    k->signed_++;
    k->chans[i].used = clock_now_ms();
    if (send(k->chans[i].fd, &rep, keyproto_rep_size(&rep), MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
        drop_chan(k, i);
}

static void serve(struct keyproc *k, int64_t retire_ms)
{
    struct epoll_event ev[KEYS_EVENTS];
    int64_t until = INT64_MAX;
    while (!stopping) {
        if (retiring && until == INT64_MAX)
            until = clock_now_ms() + retire_ms;
        int64_t left = until - clock_now_ms();
        if (left <= 0 || (k->recycle_after && k->signed_ >= k->recycle_after))
            break;
        int n = epoll_wait(k->ep, ev, KEYS_EVENTS, left > 1000 ? 1000 : (int)left);
        for (int j = 0; j < n; j++) {
            if (ev[j].data.u32 == RENDEZVOUS)
                take_channels(k);
            else if (ev[j].data.u32 < k->cap && k->chans[ev[j].data.u32].fd >= 0)
                answer(k, ev[j].data.u32);
        }
    }
}

static void keys_run(struct runtime *rt, pid_t master, int close_fd, int status)
{
    static const struct child_signals sigs = { .quit = on_quit, .term = on_term };
    char err[CONFIG_ERR_MAX];
    struct keyproc k = { .rendezvous = rt->key_fd[1] };
    if (close_fd >= 0)
        close(close_fd);
    child_begin(master, "keys", "tlsoffd-keys", &sigs);
    prctl(PR_SET_DUMPABLE, 0);
    let_go(rt);
    alloc_set_oom_handler(child_out_of_memory);
    if (!(k.ks = load_all(rt->cfg, err, sizeof err))) {
        report(status, err);
        _exit(EXIT_FAIL);
    }
    k.cap = channel_room(rt);
    k.chans = xcalloc(k.cap, sizeof *k.chans);
    for (uint32_t i = 0; i < k.cap; i++)
        k.chans[i].fd = -1;
    confine(&k, rt->cfg);
    struct epoll_event ev = { .events = EPOLLIN, .data.u32 = RENDEZVOUS };
    if ((k.ep = epoll_create1(EPOLL_CLOEXEC)) < 0 ||
        epoll_ctl(k.ep, EPOLL_CTL_ADD, k.rendezvous, &ev) < 0) {
        snprintf(err, sizeof err, "key process: epoll: %s", strerror(errno));
        report(status, err);
        _exit(EXIT_FAIL);
    }
    report(status, "");
    log_debug("started: %zu keys, room for %u channels", keystore_count(k.ks), k.cap);
    const struct config *cfg = rt->cfg;
    serve(&k, (int64_t)((cfg->timeouts.handshake + cfg->timeouts.connect) * 1000) + 1000);
    if (k.recycle_after && k.signed_ >= k.recycle_after)
        log_info("recycled after %llu signatures (a fresh random generator)",
                 (unsigned long long)k.signed_);
    keystore_free(k.ks);
    _exit(EXIT_OK);
}

struct start {
    struct runtime *rt;
    pid_t master;
    int close_fd;
};

static void run_started(void *arg, int status)
{
    struct start *st = arg;
    keys_run(st->rt, st->master, st->close_fd, status);
}

pid_t keys_start(struct runtime *rt, pid_t master, int close_fd, char *err, size_t errlen)
{
    struct start st = { rt, master, close_fd };
    return fork_reporting(run_started, &st, err, errlen);
}
