/*
 * shm — the shared segment: one memfd mapped MAP_SHARED by every process.
 *
 * Owns: creating, mapping and checking the segment and the place of each
 * region in it. A header (magic, layout version, size and offset of every
 * region) lets a process that maps an existing segment (a new binary after
 * an upgrade, or `tlsoffd -s stats`) refuse a layout it does not know. The
 * fd has no close-on-exec flag, so it survives exec.
 */
#ifndef TLSOFFD_SHM_H
#define TLSOFFD_SHM_H

#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC           0x544c534f46464431ull   /* "TLSOFFD1" */
#define SHM_LAYOUT_VERSION  6

enum shm_region {
    SHM_SESSCACHE,
    SHM_TICKETKEYS,
    SHM_STATS,
    SHM_CLIENTS,
    SHM_PARKED,
    SHM_NREGIONS
};

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
    int fd;
    void *base;
    size_t size;
    struct shm_header *hdr;
};

/* A new zeroed segment with regions of the given sizes (each rounded up to
 * a page). Returns 0, or -1 with the reason in err. */
int shm_create(struct shm *s, const size_t sizes[SHM_NREGIONS], char *err, size_t errlen);

/* Maps the segment behind fd and checks its header. */
int shm_attach(struct shm *s, int fd, char *err, size_t errlen);

/* Finds the segment of a running master by its pid (its memfd among
 * /proc/PID/fd) and maps it. */
int shm_attach_pid(struct shm *s, int pid, char *err, size_t errlen);

void *shm_region(const struct shm *s, enum shm_region r, size_t *size);

/*
 * A plain shared mapping with no header, for state whose layout follows
 * the configuration (the upstream table: a new one per reload). name
 * tells it apart among a process's fds.
 */
int shm_blob_create(struct shm *s, const char *name, size_t size, char *err, size_t errlen);
int shm_blob_attach_pid(struct shm *s, int pid, const char *name, char *err, size_t errlen);
void shm_detach(struct shm *s);

#endif
