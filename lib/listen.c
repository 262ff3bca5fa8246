#include "listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int listen_open(const struct addr *a, char *err, size_t errlen)
{
    char text[ADDR_STRLEN];
    int one = 1;
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a socket for %s: %s",
                 addr_format((const struct sockaddr *)&a->sa, text, sizeof text), strerror(errno));
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (a->sa.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s",
                 addr_format((const struct sockaddr *)&a->sa, text, sizeof text), strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int listen_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return addr_port((struct sockaddr *)&ss);
}

int listen_queued(int fd, int *backlog)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    /* On a listener, the kernel reports the accept queue as unacked
     * (its length) and sacked (its limit). */
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 || ti.tcpi_state != TCP_LISTEN)
        return -1;
    if (backlog)
        *backlog = (int)ti.tcpi_sacked;
    return (int)ti.tcpi_unacked;
}
