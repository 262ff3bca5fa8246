#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "proxyproto.h"

static const uint8_t sig[12] = { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A };

static struct sockaddr *sa4(struct sockaddr_storage *ss, const char *ip, int port)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    memset(ss, 0, sizeof *ss);
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
    return (struct sockaddr *)ss;
}

static struct sockaddr *sa6(struct sockaddr_storage *ss, const char *ip, int port)
{
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    memset(ss, 0, sizeof *ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons((uint16_t)port);
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
    return (struct sockaddr *)ss;
}

static struct sockaddr_storage src_ss, dst_ss;

static struct proxy_info info4(void)
{
    return (struct proxy_info){ .src = sa4(&src_ss, "192.0.2.1", 56324),
                                .dst = sa4(&dst_ss, "198.51.100.2", 443) };
}

static struct proxy_info info6(void)
{
    return (struct proxy_info){ .src = sa6(&src_ss, "2001:db8::1", 56324),
                                .dst = sa6(&dst_ss, "2001:db8::2", 443) };
}

/* Every TLS field set, each to a distinct value. */
static void all_fields(struct proxy_info *pi)
{
    pi->alpn = "h2";
    pi->authority = "example.test";
    pi->tls_version = "TLSv1.3";
    pi->client_cn = "client.example";
    pi->cipher = "TLS_AES_128_GCM_SHA256";
    pi->sig_alg = "ECDSA-SHA256";
    pi->key_alg = "EC256";
    pi->client_cert_conn = true;
    pi->client_cert_sess = true;
    pi->verify = 0x01020304;
}

/* ---- v1 */

static void assert_v1(const struct proxy_info *pi, const char *want)
{
    char buf[PROXYPROTO_V1_MAX];
    memset(buf, 'x', sizeof buf);
    ssize_t n = proxyproto_v1(pi, buf, sizeof buf);
    ck_assert_int_eq(n, (ssize_t)strlen(want));
    ck_assert_str_eq(buf, want);
}

START_TEST(v1_tcp4)
{
    struct proxy_info pi = info4();
    assert_v1(&pi, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    all_fields(&pi);                    /* v1 has no room for them */
    assert_v1(&pi, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
}
END_TEST

START_TEST(v1_tcp6)
{
    struct proxy_info pi = info6();
    assert_v1(&pi, "PROXY TCP6 2001:db8::1 2001:db8::2 56324 443\r\n");
}
END_TEST

START_TEST(v1_unknown)
{
    struct proxy_info pi = { .src = sa4(&src_ss, "192.0.2.1", 56324),
                             .dst = sa6(&dst_ss, "2001:db8::2", 443) };
    assert_v1(&pi, "PROXY UNKNOWN\r\n");
    pi.src = sa6(&src_ss, "2001:db8::1", 56324);
    pi.dst = sa4(&dst_ss, "198.51.100.2", 443);
    assert_v1(&pi, "PROXY UNKNOWN\r\n");
    struct sockaddr un = { .sa_family = AF_UNIX };
    pi.src = pi.dst = &un;
    assert_v1(&pi, "PROXY UNKNOWN\r\n");
    pi.src = pi.dst = NULL;
    assert_v1(&pi, "PROXY UNKNOWN\r\n");
}
END_TEST

START_TEST(v1_mapped)
{
    struct proxy_info pi = { .src = sa6(&src_ss, "::ffff:192.0.2.1", 56324),
                             .dst = sa6(&dst_ss, "::ffff:198.51.100.2", 443) };
    assert_v1(&pi, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    pi.dst = sa4(&dst_ss, "198.51.100.2", 443);     /* mapped and plain IPv4 agree */
    assert_v1(&pi, "PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    pi.dst = sa6(&dst_ss, "2001:db8::2", 443);      /* mapped IPv4 and real IPv6 do not */
    assert_v1(&pi, "PROXY UNKNOWN\r\n");
}
END_TEST

START_TEST(v1_longest)
{
    struct proxy_info pi = {
        .src = sa6(&src_ss, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535),
        .dst = sa6(&dst_ss, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65534) };
    assert_v1(&pi, "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe "
                   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65534\r\n");
}
END_TEST

/* Every buffer shorter than the header plus its NUL is refused, and nothing
 * is written past it (each buffer is malloc'd to its exact size, for ASan). */
START_TEST(v1_too_small)
{
    struct proxy_info pi = info4();
    ssize_t want = (ssize_t)strlen("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
    ck_assert_int_eq(proxyproto_v1(&pi, NULL, 0), -1);
    for (size_t len = 1; len <= (size_t)want + 1; len++) {
        char *buf = malloc(len);
        ssize_t n = proxyproto_v1(&pi, buf, len);
        ck_assert_int_eq(n, len == (size_t)want + 1 ? want : -1);
        free(buf);
    }
}
END_TEST

/* ---- v2: a small decoder */

struct tlv {
    int type;
    size_t len;
    const uint8_t *val;
};

/* Splits [p, p + n) into TLVs, each of which must fit; returns how many. */
static int walk(const uint8_t *p, size_t n, struct tlv *t, int max)
{
    int k = 0;
    for (size_t off = 0; off < n; k++) {
        ck_assert_int_lt(k, max);
        ck_assert_uint_ge(n - off, 3);
        t[k].type = p[off];
        t[k].len = (size_t)p[off + 1] << 8 | p[off + 2];
        t[k].val = p + off + 3;
        ck_assert_uint_le(t[k].len, n - off - 3);
        off += 3 + t[k].len;
    }
    return k;
}

static void assert_tlv(const struct tlv *t, int type, const char *val)
{
    ck_assert_int_eq(t->type, type);
    ck_assert_uint_eq(t->len, strlen(val));
    ck_assert_mem_eq(t->val, val, t->len);
}

/* Checks the fixed part of a v2 header of n bytes; returns where the
 * addresses end (the TLVs begin). */
static size_t assert_v2_fixed(const uint8_t *b, ssize_t n, uint8_t fam)
{
    ck_assert_int_ge(n, 16);
    ck_assert_mem_eq(b, sig, sizeof sig);
    ck_assert_uint_eq(b[12], 0x21);                 /* version 2, PROXY */
    ck_assert_uint_eq(b[13], fam);
    ck_assert_uint_eq((size_t)b[14] << 8 | b[15], (size_t)n - 16);
    size_t end = 16 + (fam == 0x11 ? 12 : fam == 0x21 ? 36 : 0);
    ck_assert_uint_le(end, (size_t)n);
    return end;
}

/* ALPN, AUTHORITY and SSL as all_fields() sets them, with the client
 * byte `client` and verify 0x01020304. */
static void assert_all_tlvs(const uint8_t *p, size_t n, uint8_t client)
{
    struct tlv t[8], sub[8];
    ck_assert_int_eq(walk(p, n, t, 8), 3);
    assert_tlv(&t[0], 0x01, "h2");
    assert_tlv(&t[1], 0x02, "example.test");
    ck_assert_int_eq(t[2].type, 0x20);
    ck_assert_uint_ge(t[2].len, 5);
    ck_assert_uint_eq(t[2].val[0], client);
    static const uint8_t verify[4] = { 0x01, 0x02, 0x03, 0x04 };  /* network order */
    ck_assert_mem_eq(t[2].val + 1, verify, 4);
    ck_assert_int_eq(walk(t[2].val + 5, t[2].len - 5, sub, 8), 5);
    assert_tlv(&sub[0], 0x21, "TLSv1.3");
    assert_tlv(&sub[1], 0x22, "client.example");
    assert_tlv(&sub[2], 0x23, "TLS_AES_128_GCM_SHA256");
    assert_tlv(&sub[3], 0x24, "ECDSA-SHA256");
    assert_tlv(&sub[4], 0x25, "EC256");
}

/* ---- v2 */

START_TEST(v2_ipv4_exact)
{
    struct proxy_info pi = info4();
    static const uint8_t want[] = {
        0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
        0x21, 0x11, 0x00, 0x0C,
        192, 0, 2, 1, 198, 51, 100, 2,
        0xDC, 0x04, 0x01, 0xBB,                     /* 56324, 443 */
    };
    uint8_t buf[PROXYPROTO_V2_MAX];
    ck_assert_int_eq(proxyproto_v2(&pi, buf, sizeof buf), (ssize_t)sizeof want);
    ck_assert_mem_eq(buf, want, sizeof want);
}
END_TEST

START_TEST(v2_ipv4_tlvs)
{
    struct proxy_info pi = info4();
    all_fields(&pi);
    uint8_t buf[PROXYPROTO_V2_MAX];
    ssize_t n = proxyproto_v2(&pi, buf, sizeof buf);
    size_t off = assert_v2_fixed(buf, n, 0x11);
    static const uint8_t addrs[12] = { 192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB };
    ck_assert_mem_eq(buf + 16, addrs, sizeof addrs);
    assert_all_tlvs(buf + off, (size_t)n - off, 0x01 | 0x02 | 0x04);
}
END_TEST

START_TEST(v2_ipv6_tlvs)
{
    struct proxy_info pi = info6();
    all_fields(&pi);
    pi.client_cert_conn = false;        /* resumed: the certificate came earlier */
    uint8_t buf[PROXYPROTO_V2_MAX];
    ssize_t n = proxyproto_v2(&pi, buf, sizeof buf);
    size_t off = assert_v2_fixed(buf, n, 0x21);
    uint8_t a[16];
    inet_pton(AF_INET6, "2001:db8::1", a);
    ck_assert_mem_eq(buf + 16, a, 16);
    inet_pton(AF_INET6, "2001:db8::2", a);
    ck_assert_mem_eq(buf + 32, a, 16);
    static const uint8_t ports[4] = { 0xDC, 0x04, 0x01, 0xBB };
    ck_assert_mem_eq(buf + 48, ports, 4);
    assert_all_tlvs(buf + off, (size_t)n - off, 0x01 | 0x04);
}
END_TEST

START_TEST(v2_no_tlvs)
{
    struct proxy_info pi = info4();
    uint8_t buf[PROXYPROTO_V2_MAX];
    ck_assert_int_eq(proxyproto_v2(&pi, buf, sizeof buf), 28);
    pi.alpn = pi.authority = "";
    pi.cipher = "TLS_AES_128_GCM_SHA256";   /* not TLS: no SSL TLV, whatever else is set */
    pi.client_cert_conn = true;
    ck_assert_int_eq(proxyproto_v2(&pi, buf, sizeof buf), 28);
    pi = info6();
    ssize_t n = proxyproto_v2(&pi, buf, sizeof buf);
    ck_assert_int_eq(n, 52);
    ck_assert_uint_eq(assert_v2_fixed(buf, n, 0x21), 52);
}
END_TEST

START_TEST(v2_ssl_minimal)
{
    struct proxy_info pi = info4();
    pi.tls_version = "TLSv1.2";
    pi.cipher = "";
    uint8_t buf[PROXYPROTO_V2_MAX];
    ssize_t n = proxyproto_v2(&pi, buf, sizeof buf);
    size_t off = assert_v2_fixed(buf, n, 0x11);
    struct tlv t[4], sub[4];
    ck_assert_int_eq(walk(buf + off, (size_t)n - off, t, 4), 1);
    ck_assert_int_eq(t[0].type, 0x20);
    ck_assert_uint_eq(t[0].len, 5 + 3 + strlen("TLSv1.2"));
    static const uint8_t client_verify[5] = { 0x01, 0, 0, 0, 0 };
    ck_assert_mem_eq(t[0].val, client_verify, 5);
    ck_assert_int_eq(walk(t[0].val + 5, t[0].len - 5, sub, 4), 1);
    assert_tlv(&sub[0], 0x21, "TLSv1.2");
}
END_TEST

START_TEST(v2_unspec)
{
    struct proxy_info pi = { .src = sa4(&src_ss, "192.0.2.1", 56324),
                             .dst = sa6(&dst_ss, "2001:db8::2", 443) };
    all_fields(&pi);
    uint8_t buf[PROXYPROTO_V2_MAX];
    ssize_t n = proxyproto_v2(&pi, buf, sizeof buf);
    size_t off = assert_v2_fixed(buf, n, 0x00);
    ck_assert_uint_eq(off, 16);                     /* no addresses, the TLVs still */
    assert_all_tlvs(buf + off, (size_t)n - off, 0x07);
}
END_TEST

START_TEST(v2_mapped)
{
    struct proxy_info pi = { .src = sa6(&src_ss, "::ffff:192.0.2.1", 56324),
                             .dst = sa6(&dst_ss, "::ffff:198.51.100.2", 443) };
    uint8_t buf[PROXYPROTO_V2_MAX];
    ssize_t n = proxyproto_v2(&pi, buf, sizeof buf);
    ck_assert_int_eq(n, 28);
    assert_v2_fixed(buf, n, 0x11);
    static const uint8_t addrs[12] = { 192, 0, 2, 1, 198, 51, 100, 2, 0xDC, 0x04, 0x01, 0xBB };
    ck_assert_mem_eq(buf + 16, addrs, sizeof addrs);
}
END_TEST

START_TEST(v2_too_small)
{
    struct proxy_info pi = info6();
    all_fields(&pi);
    uint8_t full[PROXYPROTO_V2_MAX];
    ssize_t want = proxyproto_v2(&pi, full, sizeof full);
    ck_assert_int_gt(want, 52);
    ck_assert_int_eq(proxyproto_v2(&pi, NULL, 0), -1);
    for (size_t len = 1; len <= (size_t)want; len++) {
        uint8_t *buf = malloc(len);
        ssize_t n = proxyproto_v2(&pi, buf, len);
        ck_assert_int_eq(n, len == (size_t)want ? want : -1);
        if (n > 0)
            ck_assert_mem_eq(buf, full, (size_t)n);
        free(buf);
    }
}
END_TEST

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

START_TEST(v2_overlong)
{
    size_t big = 200000;
    uint8_t *buf = malloc(big);
    struct proxy_info pi = info4();
    char *s = repeat('a', 70000);

    pi.authority = s;                               /* more than a TLV can hold */
    ck_assert_int_eq(proxyproto_v2(&pi, buf, PROXYPROTO_V2_MAX), -1);
    ck_assert_int_eq(proxyproto_v2(&pi, buf, big), -1);
    pi.authority = NULL;
    pi.tls_version = "TLSv1.3";
    pi.cipher = s;
    ck_assert_int_eq(proxyproto_v2(&pi, buf, big), -1);
    free(s);

    /* Each TLV fits, but not the header's 16-bit length. */
    char *half = repeat('b', 40000);
    pi = info4();
    pi.alpn = pi.authority = half;
    ck_assert_int_eq(proxyproto_v2(&pi, buf, big), -1);
    free(half);

    /* The exact bound: 12 address bytes + a 3-byte TLV header + value = 65535. */
    s = repeat('c', 65535 - 12 - 3);
    pi = info4();
    pi.authority = s;
    ck_assert_int_eq(proxyproto_v2(&pi, buf, big), 16 + 65535);
    assert_v2_fixed(buf, 16 + 65535, 0x11);
    free(s);
    s = repeat('c', 65535 - 12 - 3 + 1);
    pi.authority = s;
    ck_assert_int_eq(proxyproto_v2(&pi, buf, big), -1);
    free(s);
    free(buf);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("proxyproto");
    TCase *v1 = tcase_create("v1");
    tcase_add_test(v1, v1_tcp4);
    tcase_add_test(v1, v1_tcp6);
    tcase_add_test(v1, v1_unknown);
    tcase_add_test(v1, v1_mapped);
    tcase_add_test(v1, v1_longest);
    tcase_add_test(v1, v1_too_small);
    suite_add_tcase(s, v1);
    TCase *v2 = tcase_create("v2");
    tcase_add_test(v2, v2_ipv4_exact);
    tcase_add_test(v2, v2_ipv4_tlvs);
    tcase_add_test(v2, v2_ipv6_tlvs);
    tcase_add_test(v2, v2_no_tlvs);
    tcase_add_test(v2, v2_ssl_minimal);
    tcase_add_test(v2, v2_unspec);
    tcase_add_test(v2, v2_mapped);
    tcase_add_test(v2, v2_too_small);
    tcase_add_test(v2, v2_overlong);
    suite_add_tcase(s, v2);
    return s;
}

UNIT_MAIN(suite)
