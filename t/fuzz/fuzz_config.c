/*
 * fuzz_config — config_load on a file holding the input.
 *
 * The file is one per process (made with mkstemp in $TMPDIR or /tmp and
 * unlinked at once: config_load reads it by /proc/self/fd/N), rewritten
 * for each input. Kept safe:
 *  - an input with @include is skipped: it could name any file, a FIFO or
 *    /dev/stdin, and libconfig would block reading it;
 *  - names are never looked up (getaddrinfo below answers 127.0.0.1 for
 *    every name), so the fuzzer sends no DNS query and waits for none.
 * Other files a configuration names (certificates, keys, CRLs, the
 * PKCS#11 module, cert_dir) are only checked with access(), stat() or
 * readdir() here: nothing is written, loaded or run.
 *
 * Checked: a refusal says where ("FILE:LINE: ..." or "FILE: ..."), and a
 * configuration loaded refers to upstreams that exist.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "fuzz.h"

static int fd = -1;
static char path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *dir = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/tlsoffd-fuzz-config-XXXXXX", dir && *dir ? dir : "/tmp");
    fd = mkstemp(tmpl);
    if (fd < 0) {
        perror(tmpl);
        exit(1);
    }
    unlink(tmpl);
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    return 0;
}

/* No name service for the loader: every name is 127.0.0.1 (::1 if only
 * IPv6 is asked for). One block each, as glibc's freeaddrinfo frees them;
 * ours frees the same way. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    (void)node;
    (void)service;
    struct { struct addrinfo ai; struct sockaddr_in6 sa; } *b = calloc(1, sizeof *b);
    if (!b)
        return EAI_MEMORY;
    b->ai.ai_socktype = hints ? hints->ai_socktype : 0;
    b->ai.ai_addr = (struct sockaddr *)&b->sa;
    if (hints && hints->ai_family == AF_INET6) {
        b->sa.sin6_family = AF_INET6;
        b->sa.sin6_addr = in6addr_loopback;
        b->ai.ai_addrlen = sizeof(struct sockaddr_in6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&b->sa;
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        b->ai.ai_addrlen = sizeof(struct sockaddr_in);
    }
    b->ai.ai_family = b->sa.sin6_family;
    *res = &b->ai;
    return 0;
}

void freeaddrinfo(struct addrinfo *res)
{
    free(res);
}

static void check_config(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        const struct frontend_conf *fe = &cfg->frontends[i];
        FUZZ_ASSERT(fe->upstream_index < cfg->nupstreams);
        FUZZ_ASSERT(config_frontend_upstream(cfg, fe)->name);
        for (size_t j = 0; j < fe->nroutes; j++)
            FUZZ_ASSERT(config_frontend_route(fe, fe->routes[j].protocol) < cfg->nupstreams);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[CONFIG_ERR_MAX];
    if (memmem(data, size, "@include", 8))
        return 0;
    if (ftruncate(fd, 0) < 0 || pwrite(fd, data, size, 0) != (ssize_t)size) {
        perror(path);
        abort();
    }
    err[0] = '\0';
    struct config *cfg = config_load(path, err, sizeof err);
    if (!cfg) {
        size_t n = strlen(path);
        FUZZ_ASSERT(strncmp(err, path, n) == 0 && err[n] == ':' && err[n + 1]);
        return 0;
    }
    check_config(cfg);
    config_free(cfg);
    return 0;
}
