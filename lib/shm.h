/*
 * shm — the shared segment: one memfd mapped MAP_SHARED by every process.
 *
 * Owns: creating, mapping and checking the segment and the place of each
 * region in it. A header (magic, layout version, size and offset of every
 * region) lets a process that maps an existing segment (a new binary after
 * an upgrade, or `tlsoffd -s stats`) refuse a layout it does not know. The
 * fd has no close-on-exec flag, so it survives exec.
 *
 * Whatever is in the segment may have been written by any process that
 * maps it, a worker included: the header is checked once, at create or
 * attach, into this process's own copy of the geometry (struct shm), and
 * never read again. The size of a memfd made here is sealed, so no
 * holder of its fd can shrink it under the others' mappings (SIGBUS).
 */
#ifndef TLSOFFD_SHM_H
#define TLSOFFD_SHM_H

#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC           0x544c534f46464431ull   /* "TLSOFFD1" */
#define SHM_LAYOUT_VERSION  7       /* 7: the ticket keys left for a memfd of their own */

enum shm_region {
    SHM_SESSCACHE,
    SHM_STATS,
    SHM_CLIENTS,
    SHM_PARKED,
    SHM_NREGIONS
};

/* At the start of the segment, as the creator wrote it. */
struct shm_header {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t header_size;
    uint64_t total_size;
    struct {
        uint64_t offset, size;
    } region[SHM_NREGIONS];
    int32_t creator_pid;
};

struct shm {
    int fd;                 /* -1: closed (the mapping may stay) */
    void *base;
    size_t size;
    struct shm_header *hdr; /* in the segment: for information only */
    struct {
        size_t offset, size;
    } region[SHM_NREGIONS]; /* this process's copy, checked */
};

/* A new zeroed segment with regions of the given sizes (each rounded up to
 * a page). Returns 0, or -1 with the reason in err. */
int shm_create(struct shm *s, const size_t sizes[SHM_NREGIONS], char *err, size_t errlen);

/* Maps the segment behind fd (read-write) and checks its header. */
int shm_attach(struct shm *s, int fd, char *err, size_t errlen);

/* Finds the segment of a running master by its pid (its memfd among
 * /proc/PID/fd) and maps it read-only, from a descriptor opened
 * read-only: a reader can change nothing. */
int shm_attach_pid(struct shm *s, int pid, char *err, size_t errlen);

/* Region r: its place in this process's mapping, and its size. */
void *shm_region(const struct shm *s, enum shm_region r, size_t *size);

/*
 * A plain shared mapping with no header, for state whose layout follows
 * the configuration (the upstream table: a new one per reload) or that
 * some processes may only read (the ticket keys). name tells it apart
 * among a process's fds; the fd has no close-on-exec flag.
 */
int shm_blob_create(struct shm *s, const char *name, size_t size, char *err, size_t errlen);
/* Another process's blob called name, mapped read-only (as shm_attach_pid). */
int shm_blob_attach_pid(struct shm *s, int pid, const char *name, char *err, size_t errlen);
/* This process's own fd of a blob called name (inherited across exec),
 * mapped read-write. */
int shm_blob_take(struct shm *s, const char *name, char *err, size_t errlen);

/*
 * Makes s read-only in this process for good: the mapping is replaced, at
 * the same address, by one from a descriptor opened read-only (so that
 * mprotect(PROT_WRITE) fails with EACCES), and the read-write fd is
 * closed. Needs /proc/self/fd (before a chroot).
 */
int shm_make_readonly(struct shm *s, char *err, size_t errlen);

/* Closes the fd and keeps the mapping. */
void shm_close_fd(struct shm *s);
void shm_detach(struct shm *s);

#endif
