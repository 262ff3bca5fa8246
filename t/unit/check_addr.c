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
    return s;
}

UNIT_MAIN(suite)
