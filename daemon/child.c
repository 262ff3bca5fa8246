/*
 * child — the set-up every process the master forks does; see child.h.
 */
#include "child.h"

#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "exit.h"
#include "log.h"
#include "report.h"
#include "tls.h"
#include "upgrade.h"

static pid_t parent;        /* the master that forked this process */

/* The parent-death signal, and an exit if the parent went before it was set. */
static void arm_parent_death(void)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(EXIT_OK);
}

static void set_signal(int sig, void (*fn)(int))
{
    struct sigaction sa = { .sa_handler = fn };     /* no SA_RESTART */
    sigaction(sig, &sa, NULL);
}

void child_begin(pid_t master, const char *role, const char *name,
                 const struct child_signals *sigs)
{
    sigset_t none;     /* blocked: none, or only the shed signal */
    pidfile_close_in_child();
    report_close_in_child();
    parent = master;
    log_set_role(role);
    if (name)
        prctl(PR_SET_NAME, name);                   /* what ps and tests see */
    arm_parent_death();
    set_signal(SIGQUIT, sigs->quit ? sigs->quit : SIG_IGN);
    set_signal(SIGUSR1, sigs->usr1 ? sigs->usr1 : SIG_IGN);
    set_signal(SIGTERM, sigs->term ? sigs->term : SIG_DFL);
    set_signal(SIGINT, sigs->term ? sigs->term : SIG_DFL);
    set_signal(SIGHUP, SIG_IGN);
    set_signal(SIGPIPE, SIG_IGN);
    set_signal(SIGUSR2, sigs->shed ? sigs->shed : SIG_IGN);
    set_signal(SIGCHLD, SIG_DFL);
    sigemptyset(&none);
    if (sigs->shed)
        sigaddset(&none, SIGUSR2);
    sigprocmask(SIG_SETMASK, &none, NULL);
    tls_after_fork();
}

static int drop_privileges(const struct config *cfg, char *err, size_t errlen)
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

void child_confine(const struct config *cfg)
{
    char err[512];
    if (drop_privileges(cfg, err, sizeof err) < 0) {
        log_error("%s", err);
        _exit(EXIT_FAIL);
    }
    arm_parent_death();     /* setgid/setuid cleared it */
}

void child_out_of_memory(size_t size, const char *file, int line)
{
    log_error("out of memory: %zu bytes at %s:%d; exiting (the master starts another)", size,
              file, line);
    _exit(EXIT_OOM);
}

int child_check_identity(const struct config *cfg, char *err, size_t errlen)
{
    char path[4096];
    if (!cfg->user && geteuid() == 0)
        log_warning("workers run as root: set user in %s (the master keeps root for what "
                    "needs it)", cfg->path);
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
