#include "ticketkeys.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/chacha20_poly1305.h>

#include "secretfile.h"
#include "log.h"

#define TK_MAGIC 0x544b5231u     /* "TKR1" */

struct ticketkeys {
    uint32_t magic;
    uint32_t seq;           /* odd while the master writes */
    uint32_t nkeys;
    uint32_t pad;
    uint64_t generation;
    struct ticket_key keys[TICKETKEYS_MAX];   /* keys[0] encrypts */
};

size_t ticketkeys_region_size(void)
{
    return sizeof(struct ticketkeys);
}

struct ticketkeys *ticketkeys_init(void *region)
{
    struct ticketkeys *r = region;
    memset(r, 0, sizeof *r);
    __atomic_store_n(&r->magic, TK_MAGIC, __ATOMIC_RELEASE);
    return r;
}

struct ticketkeys *ticketkeys_open(void *region, size_t size)
{
    struct ticketkeys *r = region;
    if (size < sizeof *r || __atomic_load_n(&r->magic, __ATOMIC_ACQUIRE) != TK_MAGIC)
        return NULL;
    return r;
}

int ticketkeys_generate(struct ticket_key *k)
{
    uint8_t buf[TICKET_KEY_FILE_LEN];
    if (getrandom(buf, sizeof buf, 0) != (ssize_t)sizeof buf)
        return -1;
    memcpy(k->name, buf, TICKET_NAME_LEN);
    memcpy(k->secret, buf + TICKET_NAME_LEN, TICKET_SECRET_LEN);
    k->expires = 0;
    return 0;
}

/* The number of keys the ring says it holds, read once and clamped. */
static uint32_t nkeys_of(const struct ticketkeys *r)
{
    uint32_t n = __atomic_load_n(&r->nkeys, __ATOMIC_RELAXED);
    return n < TICKETKEYS_MAX ? n : TICKETKEYS_MAX;
}

/* Writer side of the sequence lock (only the master writes). The counter
 * is made odd whatever it was, so a count left odd by anyone else is
 * mended by the next write. */
static void write_begin(struct ticketkeys *r)
{
    uint32_t seq = __atomic_load_n(&r->seq, __ATOMIC_RELAXED);
    __atomic_store_n(&r->seq, (seq + 1) | 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
}

static void write_end(struct ticketkeys *r)
{
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_add_fetch(&r->seq, 1, __ATOMIC_ACQ_REL);
}

/*
 * This process's last consistent view of a ring's current key: it
 * encrypts (and opens its own tickets) while the ring cannot be read. The
 * master's writes set it, so every child it forks starts with one; each
 * consistent read keeps it up to date.
 */
static struct {
    const struct ticketkeys *ring;
    struct ticket_key key;
} last;

static void remember(const struct ticketkeys *r, const struct ticket_key *current)
{
    last.ring = r;
    last.key = *current;
    last.key.expires = 0;
}

/* The remembered key for r (named name, if name): 0, or -1 if none. */
static int remembered(const struct ticketkeys *r, const uint8_t *name, struct ticket_key *out)
{
    if (last.ring != r || (name && memcmp(last.key.name, name, TICKET_NAME_LEN) != 0))
        return -1;
    *out = last.key;
    return 0;
}

void ticketkeys_rotate(struct ticketkeys *r, const struct ticket_key *fresh, int64_t now,
                       int64_t lifetime)
{
    struct ticket_key keep[TICKETKEYS_MAX];
    size_t n = 0;
    keep[n] = *fresh;
    keep[n++].expires = 0;
    for (uint32_t i = 0, have = nkeys_of(r); i < have && n < TICKETKEYS_MAX; i++) {
        struct ticket_key k = r->keys[i];
        if (i == 0)
            k.expires = now + lifetime;         /* the retiring current key */
        if (k.expires > now)
            keep[n++] = k;
    }
    write_begin(r);
    memcpy(r->keys, keep, n * sizeof keep[0]);
    r->nkeys = (uint32_t)n;
    r->generation++;
    write_end(r);
    remember(r, &keep[0]);
    explicit_bzero(keep, sizeof keep);
}

void ticketkeys_set(struct ticketkeys *r, const struct ticket_key *keys, size_t n)
{
    if (n > TICKETKEYS_MAX)
        n = TICKETKEYS_MAX;
    write_begin(r);
    memcpy(r->keys, keys, n * sizeof keys[0]);
    for (size_t i = 0; i < n; i++)
        r->keys[i].expires = 0;
    r->nkeys = (uint32_t)n;
    r->generation++;
    write_end(r);
    if (n)
        remember(r, &keys[0]);
}

uint64_t ticketkeys_generation(const struct ticketkeys *r)
{
    return __atomic_load_n(&r->generation, __ATOMIC_ACQUIRE);
}

/* Copies the first key that still decrypts at now (named name, if name)
 * out of the ring; its index, or -1. The copy may be torn if the master
 * wrote meanwhile: the caller checks the sequence counter. */
static int find_key(const struct ticketkeys *r, const uint8_t *name, int64_t now,
                    struct ticket_key *out)
{
    for (uint32_t i = 0, n = nkeys_of(r); i < n; i++) {
        if (name && memcmp(r->keys[i].name, name, TICKET_NAME_LEN) != 0)
            continue;
        if (r->keys[i].expires && r->keys[i].expires <= now)
            continue;
        *out = r->keys[i];
        return (int)i;
    }
    return -1;
}

/* Said once per process: the ring could not be read. */
static void complain(uint32_t seq)
{
    static bool said;
    if (said)
        return;
    said = true;
    log_warning("ticket keys: the shared key ring did not hold still for %d reads (sequence "
                "counter %u%s); until it does, tickets are issued under the last key this "
                "process read and only those are accepted (said once)", TICKETKEYS_READ_TRIES,
                seq, seq & 1 ? ", odd: left mid-write" : "");
}

/*
 * Reader side: copies the current key (or the key named name, if name)
 * out of the ring, retrying while the master writes,
 * TICKETKEYS_READ_TRIES times at most (a write takes microseconds: a
 * counter that stays odd was left so by someone else); then from what
 * this process remembers. Returns its index in the ring (0: the current
 * key, or the remembered one), or -1.
 */
static int read_key(struct ticketkeys *r, const uint8_t *name, int64_t now, struct ticket_key *out)
{
    uint32_t s1 = 0;
    for (int tries = 0; tries < TICKETKEYS_READ_TRIES; tries++) {
        if (tries >= 16)
            sched_yield();      /* the master may be off the CPU mid-write */
        s1 = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
        if (s1 & 1)
            continue;
        int found = find_key(r, name, now, out);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&r->seq, __ATOMIC_ACQUIRE) != s1)
            continue;
        if (found == 0 && !name)
            remember(r, out);
        return found;
    }
    complain(s1);
    return remembered(r, name, out);
}

size_t ticketkeys_count(const struct ticketkeys *r, int64_t now)
{
    size_t n = 0;
    for (uint32_t i = 0, have = nkeys_of(r); i < have; i++) {
        int64_t expires = __atomic_load_n(&r->keys[i].expires, __ATOMIC_RELAXED);
        n += !expires || expires > now;
    }
    return n;
}

#define AAD_LEN (34 + TICKET_SCOPE_LEN)

/* name || iv || len || scope */
static void aad(uint8_t out[AAD_LEN], const uint8_t *scope, const uint8_t name[16],
                const uint8_t iv[16], size_t len)
{
    memcpy(out, name, 16);
    memcpy(out + 16, iv, 16);
    out[32] = (uint8_t)(len >> 8);
    out[33] = (uint8_t)len;
    if (scope)
        memcpy(out + 34, scope, TICKET_SCOPE_LEN);
    else
        memset(out + 34, 0, TICKET_SCOPE_LEN);
}

int ticketkeys_encrypt(struct ticketkeys *r, const uint8_t *scope, uint8_t name[16],
                       uint8_t iv[16], uint8_t mac[32], uint8_t *ticket, size_t len)
{
    struct ticket_key k;
    uint8_t ad[AAD_LEN], out[TICKET_MAX_PLAIN];
    if (len > sizeof out || read_key(r, NULL, 0, &k) != 0)
        return -1;
    if (getrandom(iv, 16, 0) != 16)
        return -1;
    memcpy(name, k.name, 16);
    aad(ad, scope, name, iv, len);
    if (wc_ChaCha20Poly1305_Encrypt(k.secret, iv, ad, sizeof ad, ticket, (word32)len, out, mac) != 0)
        return -1;
    memcpy(ticket, out, len);
    /* wolfSSL wants a MAC that is not all zero and checks none of it: the
     * tag fills the first 16 bytes, the key name the rest, and decrypting
     * checks both. */
    memcpy(mac + 16, name, 16);
    memset(&k, 0, sizeof k);
    return 0;
}

/* mac[16..31] must be the key name, which the tag covers (in the AAD):
 * then no byte of the 32 can change without the ticket being refused. */
static bool mac_tail_ok(const uint8_t mac[32], const uint8_t name[16])
{
    uint8_t d = 0;
    for (int i = 0; i < 16; i++)
        d |= mac[16 + i] ^ name[i];
    return d == 0;
}

enum ticket_dec ticketkeys_decrypt(struct ticketkeys *r, const uint8_t *scope,
                                   const uint8_t name[16], const uint8_t iv[16],
                                   const uint8_t mac[32], uint8_t *ticket, size_t len,
                                   int64_t now)
{
    struct ticket_key k;
    uint8_t ad[AAD_LEN], out[TICKET_MAX_PLAIN];
    int at = read_key(r, name, now, &k);
    if (at < 0)
        return TICKET_DEC_UNKNOWN;
    if (len > sizeof out || !mac_tail_ok(mac, name)) {
        memset(&k, 0, sizeof k);
        return TICKET_DEC_BAD;
    }
    aad(ad, scope, name, iv, len);
    int rc = wc_ChaCha20Poly1305_Decrypt(k.secret, iv, ad, sizeof ad, ticket, (word32)len, mac,
                                         out);
    memset(&k, 0, sizeof k);
    if (rc != 0)
        return TICKET_DEC_BAD;
    memcpy(ticket, out, len);
    return at == 0 ? TICKET_DEC_CURRENT : TICKET_DEC_OLDER;
}

int ticketkeys_read_file(const char *path, struct ticket_key *k, char *err, size_t errlen)
{
    uint8_t buf[TICKET_KEY_FILE_LEN + 1];
    char why[512];
    int fd = secretfile_open(path, why, sizeof why);    /* owner-only, as ssh's keys */
    if (fd < 0) {
        snprintf(err, errlen, "ticket key file %s", why);
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n != TICKET_KEY_FILE_LEN) {
        snprintf(err, errlen, "ticket key file '%s': must hold exactly %d bytes (made by "
                 "tlsoffd --gen-ticket-key), has %s%zd", path, TICKET_KEY_FILE_LEN,
                 n > TICKET_KEY_FILE_LEN ? "more than " : "", n < 0 ? 0 : n);
        return -1;
    }
    memcpy(k->name, buf, TICKET_NAME_LEN);
    memcpy(k->secret, buf + TICKET_NAME_LEN, TICKET_SECRET_LEN);
    k->expires = 0;
    memset(buf, 0, sizeof buf);
    return 0;
}

int ticketkeys_write_file(const char *path, char *err, size_t errlen)
{
    struct ticket_key k;
    uint8_t buf[TICKET_KEY_FILE_LEN];
    if (ticketkeys_generate(&k) < 0) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        return -1;
    }
    memcpy(buf, k.name, TICKET_NAME_LEN);
    memcpy(buf + TICKET_NAME_LEN, k.secret, TICKET_SECRET_LEN);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create '%s': %s%s", path, strerror(errno),
                 errno == EEXIST ? " (a key file is never overwritten; remove it first)" : "");
        return -1;
    }
    ssize_t w = write(fd, buf, sizeof buf);
    memset(buf, 0, sizeof buf);
    if (w != (ssize_t)sizeof buf || fsync(fd) < 0 || close(fd) < 0) {
        snprintf(err, errlen, "cannot write '%s': %s", path, strerror(errno));
        unlink(path);
        return -1;
    }
    return 0;
}
