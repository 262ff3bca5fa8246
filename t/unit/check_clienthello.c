#include "unit.h"

#include <stdbool.h>
#include <stdint.h>

#include "clienthello.h"

/* ---- a byte-by-byte ClientHello builder */

struct bb {
    uint8_t d[2 * CLIENT_HELLO_MAX];
    size_t n;
};

static void put8(struct bb *b, unsigned v)
{
    ck_assert_uint_lt(b->n, sizeof b->d);
    b->d[b->n++] = (uint8_t)v;
}

static void put16(struct bb *b, unsigned v)
{
    put8(b, v >> 8);
    put8(b, v & 0xff);
}

static void putn(struct bb *b, const void *p, size_t n)
{
    ck_assert_uint_le(b->n + n, sizeof b->d);
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

/* Reserves a length field of width bytes; close() fills it in. */
static size_t open_len(struct bb *b, int width)
{
    size_t at = b->n;
    for (int i = 0; i < width; i++)
        put8(b, 0);
    return at;
}

static void close_len(struct bb *b, size_t at, int width)
{
    size_t v = b->n - at - (size_t)width;
    for (int i = width - 1; i >= 0; i--, v >>= 8)
        b->d[at + (size_t)i] = (uint8_t)(v & 0xff);
    ck_assert_uint_eq(v, 0);     /* it fitted */
}

#define END 0xffffffffu          /* terminates the uint16 lists below */

struct spec {
    const char *sni;             /* host_name; NULL: no server_name extension */
    size_t sni_len;              /* if nonzero, the length of sni (may hold NULs) */
    const unsigned *suites;      /* END-terminated; NULL: a default RSA+ECDSA mix */
    const unsigned *sigalgs;     /* END-terminated; NULL: no signature_algorithms */
    const unsigned *versions;    /* END-terminated; NULL: no supported_versions */
    bool no_exts;                /* stop after compression methods */
    size_t padding;              /* a padding extension (21) of this many bytes */
    const uint8_t *extra;        /* extensions appended as they are (type, length, body) */
    size_t extra_len;
};

static const unsigned default_suites[] = { 0x1301, 0xc02b, 0xc02f, 0x009c, END };
static const unsigned v13[] = { 0x0304, 0x0303, END };
static const unsigned v12[] = { 0x0303, END };

/* The handshake message (type 1, 3-byte length, body). */
static void handshake(struct bb *b, const struct spec *s)
{
    put8(b, 1);
    size_t hlen = open_len(b, 3);
    put16(b, 0x0303);                                   /* legacy_version */
    for (int i = 0; i < 32; i++)                        /* random */
        put8(b, (unsigned)(0xa0 + i));
    put8(b, 32);                                        /* legacy_session_id */
    for (int i = 0; i < 32; i++)
        put8(b, (unsigned)(0x50 + i));
    size_t sl = open_len(b, 2);
    for (const unsigned *p = s->suites ? s->suites : default_suites; *p != END; p++)
        put16(b, *p);
    close_len(b, sl, 2);
    put8(b, 1);                                         /* compression: null */
    put8(b, 0);
    if (s->no_exts)
        goto done;
    size_t el = open_len(b, 2);
    /* supported_groups (10), skipped by the parser */
    put16(b, 10);
    put16(b, 6);
    put16(b, 4);
    put16(b, 0x001d);
    put16(b, 0x0017);
    if (s->sni) {
        size_t len = s->sni_len ? s->sni_len : strlen(s->sni);
        put16(b, 0);
        size_t xl = open_len(b, 2);
        size_t ll = open_len(b, 2);
        put8(b, 0);                                     /* host_name */
        put16(b, (unsigned)len);
        putn(b, s->sni, len);
        close_len(b, ll, 2);
        close_len(b, xl, 2);
    }
    if (s->sigalgs) {
        put16(b, 13);
        size_t xl = open_len(b, 2);
        size_t ll = open_len(b, 2);
        for (const unsigned *p = s->sigalgs; *p != END; p++)
            put16(b, *p);
        close_len(b, ll, 2);
        close_len(b, xl, 2);
    }
    if (s->versions) {
        put16(b, 43);
        size_t xl = open_len(b, 2);
        size_t ll = open_len(b, 1);
        for (const unsigned *p = s->versions; *p != END; p++)
            put16(b, *p);
        close_len(b, ll, 1);
        close_len(b, xl, 2);
    }
    /* an unknown extension after the interesting ones */
    put16(b, 0xfe0d);
    put16(b, 3);
    put8(b, 1);
    put8(b, 2);
    put8(b, 3);
    if (s->extra)
        putn(b, s->extra, s->extra_len);
    if (s->padding) {
        put16(b, 21);
        put16(b, (unsigned)s->padding);
        for (size_t i = 0; i < s->padding; i++)
            put8(b, 0);
    }
    close_len(b, el, 2);
done:
    close_len(b, hlen, 3);
}

/* A whole record: 22 03 01 len, then the handshake message. */
static size_t build(struct bb *b, const struct spec *s)
{
    b->n = 0;
    put8(b, 22);
    put16(b, 0x0301);
    size_t rl = open_len(b, 2);
    handshake(b, s);
    close_len(b, rl, 2);
    return b->n;
}

/* Parses exactly len bytes from a heap copy, so ASan sees any over-read. */
static long parse(const uint8_t *buf, size_t len, struct client_hello *ch)
{
    uint8_t *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(copy);
    if (len)
        memcpy(copy, buf, len);
    long r = client_hello_parse(copy, len, ch);
    free(copy);
    return r;
}

static struct client_hello parse_ok(const struct spec *s)
{
    static struct bb b;
    struct client_hello ch;
    size_t n = build(&b, s);
    ck_assert_int_eq(parse(b.d, n, &ch), 0);
    ck_assert(ch.complete);
    return ch;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (; hex[0] && hex[1]; hex += 2) {
        unsigned v;
        ck_assert_int_eq(sscanf(hex, "%2x", &v), 1);
        ck_assert_uint_lt(n, cap);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* ---- server name */

START_TEST(sni_lowercased)
{
    struct client_hello ch = parse_ok(&(struct spec){ .sni = "WWW.Example.TEST" });
    ck_assert_str_eq(ch.sni, "www.example.test");
    ck_assert(!ch.sni_invalid);
    ch = parse_ok(&(struct spec){ .sni = "a_b-9.example" });
    ck_assert_str_eq(ch.sni, "a_b-9.example");
    ck_assert(!ch.sni_invalid);
    ch = parse_ok(&(struct spec){ .sni = "x" });
    ck_assert_str_eq(ch.sni, "x");
    ck_assert(!ch.sni_invalid);
}
END_TEST

START_TEST(sni_absent)
{
    struct client_hello ch = parse_ok(&(struct spec){ .versions = v13 });
    ck_assert_str_eq(ch.sni, "");
    ck_assert(!ch.sni_invalid);
    ck_assert(ch.tls13);
    ch = parse_ok(&(struct spec){ .no_exts = true });
    ck_assert_str_eq(ch.sni, "");
    ck_assert(!ch.sni_invalid);
    ck_assert(!ch.tls13);
    ck_assert(!ch.sigalgs);
}
END_TEST

START_TEST(sni_bad_chars)
{
    static const char *const bad[] = {
        "www.example.test.", "a b.example", "a/b.example", "evil.test/", " x",
        "x:443", "a@b", "a\\b", "\xc3\xa9t\xc3\xa9.example", ".", "a*.test",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct client_hello ch = parse_ok(&(struct spec){ .sni = bad[i] });
        ck_assert_msg(ch.sni_invalid, "sni \"%s\" not flagged invalid", bad[i]);
        ck_assert_msg(ch.sni[0] == '\0', "sni \"%s\" left \"%s\"", bad[i], ch.sni);
    }
    /* an embedded NUL */
    struct client_hello ch = parse_ok(&(struct spec){ .sni = "a\0b.test", .sni_len = 8 });
    ck_assert(ch.sni_invalid);
    ck_assert_str_eq(ch.sni, "");
    /* an empty host_name */
    static struct bb b;
    size_t n = build(&b, &(struct spec){ .sni = "", .sni_len = 0 });
    ck_assert_int_eq(parse(b.d, n, &ch), 0);
    ck_assert(ch.sni_invalid);
    ck_assert_str_eq(ch.sni, "");
}
END_TEST

static char *long_name(size_t len)
{
    char *s = malloc(len + 1);
    ck_assert_ptr_nonnull(s);
    for (size_t i = 0; i < len; i++)
        s[i] = (i % 10 == 9) ? '.' : (char)('a' + i % 26);
    s[len] = '\0';
    if (s[len - 1] == '.')
        s[len - 1] = 'z';
    return s;
}

START_TEST(sni_long_ok)
{
    /* 253 characters: the longest DNS name (without the root dot). */
    char *name = long_name(253);
    struct client_hello ch = parse_ok(&(struct spec){ .sni = name });
    ck_assert(!ch.sni_invalid);
    ck_assert_str_eq(ch.sni, name);
    free(name);
}
END_TEST

/* 254 and 255 bytes still fit in sni[], but a DNS name has at most 253
 * characters; 256 and more would not fit. */
START_TEST(sni_too_long)
{
    static const size_t lens[] = { 254, 255, 256, 257, 300, 1000, 4000 };
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *name = long_name(lens[i]);
        struct client_hello ch = parse_ok(&(struct spec){ .sni = name });
        ck_assert_msg(ch.sni_invalid, "sni of %zu bytes not flagged invalid", lens[i]);
        ck_assert_str_eq(ch.sni, "");
        free(name);
    }
}
END_TEST

/* ---- ECDSA capability */

START_TEST(tls13_ecdsa)
{
    static const unsigned sig[] = { 0x0804, 0x0403, 0x0401, END };
    struct client_hello ch = parse_ok(
        &(struct spec){ .sni = "a.test", .versions = v13, .sigalgs = sig });
    ck_assert(ch.tls13);
    ck_assert(ch.sigalgs);
    ck_assert(ch.ecdsa_sig13);
    ck_assert(client_hello_ecdsa(&ch, true, true));
    ck_assert(client_hello_ecdsa(&ch, false, true));
    /* P-384 and P-521 count too */
    static const unsigned sig384[] = { 0x0503, END };
    ch = parse_ok(&(struct spec){ .versions = v13, .sigalgs = sig384 });
    ck_assert(client_hello_ecdsa(&ch, false, true));
    static const unsigned sig521[] = { 0x0603, END };
    ch = parse_ok(&(struct spec){ .versions = v13, .sigalgs = sig521 });
    ck_assert(client_hello_ecdsa(&ch, false, true));
}
END_TEST

START_TEST(tls13_rsa_only)
{
    static const unsigned sig[] = { 0x0804, 0x0401, END };
    struct client_hello ch = parse_ok(&(struct spec){ .versions = v13, .sigalgs = sig });
    ck_assert(ch.tls13);
    ck_assert(!ch.ecdsa_sig13);
    ck_assert(!ch.ecdsa_sig12);
    ck_assert(!client_hello_ecdsa(&ch, true, true));
    ck_assert(!client_hello_ecdsa(&ch, false, true));
    ck_assert(!client_hello_ecdsa(&ch, true, false));   /* 0xc02b offered, but no ECDSA sigalg */
    /* TLS 1.3 only: 0x0203 (ecdsa_sha1) is not a TLS 1.3 ECDSA scheme */
    static const unsigned sha1[] = { 0x0804, 0x0203, END };
    ch = parse_ok(&(struct spec){ .versions = v13, .sigalgs = sha1 });
    ck_assert(!client_hello_ecdsa(&ch, false, true));
    ck_assert(ch.ecdsa_sig12);
}
END_TEST

START_TEST(tls12_no_sigalgs)
{
    static const unsigned suites[] = { 0xc02b, 0x009c, END };
    struct client_hello ch = parse_ok(&(struct spec){ .suites = suites });
    ck_assert(!ch.tls13);
    ck_assert(!ch.sigalgs);
    ck_assert(ch.ecdsa_suite12);
    ck_assert(client_hello_ecdsa(&ch, true, false));
    ck_assert(client_hello_ecdsa(&ch, true, true));
    ck_assert(!client_hello_ecdsa(&ch, false, true));
    /* the same with no extensions at all */
    ch = parse_ok(&(struct spec){ .suites = suites, .no_exts = true });
    ck_assert(client_hello_ecdsa(&ch, true, true));
    ck_assert(!client_hello_ecdsa(&ch, false, true));
    /* each ECDHE-ECDSA suite on its own */
    static const unsigned each[] = { 0xc02b, 0xc02c, 0xcca9, 0xc023, 0xc024,
                                     0xc009, 0xc00a, 0xc0ac, 0xc0ad };
    for (size_t i = 0; i < sizeof each / sizeof each[0]; i++) {
        unsigned one[] = { each[i], END };
        ch = parse_ok(&(struct spec){ .suites = one, .versions = v12 });
        ck_assert_msg(client_hello_ecdsa(&ch, true, false), "suite %04x", each[i]);
    }
}
END_TEST

START_TEST(tls12_sigalgs)
{
    static const unsigned suites[] = { 0xc02b, END };
    static const unsigned ecdsa[] = { 0x0401, 0x0403, END };
    struct client_hello ch =
        parse_ok(&(struct spec){ .suites = suites, .sigalgs = ecdsa, .versions = v12 });
    ck_assert(client_hello_ecdsa(&ch, true, false));
    static const unsigned sha1[] = { 0x0201, 0x0203, END };       /* (sha1, ecdsa) */
    ch = parse_ok(&(struct spec){ .suites = suites, .sigalgs = sha1 });
    ck_assert(client_hello_ecdsa(&ch, true, false));
    static const unsigned rsa[] = { 0x0401, 0x0804, 0x0201, END };
    ch = parse_ok(&(struct spec){ .suites = suites, .sigalgs = rsa, .versions = v12 });
    ck_assert(!client_hello_ecdsa(&ch, true, false));
    ck_assert(!client_hello_ecdsa(&ch, true, true));
}
END_TEST

START_TEST(tls12_rsa_suites)
{
    static const unsigned suites[] = { 0xc02f, 0xc030, 0x009c, 0x002f, END };
    struct client_hello ch = parse_ok(&(struct spec){ .suites = suites });
    ck_assert(!ch.ecdsa_suite12);
    ck_assert(!client_hello_ecdsa(&ch, true, true));
    ck_assert(!client_hello_ecdsa(&ch, true, false));
    static const unsigned sig[] = { 0x0403, 0x0401, END };
    ch = parse_ok(&(struct spec){ .suites = suites, .sigalgs = sig, .versions = v12 });
    ck_assert(!client_hello_ecdsa(&ch, true, true));
}
END_TEST

START_TEST(tls13_client_tls12_server)
{
    /* A TLS 1.3 client with ECDSA sigalgs, but the server allows only 1.2:
     * the 1.2 rules decide (the suites). */
    static const unsigned sig[] = { 0x0403, 0x0804, END };
    static const unsigned ecdsa_suites[] = { 0x1301, 0xc02b, 0xc02f, END };
    static const unsigned rsa_suites[] = { 0x1301, 0x1302, 0xc02f, END };
    struct client_hello ch =
        parse_ok(&(struct spec){ .suites = ecdsa_suites, .sigalgs = sig, .versions = v13 });
    ck_assert(client_hello_ecdsa(&ch, true, false));
    ch = parse_ok(&(struct spec){ .suites = rsa_suites, .sigalgs = sig, .versions = v13 });
    ck_assert(client_hello_ecdsa(&ch, false, true));
    ck_assert(!client_hello_ecdsa(&ch, true, false));
    /* and the other way: RSA-only TLS 1.3 sigalgs, but an ECDSA pair for 1.2 is absent too */
    static const unsigned rsa_sig[] = { 0x0804, 0x0401, END };
    ch = parse_ok(&(struct spec){ .suites = ecdsa_suites, .sigalgs = rsa_sig, .versions = v13 });
    ck_assert(!client_hello_ecdsa(&ch, true, false));
    /* neither version allowed */
    ch = parse_ok(&(struct spec){ .suites = ecdsa_suites, .sigalgs = sig, .versions = v13 });
    ck_assert(!client_hello_ecdsa(&ch, false, false));
}
END_TEST

/* ---- framing */

START_TEST(incomplete)
{
    static struct bb b;
    struct client_hello ch;
    size_t n = build(&b, &(struct spec){ .sni = "a.test", .versions = v13 });
    ck_assert_int_eq(parse(b.d, 0, &ch), 5);
    ck_assert_int_eq(parse(b.d, 3, &ch), 5);
    ck_assert_int_eq(parse(b.d, 4, &ch), 5);
    ck_assert_int_eq(parse(b.d, 5, &ch), (long)n);
    ck_assert_int_eq(parse(b.d, n - 1, &ch), (long)n);
    ck_assert_int_eq(parse(b.d, n, &ch), 0);

    /* a header announcing 300 bytes, 100 present */
    uint8_t hdr[105] = { 22, 3, 1, 0x01, 0x2c, 1 };
    ck_assert_int_eq(parse(hdr, sizeof hdr, &ch), 305);
    /* the largest record */
    uint8_t big[5] = { 22, 3, 3, 0x40, 0x00 };
    ck_assert_int_eq(parse(big, sizeof big, &ch), 5 + 16384);
}
END_TEST

START_TEST(not_handshake)
{
    struct client_hello ch;
    ck_assert_int_eq(parse((const uint8_t *)"GET / HTTP/1.1\r\n", 16, &ch), -1);
    ck_assert_int_eq(parse((const uint8_t *)"GET /", 5, &ch), -1);
    /* application data, alert, change_cipher_spec records */
    static const uint8_t app[] = { 23, 3, 3, 0, 1, 0 };
    static const uint8_t alert[] = { 21, 3, 3, 0, 2, 2, 40 };
    static const uint8_t ccs[] = { 20, 3, 3, 0, 1, 1 };
    static const uint8_t zero_type[] = { 0, 3, 3, 0, 3, 'a', 'b', 'c' };
    /* A TLS record other than an alert before the hello: unexpected_message. */
    ck_assert_int_eq(parse(app, sizeof app, &ch), -2);
    ck_assert_int_eq(ch.alert, 10);
    ck_assert_int_eq(parse(ccs, sizeof ccs, &ch), -2);
    ck_assert_int_eq(ch.alert, 10);
    ck_assert_int_eq(parse(zero_type, sizeof zero_type, &ch), -2);
    ck_assert_int_eq(ch.alert, 10);
    ck_assert_int_eq(parse(alert, sizeof alert, &ch), -1);
    /* SSLv2-style hello, and a major version other than 3 */
    static const uint8_t v2[] = { 0x80, 0x2e, 0x01, 0x03, 0x01, 0x00 };
    static const uint8_t major2[] = { 22, 2, 0, 0, 4, 1, 0, 0, 0 };
    ck_assert_int_eq(parse(v2, sizeof v2, &ch), -1);
    ck_assert_int_eq(parse(major2, sizeof major2, &ch), -1);
    /* the record type is checked before waiting for the record */
    static const uint8_t app_hdr[] = { 23, 3, 3, 0x10, 0x00 };
    ck_assert_int_eq(parse(app_hdr, sizeof app_hdr, &ch), -2);
}
END_TEST

START_TEST(not_client_hello)
{
    static struct bb b;
    struct client_hello ch;
    size_t n = build(&b, &(struct spec){ .sni = "a.test" });
    static const uint8_t types[] = { 0, 2, 4, 11, 20, 255 };
    for (size_t i = 0; i < sizeof types; i++) {
        b.d[5] = types[i];
        ck_assert_int_eq(parse(b.d, n, &ch), -1);
    }
}
END_TEST

START_TEST(bad_record_length)
{
    struct client_hello ch;
    /* An empty handshake record: unexpected_message (RFC 8446 section 5.1);
     * one over 2^14 bytes: record_overflow. */
    static const uint8_t zero[] = { 22, 3, 1, 0, 0 };
    ck_assert_int_eq(parse(zero, sizeof zero, &ch), -2);
    ck_assert_int_eq(ch.alert, 10);
    static const uint8_t over[] = { 22, 3, 1, 0x40, 0x01 };     /* 16385 */
    ck_assert_int_eq(parse(over, sizeof over, &ch), -2);
    ck_assert_int_eq(ch.alert, 22);
    static const uint8_t huge[] = { 22, 3, 1, 0xff, 0xff };
    ck_assert_int_eq(parse(huge, sizeof huge, &ch), -2);
    ck_assert_int_eq(ch.alert, 22);
}
END_TEST

/* The handshake message m (n bytes) cut into records of size bytes. */
static size_t frame(struct bb *r, const uint8_t *m, size_t n, size_t size)
{
    r->n = 0;
    for (size_t at = 0; at < n; at += size) {
        size_t k = n - at < size ? n - at : size;
        put8(r, 22);
        put16(r, at ? 0x0303 : 0x0301);
        put16(r, (unsigned)k);
        putn(r, m + at, k);
    }
    return r->n;
}

/* What the parser must ask for after len bytes of the records in r: the
 * end of the record header or of the record that len falls in. */
static long need_after(const struct bb *r, size_t len)
{
    size_t at = 0;
    while (at + 5 <= len) {
        size_t end = at + 5 + ((size_t)r->d[at + 3] << 8 | r->d[at + 4]);
        if (len < end)
            return (long)end;
        at = end;
    }
    return (long)(at + 5);
}

static void same_hello(const struct client_hello *a, const struct client_hello *b)
{
    ck_assert_str_eq(a->sni, b->sni);
    ck_assert(a->complete && b->complete);
    ck_assert(memcmp(a, b, sizeof *a) == 0);
}

START_TEST(split_over_records)
{
    static struct bb h, r, whole;
    static const unsigned sig[] = { 0x0804, 0x0403, END };
    struct client_hello ch, ref;
    h.n = 0;
    const struct spec sp = { .sni = "split.test", .versions = v13, .sigalgs = sig, .padding = 600 };
    handshake(&h, &sp);
    size_t wn = build(&whole, &sp);
    ck_assert_int_eq(parse(whole.d, wn, &ref), 0);
    /* in 40-byte records: the same; every prefix asks for the next header or record */
    size_t n = frame(&r, h.d, h.n, 40);
    ck_assert_int_eq(parse(r.d, n, &ch), 0);
    same_hello(&ch, &ref);
    ck_assert_str_eq(ch.sni, "split.test");
    ck_assert(client_hello_ecdsa(&ch, false, true));
    for (size_t len = 0; len < n; len++)
        ck_assert_int_eq(parse(r.d, len, &ch), need_after(&r, len));
    /* two records, split at every boundary in the first bytes, then coarser */
    for (size_t part = 1; part < h.n; part += (part < 80 ? 1 : 37)) {
        r.n = 0;
        put8(&r, 22);
        put16(&r, 0x0301);
        put16(&r, (unsigned)part);
        putn(&r, h.d, part);
        put8(&r, 22);
        put16(&r, 0x0303);
        put16(&r, (unsigned)(h.n - part));
        putn(&r, h.d + part, h.n - part);
        ck_assert_int_eq(parse(r.d, r.n, &ch), 0);
        same_hello(&ch, &ref);
        ck_assert_int_eq(parse(r.d, 5 + part, &ch), (long)(5 + part + 5));
        ck_assert_int_eq(parse(r.d, r.n - 1, &ch), (long)r.n);
    }
    /* in 1-byte records: 6 bytes a byte, within CLIENT_HELLO_MAX */
    n = frame(&r, h.d, h.n, 1);
    ck_assert_uint_le(n, CLIENT_HELLO_MAX);
    ck_assert_int_eq(parse(r.d, n, &ch), 0);
    same_hello(&ch, &ref);
}
END_TEST

START_TEST(split_other_record_inside)
{
    static struct bb h, r;
    struct client_hello ch;
    h.n = 0;
    handshake(&h, &(struct spec){ .sni = "inside.test", .versions = v13 });
    static const uint8_t others[][6] = {
        { 21, 3, 3, 0, 1, 0 },      /* alert */
        { 20, 3, 3, 0, 1, 1 },      /* change_cipher_spec */
        { 23, 3, 3, 0, 1, 0 },      /* application_data */
    };
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        r.n = 0;
        put8(&r, 22);
        put16(&r, 0x0301);
        put16(&r, 40);
        putn(&r, h.d, 40);
        putn(&r, others[i], sizeof others[i]);
        put8(&r, 22);
        put16(&r, 0x0303);
        put16(&r, (unsigned)(h.n - 40));
        putn(&r, h.d + 40, h.n - 40);
        ck_assert_int_eq(parse(r.d, r.n, &ch), -2);
        ck_assert_uint_eq(ch.alert, 10);        /* unexpected_message */
        ck_assert_ptr_nonnull(ch.refused);
        ck_assert_int_eq(parse(r.d, 45 + 5, &ch), -2);   /* as soon as its header is there */
    }
}
END_TEST

/* The second record's header, after a first record of 40 bytes. */
static long second_header(const struct bb *h, uint8_t type, uint8_t major, unsigned len,
                          struct client_hello *ch)
{
    static struct bb r;
    r.n = 0;
    put8(&r, 22);
    put16(&r, 0x0301);
    put16(&r, 40);
    putn(&r, h->d, 40);
    put8(&r, type);
    put8(&r, major);
    put8(&r, 3);
    put16(&r, len);
    return parse(r.d, r.n, ch);
}

START_TEST(split_lying_record_length)
{
    static struct bb h;
    struct client_hello ch;
    h.n = 0;
    handshake(&h, &(struct spec){ .sni = "liar.test", .versions = v13 });
    ck_assert_int_eq(second_header(&h, 22, 3, 0, &ch), -2);
    ck_assert_uint_eq(ch.alert, 50);                        /* decode_error */
    ck_assert_int_eq(second_header(&h, 22, 3, 16385, &ch), -2);
    ck_assert_uint_eq(ch.alert, 22);                        /* record_overflow */
    ck_assert_int_eq(second_header(&h, 22, 3, 0xffff, &ch), -2);
    ck_assert_int_eq(second_header(&h, 22, 2, 10, &ch), -2);
    ck_assert_uint_eq(ch.alert, 50);
    /* a length saying more than is sent: wait for it */
    ck_assert_int_eq(second_header(&h, 22, 3, 16384, &ch), 45 + 5 + 16384);
}
END_TEST

START_TEST(split_over_maximum)
{
    static struct bb h, r;
    struct client_hello ch;
    /* exactly CLIENT_HELLO_MSG_MAX: accepted; one byte more: refused */
    for (int over = 0; over <= 1; over++) {
        h.n = 0;
        handshake(&h, &(struct spec){ .sni = "big.test", .versions = v13, .padding = 100 });
        size_t pad = CLIENT_HELLO_MSG_MAX + (size_t)over - h.n + 100;
        h.n = 0;
        handshake(&h, &(struct spec){ .sni = "big.test", .versions = v13, .padding = pad });
        ck_assert_uint_eq(h.n, CLIENT_HELLO_MSG_MAX + (size_t)over);
        size_t n = frame(&r, h.d, h.n, 4000);
        ck_assert_int_eq(parse(r.d, n, &ch), over ? -2 : 0);
        if (over) {
            ck_assert_uint_eq(ch.alert, 47);                /* illegal_parameter */
            ck_assert_int_eq(parse(r.d, 5 + 4000, &ch), -2);    /* with the first record */
        } else {
            ck_assert_str_eq(ch.sni, "big.test");
            ck_assert(ch.complete);
        }
    }
    /* a 6000-byte hello in 1-byte records: 36000 bytes of records, too many */
    h.n = 0;
    handshake(&h, &(struct spec){ .sni = "frag.test", .versions = v13, .padding = 5800 });
    size_t n = frame(&r, h.d, h.n, 1);
    ck_assert_uint_gt(n, CLIENT_HELLO_MAX);
    ck_assert_int_eq(parse(r.d, CLIENT_HELLO_MAX, &ch), -2);
    ck_assert_uint_eq(ch.alert, 47);
}
END_TEST

/* ---- robustness: prefixes and mutations, under ASan with SANITIZE=1 */

static uint32_t rng = 0x2545f491;

static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

/* What any return must look like. */
static void sane(const uint8_t *buf, size_t len, long r, const struct client_hello *ch)
{
    (void)buf;
    ck_assert(r == -2 || r == -1 || r == 0 || (r > (long)len && r <= CLIENT_HELLO_MAX));
    if (r == -2)
        ck_assert(ch->alert != 0 && ch->refused != NULL);
    if (r != 0)
        return;
    size_t n = strnlen(ch->sni, sizeof ch->sni);
    ck_assert_uint_lt(n, sizeof ch->sni);
    for (size_t i = 0; i < n; i++) {
        char c = ch->sni[i];
        ck_assert((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                  c == '_');
    }
    if (n > 0)
        ck_assert(ch->sni[n - 1] != '.');
    (void)client_hello_ecdsa(ch, true, true);
    (void)client_hello_ecdsa(ch, true, false);
    (void)client_hello_ecdsa(ch, false, true);
}

START_TEST(every_prefix)
{
    static struct bb b;
    static const unsigned sig[] = { 0x0804, 0x0403, 0x0401, END };
    size_t n = build(&b, &(struct spec){ .sni = "Prefix.Example.Test", .versions = v13,
                                          .sigalgs = sig, .padding = 40 });
    struct client_hello ch;
    for (size_t len = 0; len <= n; len++) {
        long r = parse(b.d, len, &ch);
        sane(b.d, len, r, &ch);
        ck_assert_int_eq(r, len < 5 ? 5 : len < n ? (long)n : 0);
    }
    ck_assert_str_eq(ch.sni, "prefix.example.test");
    ck_assert(client_hello_ecdsa(&ch, false, true));
    /* every truncation of the message inside a record that claims to be whole:
     * the record length says len, the handshake length still says the full
     * size, so the rest is awaited in a next record */
    for (size_t len = 6; len < n; len++) {
        uint8_t *c = malloc(len);
        memcpy(c, b.d, len);
        c[3] = (uint8_t)((len - 5) >> 8);
        c[4] = (uint8_t)((len - 5) & 0xff);
        long r = client_hello_parse(c, len, &ch);
        sane(c, len, r, &ch);
        ck_assert_int_eq(r, (long)len + 5);
        free(c);
    }
}
END_TEST

START_TEST(mutations)
{
    static struct bb b;
    static const unsigned sig[] = { 0x0804, 0x0403, 0x0401, END };
    size_t n = build(&b, &(struct spec){ .sni = "mutant.example.test", .versions = v13,
                                          .sigalgs = sig });
    struct client_hello ch;
    for (int iter = 0; iter < 2000; iter++) {
        uint8_t *c = malloc(n);
        memcpy(c, b.d, n);
        int edits = 1 + (int)(rnd() % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = 5 + rnd() % (n - 5);    /* keep the record header mostly */
            switch (rnd() % 4) {
            case 0: c[at] = (uint8_t)rnd(); break;
            case 1: c[at] = 0xff; break;
            case 2: c[at] = 0x00; break;
            default: c[at] ^= (uint8_t)(1u << (rnd() % 8)); break;
            }
        }
        /* sometimes cut it short too, fixing the record length to match */
        size_t len = n;
        if (rnd() % 3 == 0) {
            len = 6 + rnd() % (n - 6);
            c[3] = (uint8_t)((len - 5) >> 8);
            c[4] = (uint8_t)((len - 5) & 0xff);
        }
        uint8_t *exact = malloc(len);
        memcpy(exact, c, len);
        long r = client_hello_parse(exact, len, &ch);
        sane(exact, len, r, &ch);
        free(exact);
        free(c);
    }
    /* pure noise after a valid header */
    for (int iter = 0; iter < 500; iter++) {
        size_t len = 6 + rnd() % 600;
        uint8_t *c = malloc(len);
        for (size_t i = 0; i < len; i++)
            c[i] = (uint8_t)rnd();
        c[0] = 22;
        c[1] = 3;
        c[3] = (uint8_t)((len - 5) >> 8);
        c[4] = (uint8_t)((len - 5) & 0xff);
        c[5] = 1;
        long r = client_hello_parse(c, len, &ch);
        sane(c, len, r, &ch);
        ck_assert_int_ne(r, -1);        /* a hello, parsed, awaited or refused */
        free(c);
    }
}
END_TEST

/* ---- real clients */

/* `openssl s_client -servername x.example.test` (OpenSSL 3.0.19), first record. */
static const char openssl_hello[] =
    "160301013b010001370303fc4bfcae6431708774be91935e0639a12050a9ae78644645fdfab4"
    "8553ff3bf62027ce0ecc3660383a3cb5151291c3f2ac7835175e27185db2cd7be40403a6ef96"
    "003e130213031301c02cc030009fcca9cca8ccaac02bc02f009ec024c028006bc023c0270067"
    "c00ac0140039c009c0130033009d009c003d003c0035002f00ff010000b00000001300110000"
    "0e782e6578616d706c652e74657374000b000403000102000a00160014001d0017001e001900"
    "1801000101010201030104002300000016000000170000000d002a0028040305030603080708"
    "080809080a080b080408050806040105010601030303010302040205020602002b0009080304"
    "030303020301002d00020101003300260024001d0020b6a9988aae51360a02aa16073f673b2c"
    "21147c002195a86e48b28249f8d68645";

/* `openssl s_client -servername RSA.Example.Test
 *  -sigalgs rsa_pss_rsae_sha256:RSA+SHA256`: no ECDSA sigalgs, and OpenSSL
 * then leaves out the ECDHE-ECDSA suites too. */
static const char openssl_rsa_hello[] =
    "160301010b010001070303f6635be83a5c6b04dbe255bad854916cebda7b30bce3aad653c03f"
    "6ffff05c2c20c04640dc57ad06ed5b5596af2e24a0158d57516a273643c1c360fa4cab370967"
    "0030130213031301c030009fcca8ccaac02f009ec028006bc0270067c0140039c0130033009d"
    "009c003d003c0035002f00ff0100008e0000001500130000105253412e4578616d706c652e54"
    "657374000b000403000102000a00160014001d0017001e001900180100010101020103010400"
    "2300000016000000170000000d0006000408040401002b0009080304030303020301002d0002"
    "0101003300260024001d00203f24ff2f3d77cb018dbd33575d7933c38cc009549159c7cb361d"
    "825bf9d31958";

START_TEST(real_openssl)
{
    static uint8_t buf[CLIENT_HELLO_MAX];
    struct client_hello ch;
    size_t n = unhex(openssl_hello, buf, sizeof buf);
    ck_assert_uint_eq(n, 5 + 0x13b);
    ck_assert_int_eq(parse(buf, n, &ch), 0);
    ck_assert(ch.complete);
    ck_assert_str_eq(ch.sni, "x.example.test");
    ck_assert(!ch.sni_invalid);
    ck_assert(ch.tls13);
    ck_assert(ch.sigalgs);
    ck_assert(ch.ecdsa_sig13);
    ck_assert(ch.ecdsa_sig12);
    ck_assert(ch.ecdsa_suite12);
    ck_assert(client_hello_ecdsa(&ch, true, true));
    ck_assert(client_hello_ecdsa(&ch, false, true));
    ck_assert(client_hello_ecdsa(&ch, true, false));
    for (size_t len = 0; len < n; len++)
        sane(buf, len, parse(buf, len, &ch), &ch);

    n = unhex(openssl_rsa_hello, buf, sizeof buf);
    ck_assert_int_eq(parse(buf, n, &ch), 0);
    ck_assert(ch.complete);
    ck_assert_str_eq(ch.sni, "rsa.example.test");
    ck_assert(ch.tls13);
    ck_assert(ch.sigalgs);
    ck_assert(!ch.ecdsa_sig13);
    ck_assert(!ch.ecdsa_suite12);
    ck_assert(!client_hello_ecdsa(&ch, true, true));
    ck_assert(!client_hello_ecdsa(&ch, false, true));
    ck_assert(!client_hello_ecdsa(&ch, true, false));
}
END_TEST

/* ---- what tls_hello.c judges: groups, the P-256 share, ALPN, renegotiation_info */

static void parse_extra(const uint8_t *extra, size_t n, struct client_hello *ch)
{
    static struct bb b;
    size_t len = build(&b, &(struct spec){ .sni = "a.test", .versions = v13,
                                           .extra = extra, .extra_len = n });
    ck_assert_int_eq(parse(b.d, len, ch), 0);
    ck_assert(ch->complete);
}

START_TEST(groups_read)
{
    struct client_hello ch;
    parse_extra(NULL, 0, &ch);
    ck_assert(ch.groups_sent);
    ck_assert_uint_eq(ch.groups, 1u << 29 | 1u << 23);      /* X25519, P-256 */
    ck_assert(!ch.p256_share && !ch.alpn_bad && !ch.reneg_nonempty && !ch.dhe_suite12);
}
END_TEST

START_TEST(p256_share_kept)
{
    uint8_t ks[4 + 2 + 4 + 65 + 4 + 32] = { 0, 51, 0, 2 + 4 + 65 + 4 + 32, 0, 4 + 65 + 4 + 32,
                                             0, 23, 0, 65, 4 };
    ks[10 + 64] = 0x77;                                     /* the point's last byte */
    ks[4 + 2 + 4 + 65] = 0;
    ks[4 + 2 + 4 + 65 + 1] = 29;
    ks[4 + 2 + 4 + 65 + 3] = 32;
    struct client_hello ch;
    parse_extra(ks, sizeof ks, &ch);
    ck_assert(ch.p256_share);
    ck_assert_int_eq(ch.p256_point[0], 4);
    ck_assert_int_eq(ch.p256_point[64], 0x77);
    /* a share of the wrong length: sent, but no point kept */
    static const uint8_t shortks[] = { 0, 51, 0, 7, 0, 5, 0, 23, 0, 1, 4 };
    parse_extra(shortks, sizeof shortks, &ch);
    ck_assert(ch.p256_share);
    ck_assert_int_eq(ch.p256_point[0], 0);
}
END_TEST

START_TEST(alpn_checked)
{
    struct client_hello ch;
    static const uint8_t good[] = { 0, 16, 0, 13, 0, 11, 2, 'h', '2', 7, 'h', 't', 't', 'p',
                                    '/', '1', '1' };
    parse_extra(good, sizeof good, &ch);
    ck_assert(!ch.alpn_bad);
    static const uint8_t empty_name[] = { 0, 16, 0, 6, 0, 4, 2, 'h', '2', 0 };
    parse_extra(empty_name, sizeof empty_name, &ch);
    ck_assert(ch.alpn_bad);
    static const uint8_t empty_list[] = { 0, 16, 0, 2, 0, 0 };
    parse_extra(empty_list, sizeof empty_list, &ch);
    ck_assert(ch.alpn_bad);
    static const uint8_t truncated[] = { 0, 16, 0, 5, 0, 3, 3, 'h', '2' };
    parse_extra(truncated, sizeof truncated, &ch);
    ck_assert(ch.alpn_bad);
}
END_TEST

START_TEST(reneg_info_checked)
{
    struct client_hello ch;
    static const uint8_t empty[] = { 0xff, 0x01, 0, 1, 0 };
    parse_extra(empty, sizeof empty, &ch);
    ck_assert(!ch.reneg_nonempty);
    static const uint8_t claimed[] = { 0xff, 0x01, 0, 5, 4, 1, 2, 3, 4 };
    parse_extra(claimed, sizeof claimed, &ch);
    ck_assert(ch.reneg_nonempty && !ch.ext_bad);
    static const uint8_t trailing[] = { 0xff, 0x01, 0, 2, 0, 9 };
    parse_extra(trailing, sizeof trailing, &ch);
    ck_assert(ch.ext_bad && !ch.reneg_nonempty);
}
END_TEST

START_TEST(malformed_groups_and_shares)
{
    struct client_hello ch;
    parse_extra(NULL, 0, &ch);
    ck_assert(!ch.ext_bad);
    /* a second supported_groups extension, of odd length */
    static const uint8_t odd[] = { 0, 10, 0, 5, 0, 3, 0, 0x1d, 0 };
    parse_extra(odd, sizeof odd, &ch);
    ck_assert(ch.ext_bad);
    /* a key share whose length runs past the list */
    static const uint8_t past[] = { 0, 51, 0, 8, 0, 6, 0, 29, 0, 32, 1, 2 };
    parse_extra(past, sizeof past, &ch);
    ck_assert(ch.ext_bad);
}
END_TEST

START_TEST(dhe_suite_seen)
{
    static struct bb b;
    static const unsigned dhe[] = { 0xc02f, 0x009e, END };
    struct client_hello ch;
    size_t n = build(&b, &(struct spec){ .sni = "a.test", .suites = dhe });
    ck_assert_int_eq(parse(b.d, n, &ch), 0);
    ck_assert(ch.dhe_suite12);
}
END_TEST


static Suite *suite(void)
{
    Suite *s = suite_create("clienthello");
    TCase *sni = tcase_create("sni");
    tcase_add_test(sni, sni_lowercased);
    tcase_add_test(sni, sni_absent);
    tcase_add_test(sni, sni_bad_chars);
    tcase_add_test(sni, sni_long_ok);
    tcase_add_test(sni, sni_too_long);
    suite_add_tcase(s, sni);
    TCase *ecdsa = tcase_create("ecdsa");
    tcase_add_test(ecdsa, tls13_ecdsa);
    tcase_add_test(ecdsa, tls13_rsa_only);
    tcase_add_test(ecdsa, tls12_no_sigalgs);
    tcase_add_test(ecdsa, tls12_sigalgs);
    tcase_add_test(ecdsa, tls12_rsa_suites);
    tcase_add_test(ecdsa, tls13_client_tls12_server);
    suite_add_tcase(s, ecdsa);
    TCase *framing = tcase_create("framing");
    tcase_add_test(framing, incomplete);
    tcase_add_test(framing, groups_read);
    tcase_add_test(framing, p256_share_kept);
    tcase_add_test(framing, alpn_checked);
    tcase_add_test(framing, reneg_info_checked);
    tcase_add_test(framing, malformed_groups_and_shares);
    tcase_add_test(framing, dhe_suite_seen);
    tcase_add_test(framing, not_handshake);
    tcase_add_test(framing, not_client_hello);
    tcase_add_test(framing, bad_record_length);
    tcase_add_test(framing, split_over_records);
    tcase_add_test(framing, split_other_record_inside);
    tcase_add_test(framing, split_lying_record_length);
    tcase_add_test(framing, split_over_maximum);
    suite_add_tcase(s, framing);
    TCase *robust = tcase_create("robustness");
    tcase_add_test(robust, every_prefix);
    tcase_add_test(robust, mutations);
    suite_add_tcase(s, robust);
    TCase *real = tcase_create("real");
    tcase_add_test(real, real_openssl);
    suite_add_tcase(s, real);
    return s;
}

UNIT_MAIN(suite)
