/*
 * addr — socket addresses as operators write them: "192.0.2.1:443",
 * "[2001:db8::1]:443", "localhost:8080", "*:443"; and networks (CIDR
 * blocks, "192.0.2.0/24", "2001:db8::/32") and whether a peer is in one.
 *
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack listener
 * reports for an IPv4 client) is the IPv4 address it carries, here and
 * wherever networks are compared.
 */
#ifndef TLSOFFD_ADDR_H
#define TLSOFFD_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct addr {
    struct sockaddr_storage sa;
    socklen_t len;
};

/* Longest formatted address: "[" + INET6_ADDRSTRLEN + "]:" + 5 digits. */
#define ADDR_STRLEN 64

/*
 * Parses "host:port". host is an IPv4 address, an IPv6 address in brackets,
 * "*" (IPv4 any) or, if allow_names, a name resolved now with getaddrinfo
 * (the first address wins). Returns 0, or -1 with a reason in err.
 */
int addr_parse(const char *text, bool allow_names, struct addr *out, char *err, size_t errlen);

/* "192.0.2.1:443" or "[2001:db8::1]:443". Returns buf. */
char *addr_format(const struct sockaddr *sa, char *buf, size_t len);

int addr_port(const struct sockaddr *sa);

/* A network: the first bits bits of net (4 bytes for IPv4, 16 for IPv6);
 * the bits after them are 0. */
struct addr_cidr {
    sa_family_t family;     /* AF_INET or AF_INET6 */
    uint8_t bits;           /* 0..32 or 0..128 */
    uint8_t net[16];
};

/*
 * Parses "192.0.2.0/24", "2001:db8::/32", or an address alone, which is a
 * host ("192.0.2.7" is /32, "::1" is /128). A network written in mapped
 * form, ::ffff:192.0.2.0/120, is the IPv4 one, 192.0.2.0/24. Bits set
 * after the prefix ("192.0.2.7/24") are refused, not masked: they are
 * most often a typo for another network. Returns 0, or -1 with a reason
 * in err.
 */
int addr_cidr_parse(const char *text, struct addr_cidr *out, char *err, size_t errlen);

/* Whether sa's address is in c (a mapped IPv6 peer is matched as IPv4). */
bool addr_cidr_match(const struct addr_cidr *c, const struct sockaddr *sa);

/* The network of sa counting IPv4 addresses one by one (/32) and IPv6 ones
 * by their first v6bits bits (1..128); a mapped peer is IPv4. Returns 0,
 * or -1 if sa is not an IP address. */
int addr_cidr_of(const struct sockaddr *sa, unsigned v6bits, struct addr_cidr *out);

/* "192.0.2.0/24", "2001:db8:1:2::/64"; a host alone without "/32" or
 * "/128". Returns buf. */
char *addr_cidr_format(const struct addr_cidr *c, char *buf, size_t len);

#endif
