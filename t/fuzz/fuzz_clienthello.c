/*
 * fuzz_clienthello — client_hello_parse on the bytes a client sends, whole
 * and as a socket reader gets them: a prefix first, then as many bytes as
 * the parser asked for, again and again.
 *
 * Checked: the contract of clienthello.h (a number asked for is more than
 * was given and within CLIENT_HELLO_MAX; -2 comes with an alert and a
 * reason), a decision taken on a prefix stays the same with more bytes
 * behind it, and a server name kept is a lower-case DNS name.
 */
#include <stdlib.h>
#include <string.h>

#include "clienthello.h"
#include "fuzz.h"

/* Parses a reader gives up after (then the whole input is parsed). */
#define READS_MAX 32

static void check_hello(long r, size_t len, const struct client_hello *ch)
{
    FUZZ_ASSERT(r == 0 || r == -1 || r == -2 || (r > 0 && (size_t)r > len));
    FUZZ_ASSERT(r <= CLIENT_HELLO_MAX);
    FUZZ_ASSERT(r != -2 || (ch->alert != 0 && ch->refused && ch->refused[0]));
    size_t n = strnlen(ch->sni, sizeof ch->sni);
    FUZZ_ASSERT(n <= 253);
    FUZZ_ASSERT(!ch->sni_invalid || n == 0);
    for (size_t i = 0; i < n; i++)
        FUZZ_ASSERT(strchr("abcdefghijklmnopqrstuvwxyz0123456789-._", ch->sni[i]));
    if (r == 0)
        for (int m = 0; m < 4; m++)
            (void)client_hello_ecdsa(ch, m & 1, m & 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct client_hello whole, part;
    long r = client_hello_parse(data, size, &whole);
    check_hello(r, size, &whole);

    /* The reader: the first read brings 5 bytes (or all there are). */
    size_t have = size < 5 ? size : 5;
    for (int reads = 0; reads < READS_MAX; reads++) {
        /* The parser owes nothing past len: a copy of exactly have bytes. */
        uint8_t *buf = malloc(have ? have : 1);
        memcpy(buf, data, have);
        long p = client_hello_parse(buf, have, &part);
        free(buf);
        check_hello(p, have, &part);
        if (p <= 0) {                   /* decided: more bytes change nothing */
            FUZZ_ASSERT(p == r);
            FUZZ_ASSERT(p != 0 || memcmp(&part, &whole, sizeof part) == 0);
            FUZZ_ASSERT(p != -2 || (part.alert == whole.alert && part.refused == whole.refused));
            break;
        }
        if ((size_t)p > size) {         /* the client sent no more */
            FUZZ_ASSERT(p == r);
            break;
        }
        have = (size_t)p;
    }
    return 0;
}
