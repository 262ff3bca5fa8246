#include "shm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_NAME "tlsoffd-shm"

static size_t page_round(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

static int map(struct shm *s, int fd, size_t size, char *err, size_t errlen)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cannot map the shared segment (%zu bytes): %s", size,
                 strerror(errno));
        return -1;
    }
    s->fd = fd;
    s->base = p;
    s->size = size;
    s->hdr = p;
    return 0;
}

int shm_create(struct shm *s, const size_t sizes[SHM_NREGIONS], char *err, size_t errlen)
{
    size_t off = page_round(sizeof(struct shm_header)), total;
    uint64_t offsets[SHM_NREGIONS];
    for (int r = 0; r < SHM_NREGIONS; r++) {
        offsets[r] = off;
        off += page_round(sizes[r] ? sizes[r] : 1);
    }
    total = off;
    int fd = memfd_create(SHM_NAME, 0);     /* no MFD_CLOEXEC: kept across exec */
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)total) < 0) {
        snprintf(err, errlen, "cannot size the shared segment to %zu bytes: %s", total,
                 strerror(errno));
        close(fd);
        return -1;
    }
    if (map(s, fd, total, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    struct shm_header *h = s->hdr;
    h->header_size = sizeof *h;
    h->total_size = total;
    for (int r = 0; r < SHM_NREGIONS; r++) {
        h->region[r].offset = offsets[r];
        h->region[r].size = sizes[r];
    }
    h->creator_pid = (int32_t)getpid();
    h->layout_version = SHM_LAYOUT_VERSION;
    __atomic_store_n(&h->magic, SHM_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

int shm_attach(struct shm *s, int fd, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "shared segment fd %d: %s", fd, strerror(errno));
        return -1;
    }
    if ((size_t)st.st_size < sizeof(struct shm_header)) {
        snprintf(err, errlen, "shared segment fd %d is too small (%lld bytes)", fd,
                 (long long)st.st_size);
        return -1;
    }
    if (map(s, fd, (size_t)st.st_size, err, errlen) < 0)
        return -1;
    const struct shm_header *h = s->hdr;
    const char *why = NULL;
    if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != SHM_MAGIC)
        why = "not a tlsoffd segment (bad magic)";
    else if (h->layout_version != SHM_LAYOUT_VERSION)
        why = "a layout version this binary does not know";
    else if (h->header_size != sizeof *h || h->total_size != (uint64_t)st.st_size)
        why = "header and size do not agree";
    for (int r = 0; !why && r < SHM_NREGIONS; r++)
        if (h->region[r].offset < h->header_size ||
            h->region[r].offset + h->region[r].size > h->total_size)
            why = "a region lies outside the segment";
    if (why) {
        snprintf(err, errlen, "shared segment: %s (layout %u, this binary knows %u)", why,
                 h->layout_version, SHM_LAYOUT_VERSION);
        munmap(s->base, s->size);
        s->base = NULL;
        return -1;
    }
    return 0;
}

/* The fd of a running process's memfd called name, opened here; -1 if none. */
static int find_memfd(int pid, const char *name, char *err, size_t errlen)
{
    char dir[64], link[PATH_MAX + 1], path[384], want[128];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    snprintf(want, sizeof want, "/memfd:%s ", name);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int fd = -1;
    while ((e = readdir(d)) && fd < 0) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(path, link, sizeof link - 2);
        if (n <= 0)
            continue;
        link[n] = ' ';          /* "/memfd:NAME (deleted)": match the whole name */
        link[n + 1] = '\0';
        if (strncmp(link, want, strlen(want)) == 0)
            fd = open(path, O_RDWR | O_CLOEXEC);
    }
    closedir(d);
    if (fd < 0)
        snprintf(err, errlen, "process %d has no %s segment", pid, name);
    return fd;
}

int shm_blob_create(struct shm *s, const char *name, size_t size, char *err, size_t errlen)
{
    size = page_round(size ? size : 1);
    int fd = memfd_create(name, 0);
    if (fd < 0 || ftruncate(fd, (off_t)size) < 0) {
        snprintf(err, errlen, "shared memory '%s' (%zu bytes): %s", name, size, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (map(s, fd, size, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    s->hdr = NULL;
    return 0;
}

int shm_blob_attach_pid(struct shm *s, int pid, const char *name, char *err, size_t errlen)
{
    struct stat st;
    int fd = find_memfd(pid, name, err, errlen);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) < 0 || map(s, fd, (size_t)st.st_size, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    s->hdr = NULL;
    return 0;
}

int shm_attach_pid(struct shm *s, int pid, char *err, size_t errlen)
{
    int fd = find_memfd(pid, SHM_NAME, err, errlen);
    if (fd < 0)
        return -1;
    if (shm_attach(s, fd, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    return 0;
}

void *shm_region(const struct shm *s, enum shm_region r, size_t *size)
{
    if (size)
        *size = s->hdr->region[r].size;
    return (char *)s->base + s->hdr->region[r].offset;
}

void shm_detach(struct shm *s)
{
    if (s->base)
        munmap(s->base, s->size);
    if (s->fd >= 0)
        close(s->fd);
    s->base = NULL;
    s->fd = -1;
}
