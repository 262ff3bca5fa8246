/*
 * report — the master's outcomes for the -s client; see report.h.
 */
#include "report.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "shm.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010      /* Linux 5.1 */
#endif

static struct report_page *page;        /* the master's, read-write */
static int page_fd = -1;                /* kept open: the client finds the page by it */

static struct report_page *report_create(void)
{
    size_t size = (sizeof *page + 4095) / 4096 * 4096;
    int fd = memfd_create(REPORT_NAME, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0)
        goto fail;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        goto fail;
    if (madvise(p, size, MADV_DONTFORK) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE |
                                   F_SEAL_SEAL) < 0) {
        munmap(p, size);
        goto fail;
    }
    page_fd = fd;
    return p;
fail:
    log_warning("cannot make the report page (%s): tlsoffd -s reload and -s upgrade will "
                "not learn the outcome", strerror(errno));
    if (fd >= 0)
        close(fd);
    return NULL;
}

void report_open(void)
{
    if (!(page = report_create()))
        return;
    page->pid = (int32_t)getpid();
    page->state = REPORT_SERVING;
}

/* Writing: seq odd around the change. */
static void write_begin(void)
{
    __atomic_store_n(&page->seq, page->seq + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void write_end(void)
{
    __atomic_store_n(&page->seq, page->seq + 1, __ATOMIC_RELEASE);
}

void report_close_in_child(void)
{
    if (page_fd >= 0)
        close(page_fd);
    page_fd = -1;
    page = NULL;        /* not mapped here (MADV_DONTFORK) */
}

void report_set_state(enum report_state state)
{
    if (!page)
        return;
    write_begin();
    page->state = state;
    write_end();
}

static void begin(struct report_outcome *o)
{
    write_begin();
    o->begun++;
    write_end();
}

static void done(struct report_outcome *o, bool ok, int pid, const char *error)
{
    write_begin();
    o->ok = ok;
    o->pid = pid;
    snprintf(o->error, sizeof o->error, "%s", error ? error : "");
    o->done = o->begun;
    write_end();
}

void report_reload_begin(void)
{
    if (page)
        begin(&page->reload);
}

void report_reload_done(bool ok, const char *error)
{
    if (page)
        done(&page->reload, ok, 0, error);
}

void report_upgrade_begin(void)
{
    if (page)
        begin(&page->upgrade);
}

void report_upgrade_done(bool ok, int pid, const char *error)
{
    if (page)
        done(&page->upgrade, ok, pid, error);
}

const struct report_page *report_attach(int pid, char *err, size_t errlen)
{
    struct shm s = { .fd = -1 };
    if (shm_blob_attach_pid(&s, pid, REPORT_NAME, err, errlen) < 0)
        return NULL;
    close(s.fd);
    if (s.size < sizeof(struct report_page)) {
        snprintf(err, errlen, "the report page of pid %d is too small", pid);
        munmap(s.base, s.size);
        return NULL;
    }
    return s.base;
}

void report_read(const struct report_page *p, struct report_page *copy)
{
    for (int tries = 0; tries < 1000; tries++) {
        uint64_t seq = __atomic_load_n(&p->seq, __ATOMIC_ACQUIRE);
        if (seq & 1) {
            usleep(100);
            continue;
        }
        memcpy(copy, (const void *)p, sizeof *copy);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&p->seq, __ATOMIC_RELAXED) == seq)
            break;
    }
    copy->reload.error[sizeof copy->reload.error - 1] = '\0';
    copy->upgrade.error[sizeof copy->upgrade.error - 1] = '\0';
}
