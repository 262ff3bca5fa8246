/*
 * notify — sd_notify without libsystemd; see notify.h.
 */
#include "notify.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

#define NOTIFY_MAX    2048      /* one datagram; systemd reads far more */
#define STATUS_MAX    1024      /* the STATUS= text, cut there */

/* The socket's address from $NOTIFY_SOCKET; false if unset or unusable. */
static bool notify_address(struct sockaddr_un *sa, socklen_t *len)
{
    const char *path = getenv("NOTIFY_SOCKET");
    size_t n = path ? strlen(path) : 0;
    if (n == 0 || (path[0] != '/' && path[0] != '@') || n >= sizeof sa->sun_path)
        return false;
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    memcpy(sa->sun_path, path, n);
    if (sa->sun_path[0] == '@')
        sa->sun_path[0] = '\0';         /* abstract: no terminating NUL counted */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (path[0] == '/'));
    return true;
}

/* Sends msg; the first failure is logged, later ones are not. */
static void notify_send(const char *msg)
{
    static bool warned;
    struct sockaddr_un sa;
    socklen_t len;
    if (!notify_address(&sa, &len))
        return;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                          len) >= 0) {
        close(fd);
        return;
    }
    if (!warned)
        log_warning("cannot notify systemd at %s: %s (not said again)",
                    getenv("NOTIFY_SOCKET"), strerror(errno));
    warned = true;
    if (fd >= 0)
        close(fd);
}

/* Sends head followed by STATUS=status, the status cut to one line. */
static void notify_with_status(const char *head, const char *status)
{
    char text[STATUS_MAX + 1], msg[NOTIFY_MAX];
    snprintf(text, sizeof text, "%s", status);
    for (char *p = text; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    snprintf(msg, sizeof msg, "%sSTATUS=%s", head, text);
    notify_send(msg);
}

void notify_serving(const char *status)
{
    char head[64];
    snprintf(head, sizeof head, "MAINPID=%d\nREADY=1\n", (int)getpid());
    notify_with_status(head, status);
}

void notify_reloading(void)
{
    char head[96];
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(head, sizeof head, "RELOADING=1\nMONOTONIC_USEC=%llu\n",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    notify_with_status(head, "reloading");
}

void notify_ready(const char *status)
{
    notify_with_status("READY=1\n", status);
}

void notify_status(const char *status)
{
    notify_with_status("", status);
}

void notify_stopping(const char *status)
{
    notify_with_status("STOPPING=1\n", status);
}
