#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

/* v2 constants, named as in the spec (section 2.2). */
static const uint8_t v2_signature[12] = {
    0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A
};

enum {
    PP2_VERSION_PROXY = 0x21,           /* version 2, command PROXY */
    PP2_FAM_UNSPEC = 0x00,
    PP2_FAM_TCP4 = 0x11,
    PP2_FAM_TCP6 = 0x21,
    PP2_TYPE_ALPN = 0x01,
    PP2_TYPE_AUTHORITY = 0x02,
    PP2_TYPE_SSL = 0x20,
    PP2_SUBTYPE_SSL_VERSION = 0x21,
    PP2_SUBTYPE_SSL_CN = 0x22,
    PP2_SUBTYPE_SSL_CIPHER = 0x23,
    PP2_SUBTYPE_SSL_SIG_ALG = 0x24,
    PP2_SUBTYPE_SSL_KEY_ALG = 0x25,
    PP2_CLIENT_SSL = 0x01,
    PP2_CLIENT_CERT_CONN = 0x02,
    PP2_CLIENT_CERT_SESS = 0x04,
};

#define V2_HEADER_LEN 16                /* signature, ver_cmd, fam, len */

/* One side of the connection, an IPv4-mapped IPv6 address taken as IPv4. */
struct endpoint {
    int family;                         /* AF_INET, AF_INET6, or AF_UNSPEC: not IP */
    uint8_t addr[16];                   /* network order; 4 bytes for AF_INET */
    uint16_t port;                      /* network order */
};

static void endpoint_of(const struct sockaddr *sa, struct endpoint *ep)
{
    memset(ep, 0, sizeof *ep);
    ep->family = AF_UNSPEC;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        ep->family = AF_INET;
        memcpy(ep->addr, &s4->sin_addr, 4);
        ep->port = s4->sin_port;
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            ep->family = AF_INET;
            memcpy(ep->addr, &s6->sin6_addr.s6_addr[12], 4);
        } else {
            ep->family = AF_INET6;
            memcpy(ep->addr, &s6->sin6_addr, 16);
        }
        ep->port = s6->sin6_port;
    }
}

/* Both sides; returns their common family, or AF_UNSPEC if they differ. */
static int endpoints(const struct proxy_info *pi, struct endpoint *src, struct endpoint *dst)
{
    endpoint_of(pi->src, src);
    endpoint_of(pi->dst, dst);
    return src->family == dst->family ? src->family : AF_UNSPEC;
}

static bool set(const char *s)
{
    return s && *s;
}

ssize_t proxyproto_v1(const struct proxy_info *pi, char *buf, size_t len)
{
    struct endpoint src, dst;
    int family = endpoints(pi, &src, &dst), n;

    if (family == AF_UNSPEC) {
        n = snprintf(buf, len, "PROXY UNKNOWN\r\n");
    } else {
        char sip[INET6_ADDRSTRLEN], dip[INET6_ADDRSTRLEN];
        inet_ntop(family, src.addr, sip, sizeof sip);
        inet_ntop(family, dst.addr, dip, sizeof dip);
        n = snprintf(buf, len, "PROXY %s %s %s %u %u\r\n", family == AF_INET ? "TCP4" : "TCP6",
                     sip, dip, (unsigned)ntohs(src.port), (unsigned)ntohs(dst.port));
    }
    return n >= 0 && (size_t)n < len ? n : -1;
}

/* A bounded writer: a write that does not fit, or a length that does not
 * fit its 16 bits, fails it for good. */
struct out {
    uint8_t *buf;
    size_t len, pos;
    bool failed;
};

static void put(struct out *o, const void *p, size_t n)
{
    if (o->failed || n > o->len - o->pos) {
        o->failed = true;
        return;
    }
    memcpy(o->buf + o->pos, p, n);
    o->pos += n;
}

static void put_u8(struct out *o, uint8_t v)
{
    put(o, &v, 1);
}

static void put_u16(struct out *o, uint16_t v)
{
    uint16_t be = htons(v);
    put(o, &be, 2);
}

static void put_u32(struct out *o, uint32_t v)
{
    uint32_t be = htonl(v);
    put(o, &be, 4);
}

/* Stores at `at` the number of bytes written since `from`, as 16 bits. */
static void fill_len(struct out *o, size_t at, size_t from)
{
    if (o->failed)
        return;
    size_t n = o->pos - from;
    if (n > UINT16_MAX) {
        o->failed = true;
        return;
    }
    o->buf[at] = (uint8_t)(n >> 8);
    o->buf[at + 1] = (uint8_t)n;
}

/* A TLV is type, 16-bit length, value: tlv_begin writes the first two and
 * returns where the TLV starts, tlv_end fills in the length. */
static size_t tlv_begin(struct out *o, uint8_t type)
{
    size_t at = o->pos;
    put_u8(o, type);
    put_u16(o, 0);
    return at;
}

static void tlv_end(struct out *o, size_t at)
{
    fill_len(o, at + 1, at + 3);
}

static void tlv_str(struct out *o, uint8_t type, const char *s)
{
    if (!set(s))
        return;
    size_t at = tlv_begin(o, type);
    put(o, s, strlen(s));
    tlv_end(o, at);
}

ssize_t proxyproto_v2(const struct proxy_info *pi, uint8_t *buf, size_t len)
{
    struct out o = { .buf = buf, .len = len };
    struct endpoint src, dst;
    int family = endpoints(pi, &src, &dst);

    put(&o, v2_signature, sizeof v2_signature);
    put_u8(&o, PP2_VERSION_PROXY);
    put_u8(&o, family == AF_INET ? PP2_FAM_TCP4 : family == AF_INET6 ? PP2_FAM_TCP6
                                                                     : PP2_FAM_UNSPEC);
    put_u16(&o, 0);                     /* length of what follows: filled in last */
    if (family != AF_UNSPEC) {
        size_t alen = family == AF_INET ? 4 : 16;
        put(&o, src.addr, alen);
        put(&o, dst.addr, alen);
        put(&o, &src.port, 2);
        put(&o, &dst.port, 2);
    }
    tlv_str(&o, PP2_TYPE_ALPN, pi->alpn);
    tlv_str(&o, PP2_TYPE_AUTHORITY, pi->authority);
    if (set(pi->tls_version)) {
        size_t at = tlv_begin(&o, PP2_TYPE_SSL);
        put_u8(&o, PP2_CLIENT_SSL | (pi->client_cert_conn ? PP2_CLIENT_CERT_CONN : 0) |
                       (pi->client_cert_sess ? PP2_CLIENT_CERT_SESS : 0));
        put_u32(&o, pi->verify);
        tlv_str(&o, PP2_SUBTYPE_SSL_VERSION, pi->tls_version);
        tlv_str(&o, PP2_SUBTYPE_SSL_CN, pi->client_cn);
        tlv_str(&o, PP2_SUBTYPE_SSL_CIPHER, pi->cipher);
        tlv_str(&o, PP2_SUBTYPE_SSL_SIG_ALG, pi->sig_alg);
        tlv_str(&o, PP2_SUBTYPE_SSL_KEY_ALG, pi->key_alg);
        tlv_end(&o, at);
    }
    fill_len(&o, V2_HEADER_LEN - 2, V2_HEADER_LEN);
    return o.failed ? -1 : (ssize_t)o.pos;
}
