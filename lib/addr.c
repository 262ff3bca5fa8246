#include "addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *s, int *port)
{
    char *end;
    if (*s == '\0')
        return -1;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < 1 || v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

int addr_parse(const char *text, bool allow_names, struct addr *out, char *err, size_t errlen)
{
    char host[256];
    const char *colon, *hstart = text;
    size_t hlen;
    int port;

    memset(out, 0, sizeof *out);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            snprintf(err, errlen, "'%s' is not [IPv6]:port", text);
            return -1;
        }
        hstart = text + 1;
        hlen = (size_t)(close - hstart);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            snprintf(err, errlen, "'%s' has no port (expected host:port)", text);
            return -1;
        }
        hlen = (size_t)(colon - text);
        if (memchr(text, ':', hlen)) {
            snprintf(err, errlen, "'%s': write IPv6 addresses in brackets, as [::1]:443", text);
            return -1;
        }
    }
    if (hlen == 0 || hlen >= sizeof host) {
        snprintf(err, errlen, "'%s' has no host (use \"*\" or 0.0.0.0 for any)", text);
        return -1;
    }
    memcpy(host, hstart, hlen);
    host[hlen] = '\0';
    if (parse_port(colon + 1, &port) < 0) {
        snprintf(err, errlen, "'%s': port must be a number from 1 to 65535", text);
        return -1;
    }

    struct sockaddr_in *s4 = (struct sockaddr_in *)&out->sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
    if (strcmp(host, "*") == 0) {
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_ANY);
    } else if (text[0] == '[') {
        if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1) {
            snprintf(err, errlen, "'%s': '%s' is not an IPv6 address", text, host);
            return -1;
        }
        s6->sin6_family = AF_INET6;
    } else if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
    } else if (allow_names) {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
        int rc = getaddrinfo(host, NULL, &hints, &res);
        if (rc != 0) {
            snprintf(err, errlen, "'%s': cannot resolve '%s': %s", text, host, gai_strerror(rc));
            return -1;
        }
        memcpy(&out->sa, res->ai_addr, res->ai_addrlen);
        freeaddrinfo(res);
    } else {
        snprintf(err, errlen, "'%s': '%s' is not an IP address", text, host);
        return -1;
    }
    if (out->sa.ss_family == AF_INET) {
        s4->sin_port = htons((uint16_t)port);
        out->len = sizeof *s4;
    } else {
        s6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *s6;
    }
    return 0;
}

char *addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        snprintf(buf, len, "%s:%d", ip, ntohs(s4->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%d", ip, ntohs(s6->sin6_port));
    } else {
        snprintf(buf, len, "unknown");
    }
    return buf;
}

int addr_port(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

/* ---- networks ---- */

static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

/* The address of sa in ip (4 or 16 bytes, the rest 0), a mapped IPv6 one
 * as IPv4: its family, or AF_UNSPEC if it has none. */
static sa_family_t ip_of(const struct sockaddr *sa, uint8_t ip[16])
{
    memset(ip, 0, 16);
    if (sa->sa_family == AF_INET) {
        memcpy(ip, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return AF_INET;
    }
    if (sa->sa_family != AF_INET6)
        return AF_UNSPEC;
    const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    if (memcmp(a, mapped_prefix, sizeof mapped_prefix) == 0) {
        memcpy(ip, a + sizeof mapped_prefix, 4);
        return AF_INET;
    }
    memcpy(ip, a, 16);
    return AF_INET6;
}

/* Clears the bits of ip after the first bits; returns whether any was set. */
static bool mask(uint8_t ip[16], unsigned bits)
{
    bool set = false;
    for (unsigned i = bits / 8; i < 16; i++) {
        uint8_t keep = i == bits / 8 ? (uint8_t)(0xff00u >> (bits % 8)) : 0;
        set |= (ip[i] & (uint8_t)~keep) != 0;
        ip[i] &= keep;
    }
    return set;
}

/* "24": digits only, at most max. */
static int parse_bits(const char *s, unsigned max, unsigned *bits)
{
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 3 || s[n] != '\0' || (unsigned)atoi(s) > max)
        return -1;
    *bits = (unsigned)atoi(s);
    return 0;
}

int addr_cidr_parse(const char *text, struct addr_cidr *out, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN], net[ADDR_STRLEN];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);
    uint8_t ip[16] = { 0 };

    memset(out, 0, sizeof *out);
    if (hlen == 0 || hlen >= sizeof host) {
        snprintf(err, errlen, "'%s' is not an address or a network (as 192.0.2.0/24)", text);
        return -1;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    if (inet_pton(AF_INET, host, ip) == 1) {
        out->family = AF_INET;
    } else if (inet_pton(AF_INET6, host, ip) == 1) {
        out->family = AF_INET6;
    } else {
        snprintf(err, errlen, "'%s': '%s' is not an IP address", text, host);
        return -1;
    }
    unsigned max = out->family == AF_INET ? 32 : 128, bits = max;
    if (slash && parse_bits(slash + 1, max, &bits) < 0) {
        snprintf(err, errlen, "'%s': the prefix length must be a number from 0 to %u", text, max);
        return -1;
    }
    if (out->family == AF_INET6 && bits >= 96 && memcmp(ip, mapped_prefix, 12) == 0) {
        memmove(ip, ip + 12, 4);
        memset(ip + 4, 0, 12);
        out->family = AF_INET;
        bits -= 96;
    }
    out->bits = (uint8_t)bits;
    bool host_bits = mask(ip, bits);
    memcpy(out->net, ip, sizeof out->net);
    if (host_bits) {
        snprintf(err, errlen, "'%s' has bits set after the first %u: the network is %s", text,
                 bits, addr_cidr_format(out, net, sizeof net));
        return -1;
    }
    return 0;
}

bool addr_cidr_match(const struct addr_cidr *c, const struct sockaddr *sa)
{
    uint8_t ip[16];
    if (ip_of(sa, ip) != c->family)
        return false;
    mask(ip, c->bits);
    return memcmp(ip, c->net, sizeof ip) == 0;
}

int addr_cidr_of(const struct sockaddr *sa, unsigned v6bits, struct addr_cidr *out)
{
    memset(out, 0, sizeof *out);
    out->family = ip_of(sa, out->net);
    if (out->family == AF_UNSPEC)
        return -1;
    out->bits = (uint8_t)(out->family == AF_INET ? 32 : v6bits < 128 ? v6bits : 128);
    mask(out->net, out->bits);
    return 0;
}

char *addr_cidr_format(const struct addr_cidr *c, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN];
    unsigned host = c->family == AF_INET ? 32 : 128;
    if ((c->family != AF_INET && c->family != AF_INET6) ||
        !inet_ntop(c->family, c->net, ip, sizeof ip))
        snprintf(buf, len, "unknown");
    else if (c->bits == host)
        snprintf(buf, len, "%s", ip);
    else
        snprintf(buf, len, "%s/%u", ip, c->bits);
    return buf;
}
