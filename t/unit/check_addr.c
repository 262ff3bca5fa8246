#include "unit.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "addr.h"

static char err[256];

START_TEST(ipv4)
{
    struct addr a;
    char buf[ADDR_STRLEN];
    ck_assert_int_eq(addr_parse("192.0.2.7:443", false, &a, err, sizeof err), 0);
    ck_assert_int_eq(a.sa.ss_family, AF_INET);
    ck_assert_int_eq(a.len, sizeof(struct sockaddr_in));
    ck_assert_int_eq(addr_port((struct sockaddr *)&a.sa), 443);
    ck_assert_str_eq(addr_format((struct sockaddr *)&a.sa, buf, sizeof buf), "192.0.2.7:443");
}
END_TEST

START_TEST(ipv6)
{
    struct addr a;
    char buf[ADDR_STRLEN];
    ck_assert_int_eq(addr_parse("[2001:db8::1]:8443", false, &a, err, sizeof err), 0);
    ck_assert_int_eq(a.sa.ss_family, AF_INET6);
    ck_assert_str_eq(addr_format((struct sockaddr *)&a.sa, buf, sizeof buf), "[2001:db8::1]:8443");
    ck_assert_int_eq(addr_parse("[::]:443", false, &a, err, sizeof err), 0);
    ck_assert_str_eq(addr_format((struct sockaddr *)&a.sa, buf, sizeof buf), "[::]:443");
}
END_TEST

START_TEST(any)
{
    struct addr a;
    ck_assert_int_eq(addr_parse("*:80", false, &a, err, sizeof err), 0);
    ck_assert_int_eq(a.sa.ss_family, AF_INET);
    ck_assert_uint_eq(((struct sockaddr_in *)&a.sa)->sin_addr.s_addr, htonl(INADDR_ANY));
}
END_TEST

START_TEST(names)
{
    struct addr a;
    ck_assert_int_eq(addr_parse("localhost:8080", false, &a, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "not an IP address"));
    ck_assert_int_eq(addr_parse("localhost:8080", true, &a, err, sizeof err), 0);
    ck_assert_int_eq(addr_port((struct sockaddr *)&a.sa), 8080);
    ck_assert_int_eq(addr_parse("no-such-host.invalid:80", true, &a, err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot resolve"));
}
END_TEST

START_TEST(errors)
{
    static const struct { const char *in, *msg; } bad[] = {
        { "127.0.0.1", "has no port" },
        { "127.0.0.1:", "port must be" },
        { "127.0.0.1:0", "port must be" },
        { "127.0.0.1:65536", "port must be" },
        { "127.0.0.1:44x", "port must be" },
        { ":443", "has no host" },
        { "[::1:443", "is not [IPv6]:port" },
        { "[::1]443", "is not [IPv6]:port" },
        { "::1:443", "in brackets" },
        { "[1.2.3.4]:443", "is not an IPv6 address" },
        { "300.1.1.1:443", "not an IP address" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct addr a;
        ck_assert_msg(addr_parse(bad[i].in, false, &a, err, sizeof err) == -1, "%s", bad[i].in);
        ck_assert_msg(strstr(err, bad[i].msg) != NULL, "%s: got '%s'", bad[i].in, err);
    }
}
END_TEST

static bool in(const char *cidr, const char *ip)
{
    struct addr_cidr c;
    struct sockaddr_storage ss = unit_peer(ip);
    ck_assert_msg(addr_cidr_parse(cidr, &c, err, sizeof err) == 0, "%s: %s", cidr, err);
    return addr_cidr_match(&c, (struct sockaddr *)&ss);
}

START_TEST(cidr_parse)
{
    static const struct { const char *in, *out; int family, bits; } good[] = {
        { "192.0.2.0/24", "192.0.2.0/24", AF_INET, 24 },
        { "192.0.2.7", "192.0.2.7", AF_INET, 32 },
        { "192.0.2.7/32", "192.0.2.7", AF_INET, 32 },
        { "0.0.0.0/0", "0.0.0.0/0", AF_INET, 0 },
        { "10.128.0.0/9", "10.128.0.0/9", AF_INET, 9 },
        { "2001:db8::/32", "2001:db8::/32", AF_INET6, 32 },
        { "::1", "::1", AF_INET6, 128 },
        { "::/0", "::/0", AF_INET6, 0 },
        { "2001:db8:0:1::/64", "2001:db8:0:1::/64", AF_INET6, 64 },
        { "::ffff:192.0.2.0/120", "192.0.2.0/24", AF_INET, 24 },     /* mapped: IPv4 */
        { "::ffff:198.51.100.1", "198.51.100.1", AF_INET, 32 },
    };
    char buf[ADDR_STRLEN];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct addr_cidr c;
        ck_assert_msg(addr_cidr_parse(good[i].in, &c, err, sizeof err) == 0, "%s: %s",
                      good[i].in, err);
        ck_assert_int_eq(c.family, good[i].family);
        ck_assert_int_eq(c.bits, good[i].bits);
        ck_assert_str_eq(addr_cidr_format(&c, buf, sizeof buf), good[i].out);
    }
}
END_TEST

START_TEST(cidr_errors)
{
    static const struct { const char *in, *msg; } bad[] = {
        { "192.0.2.7/24", "has bits set after the first 24: the network is 192.0.2.0/24" },
        { "2001:db8::1/64", "the network is 2001:db8::/64" },
        { "192.0.2.0/33", "prefix length must be a number from 0 to 32" },
        { "2001:db8::/129", "from 0 to 128" },
        { "192.0.2.0/", "prefix length" },
        { "192.0.2.0/-1", "prefix length" },
        { "192.0.2.0/2x", "prefix length" },
        { "192.0.2.0/ 24", "prefix length" },
        { "192.0.2.0/0024", "prefix length" },
        { "", "is not an address or a network" },
        { "/24", "is not an address or a network" },
        { "192.0.2", "'192.0.2' is not an IP address" },
        { "example.org/24", "is not an IP address" },
        { "[::1]", "is not an IP address" },
        { "192.0.2.1:443", "is not an IP address" },
        { "192.0.2.0/24/8", "prefix length" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct addr_cidr c;
        ck_assert_msg(addr_cidr_parse(bad[i].in, &c, err, sizeof err) == -1, "%s", bad[i].in);
        ck_assert_msg(strstr(err, bad[i].msg) != NULL, "%s: got '%s'", bad[i].in, err);
        ck_assert_msg(strstr(err, bad[i].in) != NULL, "%s: the entry is named in '%s'",
                      bad[i].in, err);
    }
}
END_TEST

START_TEST(cidr_match)
{
    ck_assert(in("192.0.2.0/24", "192.0.2.0"));
    ck_assert(in("192.0.2.0/24", "192.0.2.255"));
    ck_assert(!in("192.0.2.0/24", "192.0.3.0"));
    ck_assert(in("10.128.0.0/9", "10.255.1.1"));
    ck_assert(!in("10.128.0.0/9", "10.127.1.1"));
    ck_assert(in("192.0.2.7", "192.0.2.7"));
    ck_assert(!in("192.0.2.7", "192.0.2.8"));
    ck_assert(in("0.0.0.0/0", "203.0.113.9"));
    ck_assert(!in("0.0.0.0/0", "2001:db8::1"));
    ck_assert(in("2001:db8::/32", "2001:db8:ffff::1"));
    ck_assert(!in("2001:db8::/32", "2001:db9::1"));
    ck_assert(in("::/0", "2001:db8::1"));
    /* A dual-stack listener's mapped peer is IPv4, for rules of either form. */
    ck_assert(in("192.0.2.0/24", "::ffff:192.0.2.9"));
    ck_assert(in("::ffff:192.0.2.0/120", "192.0.2.9"));
    ck_assert(!in("::/0", "::ffff:192.0.2.9"));
    ck_assert(!in("192.0.2.0/24", "::192.0.2.9"));       /* IPv4-compatible is not mapped */
    struct sockaddr_storage un = { .ss_family = AF_UNIX };
    struct addr_cidr c;
    ck_assert_int_eq(addr_cidr_parse("0.0.0.0/0", &c, err, sizeof err), 0);
    ck_assert(!addr_cidr_match(&c, (struct sockaddr *)&un));
}
END_TEST

START_TEST(cidr_of)
{
    struct addr_cidr c;
    char buf[ADDR_STRLEN];
    struct sockaddr_storage ss = unit_peer("2001:db8:1:2:3:4:5:6");
    ck_assert_int_eq(addr_cidr_of((struct sockaddr *)&ss, 64, &c), 0);
    ck_assert_str_eq(addr_cidr_format(&c, buf, sizeof buf), "2001:db8:1:2::/64");
    ck_assert_int_eq(addr_cidr_of((struct sockaddr *)&ss, 48, &c), 0);
    ck_assert_str_eq(addr_cidr_format(&c, buf, sizeof buf), "2001:db8:1::/48");
    ck_assert_int_eq(addr_cidr_of((struct sockaddr *)&ss, 128, &c), 0);
    ck_assert_str_eq(addr_cidr_format(&c, buf, sizeof buf), "2001:db8:1:2:3:4:5:6");
    ck_assert_int_eq(addr_cidr_of((struct sockaddr *)&ss, 61, &c), 0);
    ck_assert_str_eq(addr_cidr_format(&c, buf, sizeof buf), "2001:db8:1::/61");
    ss = unit_peer("::ffff:192.0.2.9");
    ck_assert_int_eq(addr_cidr_of((struct sockaddr *)&ss, 64, &c), 0);
    ck_assert_int_eq(c.family, AF_INET);
    ck_assert_str_eq(addr_cidr_format(&c, buf, sizeof buf), "192.0.2.9");
    ss = unit_peer("192.0.2.9");
    ck_assert_int_eq(addr_cidr_of((struct sockaddr *)&ss, 1, &c), 0);
    ck_assert_str_eq(addr_cidr_format(&c, buf, sizeof buf), "192.0.2.9");
    struct sockaddr_storage un = { .ss_family = AF_UNIX };
    ck_assert_int_eq(addr_cidr_of((struct sockaddr *)&un, 64, &c), -1);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("addr");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, ipv4);
    tcase_add_test(tc, ipv6);
    tcase_add_test(tc, any);
    tcase_add_test(tc, names);
    tcase_add_test(tc, errors);
    suite_add_tcase(s, tc);
    TCase *cidr = tcase_create("cidr");
    tcase_add_test(cidr, cidr_parse);
    tcase_add_test(cidr, cidr_errors);
    tcase_add_test(cidr, cidr_match);
    tcase_add_test(cidr, cidr_of);
    suite_add_tcase(s, cidr);
    return s;
}

UNIT_MAIN(suite)
