/*
 * fuzz.h — what the libFuzzer targets in t/fuzz/ share.
 */
#ifndef TLSOFFD_FUZZ_H
#define TLSOFFD_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A property of the code under test that does not hold: a crash, which
 * libFuzzer reports (and saves the input of) like any other. */
#define FUZZ_ASSERT(cond)                                                           \
    do {                                                                            \
        if (!(cond)) {                                                              \
            fprintf(stderr, "%s:%d: fuzz assertion failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                               \
            abort();                                                                \
        }                                                                           \
    } while (0)

/* Reads the input front to back; past its end every read is 0. */
struct fuzz_in {
    const uint8_t *p;
    size_t left;
};

static inline unsigned fuzz_byte(struct fuzz_in *in)
{
    if (in->left == 0)
        return 0;
    in->left--;
    return *in->p++;
}

static inline unsigned fuzz_u16(struct fuzz_in *in)
{
    unsigned hi = fuzz_byte(in);
    return hi << 8 | fuzz_byte(in);
}

/* Up to n bytes into out (the rest zeros); how many came from the input. */
static inline size_t fuzz_bytes(struct fuzz_in *in, void *out, size_t n)
{
    size_t k = n < in->left ? n : in->left;
    for (size_t i = 0; i < n; i++)
        ((uint8_t *)out)[i] = i < k ? in->p[i] : 0;
    in->p += k;
    in->left -= k;
    return k;
}

#endif
