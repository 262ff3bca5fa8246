/*
 * sesscache — the TLS session-ID cache that every worker shares.
 *
 * Owns: a region of the shared segment cut into shards of fixed-size
 * slots. Each shard has a process-shared robust mutex: a process killed
 * while holding it leaves EOWNERDEAD, and the next one clears that shard
 * and carries on. Each shard evicts first-in first-out, so when it is full
 * the oldest entry goes first; expired entries are never served, and every
 * slot carries a length and checksum so a damaged one is never served.
 * The cache stores opaque bytes (serialized sessions); it knows no TLS.
 *
 * Every process that uses the cache can write the whole region: the
 * geometry (shards, slots, seed, timeout) is each handle's own copy, read
 * once and checked by sesscache_open; the FIFO cursor is clamped; a
 * slot's fields are read once and its checksum is of the copy served; a
 * lock is waited for at most SESSCACHE_LOCK_WAIT_MS, after which the call
 * does nothing (a store is not stored, a lookup misses).
 */
#ifndef TLSOFFD_SESSCACHE_H
#define TLSOFFD_SESSCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SESSCACHE_SLOT_SIZE   2048    /* bytes per slot, header included */
#define SESSCACHE_ID_MAX      32
#define SESSCACHE_MAX_SHARDS  64
#define SESSCACHE_LOCK_WAIT_MS 100    /* then the call gives up */

struct sesscache;

/* What one store did, for the counters. */
enum sesscache_store {
    SESSCACHE_STORED,
    SESSCACHE_STORED_EVICTING,  /* an unexpired entry made room */
    SESSCACHE_OVERSIZE,         /* too large for a slot: not stored */
    SESSCACHE_BADID,            /* not stored, not counted: the id is empty or longer
                                 * than SESSCACHE_ID_MAX, or the lock was held too long */
};

/* Largest session a slot holds. */
size_t sesscache_max_data(void);

/*
 * Lays out a cache in region (size bytes) for entries living timeout
 * milliseconds (all times here are ms). seed keys the hash. Returns the cache, or NULL if size is too
 * small for even one shard of slots.
 */
struct sesscache *sesscache_init(void *region, size_t size, int64_t timeout, uint64_t seed);

/* A cache laid out before (in this or another process); NULL if none, or
 * if its header does not describe a cache that fits in size. */
struct sesscache *sesscache_open(void *region, size_t size);

/* The handle only (this process's memory); the region stays. */
void sesscache_free(struct sesscache *c);

/* How many sessions it holds at most. */
size_t sesscache_capacity(const struct sesscache *c);

enum sesscache_store sesscache_store(struct sesscache *c, const uint8_t *id, size_t idlen,
                                     const void *data, size_t len, int64_t now);

/* Copies the entry for id into out (at most outlen bytes); returns its
 * length, or 0 if there is none (absent, expired or damaged). */
size_t sesscache_lookup(struct sesscache *c, const uint8_t *id, size_t idlen, void *out,
                        size_t outlen, int64_t now);

void sesscache_remove(struct sesscache *c, const uint8_t *id, size_t idlen);

/* Shards cleared after a process died holding their lock. */
uint64_t sesscache_repairs(const struct sesscache *c);

#endif
