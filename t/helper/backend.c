/*
 * backend — a small plain-TCP server for tests and `make demo`.
 *
 *   backend [-m http|echo] [-n NAME] [-l ADDR:PORT]
 *
 * Listens (default 127.0.0.1:0, a free port), prints "PORT <n>" on stdout,
 * and serves each connection in a thread:
 *   echo:  copies every byte back; on EOF shuts down its write side.
 *   http:  one request per connection (Connection: close)
 *          GET /            -> "hello from NAME\n"
 *          GET /bytes/N     -> N bytes of a fixed pattern (byte i = i % 251)
 *          PUT|POST /sha256 -> reads Content-Length bytes (or until EOF),
 *                              answers "<sha256 hex> <count>\n"
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wolfssl/options.h>
#include <wolfssl/wolfcrypt/sha256.h>

#include "addr.h"

static const char *mode = "http";
static const char *name = "backend";

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static void serve_echo(int fd)
{
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
        if (write_all(fd, buf, (size_t)n) < 0)
            return;
    shutdown(fd, SHUT_WR);
}

static void respond(int fd, int status, const char *body, size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nContent-Type: text/plain\r\n"
                     "Connection: close\r\n\r\n", status, status == 200 ? "OK" : "Not Found", len);
    if (write_all(fd, head, (size_t)n) == 0 && len)
        write_all(fd, body, len);
}

static void serve_http(int fd)
{
    char req[8192];
    size_t have = 0;
    char *end = NULL;
    while (!end && have < sizeof req - 1) {
        ssize_t n = recv(fd, req + have, sizeof req - 1 - have, 0);
        if (n <= 0)
            return;
        have += (size_t)n;
        req[have] = '\0';
        end = strstr(req, "\r\n\r\n");
    }
    if (!end)
        return;
    char method[16], path[1024];
    if (sscanf(req, "%15s %1023s", method, path) != 2)
        return;
    if (strcmp(path, "/sha256") == 0) {
        long long want = -1, got = 0;
        for (char *h = strstr(req, "\r\n"); h && h < end; h = strstr(h + 2, "\r\n"))
            if (strncasecmp(h + 2, "Content-Length:", 15) == 0)
                want = atoll(h + 17);
        if (strstr(req, "Expect: 100-continue") || strstr(req, "expect: 100-continue"))
            write_all(fd, "HTTP/1.1 100 Continue\r\n\r\n", 25);
        wc_Sha256 sha;
        unsigned char digest[WC_SHA256_DIGEST_SIZE];
        static __thread char buf[65536];
        wc_InitSha256(&sha);
        size_t extra = have - (size_t)(end + 4 - req);
        wc_Sha256Update(&sha, (unsigned char *)end + 4, (word32)extra);
        got = (long long)extra;
        while (want < 0 || got < want) {
            ssize_t n = recv(fd, buf, sizeof buf, 0);
            if (n <= 0)
                break;
            wc_Sha256Update(&sha, (unsigned char *)buf, (word32)n);
            got += n;
        }
        wc_Sha256Final(&sha, digest);
        char out[WC_SHA256_DIGEST_SIZE * 2 + 32];
        for (int i = 0; i < WC_SHA256_DIGEST_SIZE; i++)
            sprintf(out + 2 * i, "%02x", digest[i]);
        int n = snprintf(out + 64, sizeof out - 64, " %lld\n", got);
        respond(fd, 200, out, (size_t)(64 + n));
    } else if (strncmp(path, "/bytes/", 7) == 0) {
        long long total = atoll(path + 7), sent = 0;
        char head[256];
        static __thread unsigned char buf[251 * 256];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (unsigned char)(i % 251);
        int n = snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nContent-Length: %lld\r\n"
                         "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
                         total);
        if (write_all(fd, head, (size_t)n) < 0)
            return;
        while (sent < total) {
            size_t chunk = (size_t)(total - sent < (long long)sizeof buf ? total - sent
                                                                         : (long long)sizeof buf);
            if (write_all(fd, buf, chunk) < 0)
                return;
            sent += (long long)chunk;
        }
    } else if (strcmp(path, "/") == 0 || strcmp(path, "/healthz") == 0) {
        char body[256];
        int n = snprintf(body, sizeof body, "hello from %s\n", name);
        respond(fd, 200, body, (size_t)n);
    } else {
        respond(fd, 404, "not found\n", 10);
    }
}

static void *conn_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    if (strcmp(mode, "echo") == 0)
        serve_echo(fd);
    else
        serve_http(fd);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *listen_at = "127.0.0.1:0";
    int c;
    while ((c = getopt(argc, argv, "m:n:l:")) != -1) {
        switch (c) {
        case 'm': mode = optarg; break;
        case 'n': name = optarg; break;
        case 'l': listen_at = optarg; break;
        default:
            fprintf(stderr, "usage: backend [-m http|echo] [-n name] [-l addr:port]\n");
            return 2;
        }
    }
    struct addr a;
    char err[256];
    /* Port 0 is not a valid configured port; parse with a placeholder. */
    char spec[300];
    snprintf(spec, sizeof spec, "%s", listen_at);
    char *colon = strrchr(spec, ':');
    bool any_port = colon && strcmp(colon + 1, "0") == 0;
    if (any_port)
        strcpy(colon + 1, "1");
    if (addr_parse(spec, false, &a, err, sizeof err) < 0) {
        fprintf(stderr, "backend: %s\n", err);
        return 2;
    }
    if (any_port)
        ((struct sockaddr_in *)&a.sa)->sin_port = 0;   /* same offset for IPv6 */
    int one = 1, lfd = socket(a.sa.ss_family, SOCK_STREAM, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(lfd, (struct sockaddr *)&a.sa, a.len) < 0 || listen(lfd, 1024) < 0) {
        fprintf(stderr, "backend: %s: %s\n", listen_at, strerror(errno));
        return 1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(lfd, (struct sockaddr *)&ss, &sl);
    printf("PORT %d\n", addr_port((struct sockaddr *)&ss));
    fflush(stdout);
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int fd = accept(lfd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            perror("backend: accept");
            return 1;
        }
        pthread_t t;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, conn_thread, (void *)(intptr_t)fd) != 0)
            close(fd);
        pthread_attr_destroy(&at);
    }
}
