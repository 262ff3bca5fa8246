/*
 * keyproto — the messages between a process that needs a signature and a
 * key process: a rendezvous datagram that hands over a channel (one end of
 * a SOCK_SEQPACKET socket pair), then requests and replies on it, one
 * message each, fixed layout, every field checked by the reader.
 *
 * A request is "sign this with key N": the operation and the bytes wolfSSL
 * gives a PK callback (a digest, or an RSA DigestInfo), never a key, never
 * raw RSA. A reply carries the signature or a status.
 */
#ifndef TLSOFFD_KEYPROTO_H
#define TLSOFFD_KEYPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "keyops.h"

#define KEYPROTO_MAGIC      0x746b7031u     /* "tkp1" */
#define KEYPROTO_IN_MAX     128     /* a SHA-512 DigestInfo is 83 bytes */
#define KEYPROTO_SIG_MAX    1024    /* an RSA-8192 signature */

/* The rendezvous datagram, sent with one descriptor: the channel. */
struct keyproto_hello {
    uint32_t magic;
};

struct keyproto_req {
    uint32_t magic;
    uint32_t id;            /* echoed in the reply */
    uint32_t key;           /* the configuration's key table (keys.list) */
    uint8_t op;             /* KEY_OP_* */
    uint8_t hash;           /* RSA-PSS: enum wc_HashType */
    uint8_t mgf;            /* RSA-PSS: WC_MGF1* */
    uint8_t pad;
    uint16_t len;           /* bytes of in */
    uint16_t pad2;
    uint8_t in[KEYPROTO_IN_MAX];
};

enum keyproto_status {
    KEYPROTO_OK = 0,
    KEYPROTO_BAD_REQUEST,   /* not a request this protocol knows */
    KEYPROTO_NO_KEY,        /* no such key, or not of that kind */
    KEYPROTO_FAILED,        /* the signature could not be made */
};

struct keyproto_rep {
    uint32_t magic;
    uint32_t id;
    uint32_t status;        /* enum keyproto_status */
    uint16_t len;           /* bytes of sig */
    uint16_t pad;
    uint8_t sig[KEYPROTO_SIG_MAX];
};

/* The bytes of r to send: its header and r->len bytes of in or sig. */
size_t keyproto_req_size(const struct keyproto_req *r);
size_t keyproto_rep_size(const struct keyproto_rep *r);

/*
 * Reads a request of n bytes from buf into r. 0, or -1 with why (static
 * text) if it is not one: wrong size or magic, an unknown operation, or an
 * input that operation never has (an ECDSA digest of 33 bytes, a PSS hash
 * this protocol does not sign with, a DigestInfo that is not one).
 */
int keyproto_parse_req(const void *buf, size_t n, struct keyproto_req *r, const char **why);
/* Reads a reply to request id; 0, or -1 with why. */
int keyproto_parse_rep(const void *buf, size_t n, uint32_t id, struct keyproto_rep *r,
                       const char **why);
/* The length of a digest of enum wc_HashType hash; 0 if not one we sign. */
size_t keyproto_hash_len(int hash);
const char *keyproto_status_name(uint32_t status);

#endif
