/*
 * fuzz_ticket — session tickets as a client sends them back, and the key
 * ring as a worker reads it.
 *
 * The first byte says what to do:
 *  bit 0   the ticket's key name is the current key's (bit 1: the older
 *          key's), so that the input gets past the name check
 *  bit 2   the MAC's tail is the key name, as ticketkeys_encrypt makes it
 *  bit 3   round trip: the body is encrypted under the ring first, then
 *          one byte of name, IV, MAC or body is flipped (or none); the
 *          decryption must give the body back exactly when none was
 *  bit 4   a scope (else NULL); bit 5: decrypt under another scope
 *  bit 6   the ring is the input's next bytes (the magic kept unless
 *          bit 7), opened with ticketkeys_open, as a worker reads a ring
 *          someone damaged
 * then the name (16), IV (16), MAC (32), the time (2 bytes, seconds past
 * the ring's rotation), for a round trip the byte to flip (2 bytes) and
 * how (1), and the ticket body. The fixed ring holds a current
 * key and an older one that expires 1000 s after the rotation.
 *
 * Checked: no crash or out-of-bounds access; a round trip decrypts under
 * the current key and restores the body; a flipped byte or another scope
 * never decrypts; the key count stays within TICKETKEYS_MAX.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "ticketkeys.h"

#define T0 1700000000000LL      /* ms: the rotation */

static const struct ticket_key older = { .name = "tlsoffd-fuzz-old",
                                         .secret = "0123456789abcdef0123456789abcdef" };
static const struct ticket_key current = { .name = "tlsoffd-fuzz-key",
                                           .secret = "fedcba9876543210fedcba9876543210" };
static const uint8_t scope_a[TICKET_SCOPE_LEN] = "frontend A scope";
static const uint8_t scope_b[TICKET_SCOPE_LEN] = "frontend B scope";

struct ticket {
    uint8_t name[16], iv[16], mac[32];
    uint8_t *body;
    size_t len;
};

/* The ring as the master leaves it after one rotation. */
static struct ticketkeys *fixed_ring(void)
{
    static uint8_t *region;
    if (!region)
        region = malloc(ticketkeys_region_size());
    struct ticketkeys *r = ticketkeys_init(region);
    ticketkeys_set(r, &older, 1);
    ticketkeys_rotate(r, &current, T0, 1000 * 1000);
    return r;
}

/* A ring from the input, in a buffer of exactly the ring's size. */
static struct ticketkeys *input_ring(struct fuzz_in *in, unsigned flags, uint8_t **region)
{
    size_t size = ticketkeys_region_size();
    *region = malloc(size);
    ticketkeys_init(*region);                   /* the magic */
    uint8_t magic[4];
    memcpy(magic, *region, 4);
    fuzz_bytes(in, *region, size);
    if (!(flags & 0x80))
        memcpy(*region, magic, 4);
    return ticketkeys_open(*region, size);
}

/* Encrypts t under r, flips byte flip of name, IV, MAC and body (none if
 * past them), decrypts. Only the fixed ring must decrypt what it made: a
 * damaged one may have no key to encrypt with, or lose it on the way. */
static void round_trip(struct ticketkeys *r, bool fixed, struct ticket *t, const uint8_t *scope,
                       const uint8_t *dscope, size_t flip, uint8_t mask, int64_t now)
{
    uint8_t *plain = malloc(t->len ? t->len : 1);
    memcpy(plain, t->body, t->len);
    if (ticketkeys_encrypt(r, scope, t->name, t->iv, t->mac, t->body, t->len) != 0) {
        FUZZ_ASSERT(!fixed || t->len > TICKET_MAX_PLAIN);
        free(plain);
        return;
    }
    bool flipped = flip < 64 + t->len;
    if (flipped) {
        uint8_t *at = flip < 16 ? &t->name[flip] : flip < 32 ? &t->iv[flip - 16]
                    : flip < 64 ? &t->mac[flip - 32] : &t->body[flip - 64];
        *at ^= mask;
    }
    enum ticket_dec d = ticketkeys_decrypt(r, dscope, t->name, t->iv, t->mac, t->body, t->len,
                                           now);
    if (flipped || scope != dscope) {
        FUZZ_ASSERT(d == TICKET_DEC_BAD || d == TICKET_DEC_UNKNOWN);
    } else if (fixed) {
        FUZZ_ASSERT(d == TICKET_DEC_CURRENT);
        FUZZ_ASSERT(memcmp(plain, t->body, t->len) == 0);
    }
    free(plain);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = { data, size };
    struct ticket t;
    uint8_t *region = NULL;
    unsigned flags = fuzz_byte(&in);
    struct ticketkeys *r = fixed_ring();
    if (flags & 0x40 && !(r = input_ring(&in, flags, &region))) {
        free(region);
        return 0;
    }
    fuzz_bytes(&in, t.name, sizeof t.name);
    fuzz_bytes(&in, t.iv, sizeof t.iv);
    fuzz_bytes(&in, t.mac, sizeof t.mac);
    int64_t now = T0 + 1000 * (int64_t)fuzz_u16(&in);
    size_t flip = fuzz_u16(&in);
    uint8_t mask = (uint8_t)(1 + fuzz_byte(&in) % 255);
    if (flags & 3)
        memcpy(t.name, (flags & 1 ? &current : &older)->name, 16);
    if (flags & 4)
        memcpy(t.mac + 16, t.name, 16);
    t.len = in.left;
    t.body = malloc(t.len ? t.len : 1);         /* exactly the ticket */
    memcpy(t.body, in.p, t.len);
    const uint8_t *scope = flags & 0x10 ? scope_a : NULL;
    const uint8_t *dscope = flags & 0x20 ? scope_b : scope;
    if (flags & 8) {
        round_trip(r, !region, &t, scope, dscope, flip, mask, now);
    } else {
        enum ticket_dec d = ticketkeys_decrypt(r, dscope, t.name, t.iv, t.mac, t.body, t.len, now);
        FUZZ_ASSERT(d <= TICKET_DEC_BAD);
    }
    FUZZ_ASSERT(ticketkeys_count(r, now) <= TICKETKEYS_MAX);
    (void)ticketkeys_generation(r);
    free(t.body);
    free(region);
    return 0;
}
