/*
 * report — what the master tells `tlsoffd -s reload` and `-s upgrade`:
 * how its last reload and upgrade ended, in a page of memory that only
 * the master can write.
 *
 * The page is a memfd called "tlsoffd-report", close-on-exec (a new
 * master makes its own). The master's mapping is not inherited by its
 * children (MADV_DONTFORK), each child closes the descriptor first thing,
 * and the memfd is sealed against any new writable mapping
 * (F_SEAL_FUTURE_WRITE): even a process that got hold of the fd could
 * read the page but not forge an outcome. The client maps it read-only
 * through /proc/PID/fd, as -s stats does the shared segment.
 *
 * Each outcome has two counters: begun (HUPs or USR2s the master took)
 * and done (set to begun when the work ends), so a client that read
 * begun before its signal waits for done to pass it. A sequence number
 * (odd while the master writes) lets the reader take a consistent copy.
 */
#ifndef TLSOFFD_REPORT_H
#define TLSOFFD_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REPORT_NAME     "tlsoffd-report"
#define REPORT_TEXT_MAX 1024

enum report_state { REPORT_SERVING = 1, REPORT_STOPPING, REPORT_HANDED_OVER };

struct report_outcome {
    uint64_t begun, done;
    int32_t ok;                 /* the outcome of the one that made done */
    int32_t pid;                /* an upgrade's new master */
    char error[REPORT_TEXT_MAX];
};

struct report_page {
    uint64_t seq;               /* odd: being written */
    int32_t pid;                /* the master's */
    int32_t state;              /* enum report_state */
    struct report_outcome reload, upgrade;
};

/* The master: makes the page (a failure is logged; reports are then not
 * made, and the clients say so). */
void report_open(void);
/* A child: closes the page's descriptor (children hold none of the
 * master's memory: t1310). */
void report_close_in_child(void);
void report_set_state(enum report_state state);
void report_reload_begin(void);
void report_reload_done(bool ok, const char *error);
void report_upgrade_begin(void);
void report_upgrade_done(bool ok, int pid, const char *error);

/* A client: the page of master pid, mapped read-only; NULL with the
 * reason in err. */
const struct report_page *report_attach(int pid, char *err, size_t errlen);
/* A consistent copy of the page. */
void report_read(const struct report_page *page, struct report_page *copy);

#endif
