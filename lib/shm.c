#include "shm.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SHM_NAME  "tlsoffd-shm"
#define SIZE_SEALS (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static size_t page_round(size_t n)
{
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    return (n + pg - 1) / pg * pg;
}

static int map(struct shm *s, int fd, size_t size, int prot, char *err, size_t errlen)
{
    void *p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
        snprintf(err, errlen, "cannot map the shared segment (%zu bytes): %s", size,
                 strerror(errno));
        return -1;
    }
    s->fd = fd;
    s->base = p;
    s->size = size;
    s->hdr = NULL;
    memset(s->region, 0, sizeof s->region);
    return 0;
}

/* A memfd of size bytes whose size nobody can change any more. */
static int sized_memfd(const char *name, size_t size, char *err, size_t errlen)
{
    int fd = memfd_create(name, MFD_ALLOW_SEALING);     /* no MFD_CLOEXEC: kept across exec */
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create '%s': %s", name, strerror(errno));
        return -1;
    }
    if (ftruncate(fd, (off_t)size) < 0 || fcntl(fd, F_ADD_SEALS, SIZE_SEALS) < 0) {
        snprintf(err, errlen, "cannot size the shared memory '%s' to %zu bytes: %s", name, size,
                 strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
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
    int fd = sized_memfd(SHM_NAME, total, err, errlen);
    if (fd < 0)
        return -1;
    if (map(s, fd, total, PROT_READ | PROT_WRITE, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    struct shm_header *h = s->hdr = s->base;
    h->header_size = sizeof *h;
    h->total_size = total;
    for (int r = 0; r < SHM_NREGIONS; r++) {
        h->region[r].offset = s->region[r].offset = offsets[r];
        h->region[r].size = s->region[r].size = sizes[r];
    }
    h->creator_pid = (int32_t)getpid();
    h->layout_version = SHM_LAYOUT_VERSION;
    __atomic_store_n(&h->magic, SHM_MAGIC, __ATOMIC_RELEASE);
    return 0;
}

/*
 * Why the header h (a copy: the segment may change while it is read) does
 * not describe a segment of size bytes that this binary can use; NULL if
 * it does. Regions lie in order, apart, inside the segment; the checks
 * subtract, so no sum can wrap.
 */
static const char *bad_header(const struct shm_header *h, uint64_t size)
{
    if (h->magic != SHM_MAGIC)
        return "not a tlsoffd segment (bad magic)";
    if (h->layout_version != SHM_LAYOUT_VERSION)
        return "a layout version this binary does not know";
    if (h->header_size != sizeof *h || h->total_size != size)
        return "header and size do not agree";
    uint64_t end = sizeof *h;
    for (int r = 0; r < SHM_NREGIONS; r++) {
        uint64_t off = h->region[r].offset, len = h->region[r].size;
        if (off < end || off > size || len > size - off)
            return "a region lies outside the segment or over another";
        end = off + len;
    }
    return NULL;
}

/* Maps fd with prot and takes the geometry from its header, checked. */
static int attach(struct shm *s, int fd, int prot, char *err, size_t errlen)
{
    struct stat st;
    struct shm_header h;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "shared segment fd %d: %s", fd, strerror(errno));
        return -1;
    }
    if (st.st_size < (off_t)sizeof h) {
        snprintf(err, errlen, "shared segment fd %d is too small (%lld bytes)", fd,
                 (long long)st.st_size);
        return -1;
    }
    if (map(s, fd, (size_t)st.st_size, prot, err, errlen) < 0)
        return -1;
    memcpy(&h, s->base, sizeof h);
    const char *why = bad_header(&h, (uint64_t)st.st_size);
    if (why) {
        snprintf(err, errlen, "shared segment: %s (layout %u, this binary knows %u)", why,
                 h.layout_version, SHM_LAYOUT_VERSION);
        munmap(s->base, s->size);
        s->base = NULL;
        return -1;
    }
    s->hdr = s->base;
    for (int r = 0; r < SHM_NREGIONS; r++) {
        s->region[r].offset = (size_t)h.region[r].offset;
        s->region[r].size = (size_t)h.region[r].size;
    }
    return 0;
}

int shm_attach(struct shm *s, int fd, char *err, size_t errlen)
{
    return attach(s, fd, PROT_READ | PROT_WRITE, err, errlen);
}

/* Whether the fd at path is the memfd called name. */
static bool is_memfd(const char *path, const char *name)
{
    char link[PATH_MAX + 1], want[128];
    snprintf(want, sizeof want, "/memfd:%s ", name);
    ssize_t n = readlink(path, link, sizeof link - 2);
    if (n <= 0)
        return false;
    link[n] = ' ';          /* "/memfd:NAME (deleted)": match the whole name */
    link[n + 1] = '\0';
    return strncmp(link, want, strlen(want)) == 0;
}

/* The number of process pid's fd of the memfd called name (as it has it:
 * nothing is opened); -1 if none. */
static int memfd_number(int pid, const char *name, char *err, size_t errlen)
{
    char dir[64], path[384];
    snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *e;
    int fd = -1;
    while ((e = readdir(d)) && fd < 0) {
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (is_memfd(path, name))
            fd = atoi(e->d_name);
    }
    closedir(d);
    if (fd < 0)
        snprintf(err, errlen, "process %d has no %s segment", pid, name);
    return fd;
}

/* Process pid's memfd called name, opened here read-only; -1 if none. */
static int open_memfd(int pid, const char *name, char *err, size_t errlen)
{
    char path[64];
    int n = memfd_number(pid, name, err, errlen), fd;
    if (n < 0)
        return -1;
    snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, n);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return fd;
}

int shm_blob_create(struct shm *s, const char *name, size_t size, char *err, size_t errlen)
{
    size = page_round(size ? size : 1);
    int fd = sized_memfd(name, size, err, errlen);
    if (fd < 0)
        return -1;
    if (map(s, fd, size, PROT_READ | PROT_WRITE, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    return 0;
}

static int map_blob(struct shm *s, int fd, int prot, char *err, size_t errlen)
{
    struct stat st;
    if (fstat(fd, &st) < 0) {
        snprintf(err, errlen, "shared memory fd %d: %s", fd, strerror(errno));
        return -1;
    }
    if (st.st_size <= 0) {
        snprintf(err, errlen, "shared memory fd %d is empty", fd);
        return -1;
    }
    return map(s, fd, (size_t)st.st_size, prot, err, errlen);
}

int shm_blob_attach_pid(struct shm *s, int pid, const char *name, char *err, size_t errlen)
{
    int fd = open_memfd(pid, name, err, errlen);
    if (fd < 0)
        return -1;
    if (map_blob(s, fd, PROT_READ, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    return 0;
}

int shm_blob_take(struct shm *s, const char *name, char *err, size_t errlen)
{
    int fd = memfd_number(getpid(), name, err, errlen);
    return fd < 0 ? -1 : map_blob(s, fd, PROT_READ | PROT_WRITE, err, errlen);
}

int shm_attach_pid(struct shm *s, int pid, char *err, size_t errlen)
{
    int fd = open_memfd(pid, SHM_NAME, err, errlen);
    if (fd < 0)
        return -1;
    if (attach(s, fd, PROT_READ, err, errlen) < 0) {
        close(fd);
        return -1;
    }
    return 0;
}

int shm_make_readonly(struct shm *s, char *err, size_t errlen)
{
    char path[64];
    if (s->fd < 0 || !s->base) {
        snprintf(err, errlen, "shared memory: no descriptor to open read-only");
        return -1;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", s->fd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    if (ro < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    void *p = mmap(s->base, s->size, PROT_READ, MAP_SHARED | MAP_FIXED, ro, 0);
    int e = errno;
    close(ro);
    if (p != s->base) {
        snprintf(err, errlen, "cannot map the shared memory read-only: %s", strerror(e));
        return -1;
    }
    shm_close_fd(s);
    return 0;
}

void *shm_region(const struct shm *s, enum shm_region r, size_t *size)
{
    if (size)
        *size = s->region[r].size;
    return (char *)s->base + s->region[r].offset;
}

void shm_close_fd(struct shm *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

void shm_detach(struct shm *s)
{
    if (s->base)
        munmap(s->base, s->size);
    shm_close_fd(s);
    s->base = NULL;
}
