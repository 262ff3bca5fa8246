/*
 * addr — socket addresses as operators write them: "192.0.2.1:443",
 * "[2001:db8::1]:443", "localhost:8080", "*:443".
 */
#ifndef TLSOFFD_ADDR_H
#define TLSOFFD_ADDR_H

#include <stdbool.h>
#include <stddef.h>
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

#endif
