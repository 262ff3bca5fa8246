/*
 * runtime — everything the processes share that is built from one
 * configuration: the listening sockets, the shared segment and what is in
 * it (sessions, ticket keys, counters), the upstream table, the TLS
 * contexts and the accept lock. The master builds it before the first
 * fork, builds the next one on a reload, and releases the one it replaces.
 */
#ifndef TLSOFFD_RUNTIME_H
#define TLSOFFD_RUNTIME_H

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "config.h"
#include "shm.h"
#include "stats.h"
#include "clients.h"
#include "tls.h"

/* One listening socket and the frontend it belongs to. */
struct listener {
    int fd;
    size_t frontend;
    const struct addr *addr;    /* in the configuration */
};

struct runtime {
    struct config *cfg;
    struct tls_frontend **fe;       /* one per frontend: its certificates' contexts */
    struct listener *listeners;
    size_t nlisteners;
    pthread_mutex_t *accept_lock;   /* shared by this generation's workers */
    struct shm shm;                 /* sessions, ticket keys, counters (kept by reloads) */
    struct shm ushm;                /* the upstream table (one per configuration) */
    struct shm kshm;                /* the ticket key ring: read-only in the children */
    struct sesscache *cache;        /* NULL: off */
    struct ticketkeys *ring;        /* the ticket key region */
    struct ticketkeys *keys;        /* NULL: tickets off */
    struct stats *stats;
    struct clients *clients;        /* the client table: this configuration's limits */
    struct upstreams *ups;          /* servers' live state and balancing */
    WOLFSSL_CTX ***backend_ctx;     /* [upstream][server]: TLS to that server, or NULL */
    int pool_max;                   /* workers.count, workers.max, or what "auto" found */
    int park_fd[2];                 /* workers' end, the park process's end; -1: no parking */
    struct clients_ticket *park_table;  /* what the park holds (kept by reloads) */
    int key_fd[2];                  /* the key processes' rendezvous: the sending end
                                     * (workers, prober), the receiving end (key
                                     * processes); -1: keys are not isolated */
};

/* The shared segment (before the contexts: they use it): new, inherited
 * from an old master (USR2), or with old, a reload's: the segment,
 * sessions, keys and counters carry over. 0, or -1 with the reason. */
int runtime_shared(struct runtime *rt, struct runtime *old, char *err, size_t errlen);
/* The TLS contexts (certificates loaded and checked; keys that live in
 * the key processes are not loaded) and the key processes' rendezvous. */
int runtime_load_tls(struct runtime *rt, char *err, size_t errlen);
/* Checks that the configured ticket key files can be read (tlsoffd -t). */
int runtime_check_key_files(const struct config *cfg, char *err, size_t errlen);
/* The listening sockets (kept from old, inherited, or new) and the accept lock. */
int runtime_bind(struct runtime *rt, const struct runtime *old, char *err, size_t errlen);
/* Raises the limit on open files to what the pool needs, as far as allowed. */
void runtime_raise_nofile(const struct runtime *rt);

/* rt->pool_max from the configuration and the machine (capacity.h); a
 * warning (to f, or the log if NULL) when the machine does not allow it. */
void runtime_size_pool(struct runtime *rt, FILE *f);

/* A whole runtime from old's configuration file, read again: NULL with
 * the reason in err if anything is wrong, or memory ran out (old is
 * untouched and stays in force). */
struct runtime *runtime_reload(struct runtime *old, char *err, size_t errlen);
/* A fresh ticket key, when rotating (not with key files). */
void runtime_rotate_ticket_key(struct runtime *rt);

/* In a child of the master, right after fork (before a chroot): the ticket
 * key ring becomes read-only for good, and no descriptor of the shared
 * memory is left (the master keeps them for USR2). Exits if it cannot. */
void runtime_child_shared(struct runtime *rt);

/* Frees rt. other, if set, shares parts of it (the next runtime after a
 * reload, or the running one when a reload failed): the listening sockets
 * and the segment they have in common stay open. */
void runtime_release(struct runtime *rt, const struct runtime *other);
void runtime_free(struct runtime *rt);

#endif
