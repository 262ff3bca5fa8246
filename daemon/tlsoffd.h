/*
 * The daemon's processes: what main, master and worker share.
 */
#ifndef TLSOFFD_DAEMON_H
#define TLSOFFD_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <sys/types.h>

#include "config.h"
#include "shm.h"
#include "stats.h"
#include "tls.h"

/* One listening socket and the frontend it belongs to. */
struct listener {
    int fd;
    size_t frontend;
    const struct addr *addr;    /* in the configuration */
};

/* Everything built from one configuration before the first fork. */
struct runtime {
    struct config *cfg;
    struct tls_frontend **fe;       /* one per frontend: its certificates' contexts */
    struct listener *listeners;
    size_t nlisteners;
    pthread_mutex_t *accept_lock;   /* shared by this generation's workers */
    bool *listener_kept;            /* [i]: the fd came from the previous runtime */
    struct shm shm;                 /* sessions, ticket keys, counters (kept by reloads) */
    struct shm ushm;                /* the upstream table (one per configuration) */
    struct sesscache *cache;        /* NULL: off */
    struct ticketkeys *ring;        /* the ticket key region */
    struct ticketkeys *keys;        /* NULL: tickets off */
    struct stats *stats;
    struct upstreams *ups;          /* servers' live state and balancing */
    WOLFSSL_CTX ***backend_ctx;     /* [upstream][server]: TLS to that server, or NULL */
    pid_t prober;                   /* the health prober process; 0: none */
};

/* main.c: contexts from a config (certificates loaded and checked). */
int runtime_load_tls(struct runtime *rt, char *err, size_t errlen);
/* main.c: the shared segment (before the contexts: they use it); with
 * old, a reload: the segment, sessions, keys and counters carry over. */
int runtime_shared(struct runtime *rt, struct runtime *old, char *err, size_t errlen);
/* main.c: a whole runtime from a configuration file, for a reload of old:
 * NULL with the reason in err if anything is wrong (old is untouched). */
struct runtime *runtime_reload(struct runtime *old, char *err, size_t errlen);
/* main.c: a fresh ticket key, when rotating. */
void runtime_rotate_ticket_key(struct runtime *rt);
int runtime_bind(struct runtime *rt, const struct runtime *old, char *err, size_t errlen);
void runtime_free(struct runtime *rt);
void runtime_release(struct runtime *rt, const struct runtime *other);

/* main.c: confines a worker or the prober after fork (chroot, then the
 * configured group and user). 0, or -1 with the reason in err. */
int runtime_drop_privileges(const struct config *cfg, char *err, size_t errlen);

/* master.c: runs until stopped; returns the exit status. ready_fd, if
 * >= 0, is written to and closed once the workers run. *pidfile is the
 * pidfile's path (a USR2 upgrade renames it to PATH.oldbin, and sets it). */
int master_run(struct runtime *rt, int ready_fd, char **pidfile);

/* main.c: in a child of the master, runs the binary again as the new
 * master (USR2), handing over the listeners and the shared segment; it
 * reports readiness on ready_fd. Returns only on failure. */
int runtime_exec_upgrade(const struct runtime *rt, int ready_fd);

/* health.c: forks the prober if any upstream has health checks; returns
 * its pid, 0 if none is needed, -1 on error. */
pid_t health_start(struct runtime *rt);

/* worker.c */
pthread_mutex_t *worker_accept_lock_create(void);
void worker_run(struct runtime *rt, int id) __attribute__((noreturn));

#endif
