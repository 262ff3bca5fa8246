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
