/*
 * ticketkeys — the session-ticket key ring every worker shares, and the
 * ticket encryption itself.
 *
 * Owns: the ring in shared memory (the master writes it, workers read
 * it without locks through a sequence counter, so a worker killed while
 * reading can never block the master), key rotation, key files for
 * clusters, and ChaCha20-Poly1305 encryption of tickets (wolfCrypt), with
 * the key name, IV and length authenticated as associated data.
 *
 * The ring is a memfd of its own (TICKETKEYS_SHM_NAME), not a region of
 * the segment: the master's children map it read-only from a descriptor
 * opened read-only (a page of a file they map read-write elsewhere could
 * be remapped writable with remap_file_pages or mremap). Only the master
 * writes it; the workers read it without trusting it: the number of keys is clamped to TICKETKEYS_MAX, and a reader
 * retries a torn read at most TICKETKEYS_READ_TRIES times; then (said
 * once) it encrypts under the last current key this process read
 * consistently (or the master wrote before forking it) and accepts only
 * tickets under that key; with none, the ticket fails.
 */
#ifndef TLSOFFD_TICKETKEYS_H
#define TLSOFFD_TICKETKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TICKETKEYS_SHM_NAME  "tlsoffd-ticketkeys"   /* the memfd's name */
#define TICKETKEYS_MAX       32
#define TICKETKEYS_READ_TRIES 1000  /* reads of a ring being written, then give up */
#define TICKET_NAME_LEN      16
#define TICKET_SECRET_LEN    32
#define TICKET_KEY_FILE_LEN  (TICKET_NAME_LEN + TICKET_SECRET_LEN)   /* 48 bytes */

struct ticket_key {
    uint8_t name[TICKET_NAME_LEN];
    uint8_t secret[TICKET_SECRET_LEN];
    int64_t expires;        /* ms, CLOCK_REALTIME: stops decrypting then; 0 = never */
};

struct ticketkeys;

size_t ticketkeys_region_size(void);
struct ticketkeys *ticketkeys_init(void *region);
struct ticketkeys *ticketkeys_open(void *region, size_t size);

/* A fresh key from the kernel's CSPRNG. */
int ticketkeys_generate(struct ticket_key *k);

/* Master: a new key encrypts from now on; the one it replaces keeps
 * decrypting until now + lifetime; keys past their time are dropped. */
void ticketkeys_rotate(struct ticketkeys *r, const struct ticket_key *fresh, int64_t now,
                       int64_t lifetime);
/* Master: exactly these keys (from key files; the first encrypts). */
void ticketkeys_set(struct ticketkeys *r, const struct ticket_key *keys, size_t n);

/* Rotations so far, and keys that still decrypt. */
uint64_t ticketkeys_generation(const struct ticketkeys *r);
size_t ticketkeys_count(const struct ticketkeys *r, int64_t now);

/* Key files: 48 random bytes (16 name + 32 secret). */
int ticketkeys_read_file(const char *path, struct ticket_key *k, char *err, size_t errlen);
/* Writes a new key file with mode 0600; refuses to replace a file. */
int ticketkeys_write_file(const char *path, char *err, size_t errlen);

/* Ticket crypto, with wolfSSL's ticket callback's buffers: name[16],
 * iv[16], mac[32]; the ticket is encrypted in place (len bytes). The
 * ticket is bound to scope (16 bytes, authenticated, not sent; NULL =
 * zeros): it decrypts only under the same scope (tls_resume.c: the frontend).
 * mac holds the 16-byte tag and then the key name; all 32 bytes are checked. */
#define TICKET_MAX_PLAIN 512
#define TICKET_SCOPE_LEN 16
int ticketkeys_encrypt(struct ticketkeys *r, const uint8_t *scope, uint8_t name[16],
                       uint8_t iv[16], uint8_t mac[32], uint8_t *ticket, size_t len);

enum ticket_dec { TICKET_DEC_CURRENT, TICKET_DEC_OLDER, TICKET_DEC_UNKNOWN, TICKET_DEC_BAD };
enum ticket_dec ticketkeys_decrypt(struct ticketkeys *r, const uint8_t *scope,
                                   const uint8_t name[16],
                                   const uint8_t iv[16], const uint8_t mac[32], uint8_t *ticket,
                                   size_t len, int64_t now);

#endif
