#include "unit.h"
#include "clock.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <stdint.h>
#include <time.h>

#include "tls.h"
#include "config.h"
#include "upstream.h"

static char err[1024];

/* A configuration with one upstream "u" of the given servers ("address; weight = 2; ..."). */
static struct config *conf(const char *balance, const char *health, const char *servers)
{
    char text[4096];
    snprintf(text, sizeof text,
             "frontends = ( { name = \"f\"; listen = \"127.0.0.1:1\";\n"
             "  certificates = ( { cert = \"c.pem\"; } ); upstream = \"u\"; } );\n"
             "upstreams = ( { name = \"u\"; balance = \"%s\"; health = { %s };\n"
             "  servers = ( %s ); } );\n", balance, health, servers);
    char *path = unit_tempfile(text);
    struct config *cfg = config_load(path, err, sizeof err);
    ck_assert_msg(cfg != NULL, "%s", err);
    unlink(path);
    free(path);
    return cfg;
}

static void *region;         /* the "shared" region of the current table */

static struct upstreams *table(const struct config *cfg)
{
    size_t size = upstream_region_size(cfg);
    region = calloc(1, size);
    struct upstreams *u = upstream_init(region, size, cfg);
    ck_assert_ptr_nonnull(u);
    return u;
}

static void drop(struct upstreams *u)
{
    upstream_free(u);
    free(region);
    region = NULL;
}

static struct sockaddr_in client(unsigned n)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000u + n) };
    return sa;
}

#define THREE "{ address = \"127.0.0.1:1001\"; weight = 1; }, " \
              "{ address = \"127.0.0.1:1002\"; weight = 2; }, " \
              "{ address = \"127.0.0.1:1003\"; weight = 3; }"

START_TEST(roundrobin_weights)
{
    struct config *cfg = conf("roundrobin", "type = \"none\";", THREE);
    struct upstreams *u = table(cfg);
    int count[3] = { 0 }, last = -1, repeats = 0;
    for (int i = 0; i < 600; i++) {
        int s = upstream_choose(u, 0, NULL, NULL);
        ck_assert_int_ge(s, 0);
        count[s]++;
        repeats += s == last;
        last = s;
    }
    ck_assert_int_eq(count[0], 100);        /* exactly 1:2:3 over whole cycles */
    ck_assert_int_eq(count[1], 200);
    ck_assert_int_eq(count[2], 300);
    /* Smooth: the heaviest never gets its whole share in a row. */
    ck_assert_int_lt(repeats, 150);
    /* A server that is down is skipped; its share goes to the others. */
    upstream_state(u, 0, 2)->up = 0;
    upstream_state(u, 0, 2)->retry_at = INT64_MAX;
    for (int i = 0; i < 60; i++)
        ck_assert_int_ne(upstream_choose(u, 0, NULL, NULL), 2);
    drop(u);
    config_free(cfg);
    /* Equal weights, the middle one down: its share is spread evenly, not
     * handed to its successor. */
    cfg = conf("roundrobin", "type = \"none\";",
               "{ address = \"127.0.0.1:1001\"; }, { address = \"127.0.0.1:1002\"; }, "
               "{ address = \"127.0.0.1:1003\"; }");
    u = table(cfg);
    upstream_state(u, 0, 1)->up = 0;
    upstream_state(u, 0, 1)->retry_at = INT64_MAX;
    int c2[3] = { 0 };
    for (int i = 0; i < 3000; i++)
        c2[upstream_choose(u, 0, NULL, NULL)]++;
    ck_assert_int_eq(c2[1], 0);
    ck_assert_msg(abs(c2[0] - 1500) < 150, "%d %d", c2[0], c2[2]);
    drop(u);
    config_free(cfg);
}
END_TEST

START_TEST(source_sticky_and_minimal_moves)
{
    struct config *cfg = conf("source", "type = \"tcp\";", THREE);
    struct upstreams *u = table(cfg);
    enum { N = 3000 };
    static int first[N];
    int count[3] = { 0 };
    for (unsigned c = 0; c < N; c++) {
        struct sockaddr_in sa = client(c);
        first[c] = upstream_choose(u, 0, (struct sockaddr *)&sa, NULL);
        ck_assert_int_ge(first[c], 0);
        count[first[c]]++;
        /* The same client always gets the same server. */
        ck_assert_int_eq(upstream_choose(u, 0, (struct sockaddr *)&sa, NULL), first[c]);
    }
    /* Weighted: about 1/6, 2/6, 3/6 (tolerance 25% of each share). */
    ck_assert_msg(abs(count[0] - 500) < 125 && abs(count[1] - 1000) < 250 &&
                  abs(count[2] - 1500) < 375, "%d %d %d", count[0], count[1], count[2]);
    /* Server 1 goes down: only its clients move. */
    upstream_state(u, 0, 1)->up = 0;
    int moved_others = 0, moved_own = 0;
    for (unsigned c = 0; c < N; c++) {
        struct sockaddr_in sa = client(c);
        int now = upstream_choose(u, 0, (struct sockaddr *)&sa, NULL);
        if (first[c] == 1)
            moved_own += now != 1;
        else
            moved_others += now != first[c];
    }
    ck_assert_int_eq(moved_others, 0);
    ck_assert_int_eq(moved_own, count[1]);
    /* It comes back: everyone is where they were. */
    upstream_state(u, 0, 1)->up = 1;
    for (unsigned c = 0; c < N; c++) {
        struct sockaddr_in sa = client(c);
        ck_assert_int_eq(upstream_choose(u, 0, (struct sockaddr *)&sa, NULL), first[c]);
    }
    drop(u);
    config_free(cfg);
}
END_TEST

START_TEST(leastconn_and_max_conns)
{
    struct config *cfg = conf("leastconn", "type = \"tcp\";",
                              "{ address = \"127.0.0.1:1001\"; }, "
                              "{ address = \"127.0.0.1:1002\"; max_conns = 2; }");
    struct upstreams *u = table(cfg);
    upstream_conn_begin(u, 0, 0);
    upstream_conn_begin(u, 0, 0);
    ck_assert_int_eq(upstream_choose(u, 0, NULL, NULL), 1);     /* fewer connections */
    upstream_conn_begin(u, 0, 1);
    upstream_conn_begin(u, 0, 1);
    upstream_conn_begin(u, 0, 0);
    ck_assert_int_eq(upstream_choose(u, 0, NULL, NULL), 0);     /* 1 is full */
    upstream_conn_end(u, 0, 1);
    ck_assert_int_eq(upstream_choose(u, 0, NULL, NULL), 1);
    ck_assert_uint_eq(upstream_state(u, 0, 0)->total, 3);
    drop(u);
    config_free(cfg);
}
END_TEST

START_TEST(backups_and_tried)
{
    struct config *cfg = conf("roundrobin", "type = \"tcp\";",
                              "{ address = \"127.0.0.1:1001\"; }, "
                              "{ address = \"127.0.0.1:1002\"; }, "
                              "{ address = \"127.0.0.1:1003\"; backup = true; }");
    struct upstreams *u = table(cfg);
    for (int i = 0; i < 20; i++)
        ck_assert_int_ne(upstream_choose(u, 0, NULL, NULL), 2);
    /* A primary tried and failed for this client: the other primary, not the backup. */
    bool tried[3] = { true, false, false };
    ck_assert_int_eq(upstream_choose(u, 0, NULL, tried), 1);
    tried[1] = true;
    ck_assert_int_eq(upstream_choose(u, 0, NULL, tried), -1);   /* primaries are up */
    upstream_state(u, 0, 0)->up = 0;
    upstream_state(u, 0, 1)->up = 0;
    ck_assert_int_eq(upstream_choose(u, 0, NULL, NULL), 2);     /* no primary up */
    upstream_state(u, 0, 2)->up = 0;
    ck_assert_int_eq(upstream_choose(u, 0, NULL, NULL), -1);
    drop(u);
    config_free(cfg);
}
END_TEST

START_TEST(rise_and_fall)
{
    struct config *cfg = conf("roundrobin", "type = \"tcp\"; rise = 2; fall = 3;",
                              "{ address = \"127.0.0.1:1001\"; }");
    struct upstreams *u = table(cfg);
    struct server_state *s = upstream_state(u, 0, 0);
    ck_assert_uint_eq(s->up, 1);
    ck_assert_int_eq(upstream_report(u, 0, 0, false, true, "connect: refused"), 0);
    ck_assert_int_eq(upstream_report(u, 0, 0, false, true, "connect: refused"), 0);
    ck_assert_int_eq(upstream_report(u, 0, 0, false, true, "connect: refused"), -1);   /* fall */
    ck_assert_uint_eq(s->up, 0);
    ck_assert_str_eq(s->error, "connect: refused");
    ck_assert_int_eq(upstream_report(u, 0, 0, false, true, "x"), 0);     /* no second change */
    ck_assert_int_eq(upstream_report(u, 0, 0, true, true, NULL), 0);
    ck_assert_int_eq(upstream_report(u, 0, 0, true, true, NULL), 1);    /* rise */
    ck_assert_uint_eq(s->up, 1);
    /* Passive failures count too, and are counted as failures. */
    upstream_report(u, 0, 0, false, false, "connect: refused");
    ck_assert_uint_eq(s->failures, 1);
    drop(u);
    config_free(cfg);
    /* start = "down": nothing is chosen before the first good checks. */
    cfg = conf("roundrobin", "type = \"tcp\"; start = \"down\";",
               "{ address = \"127.0.0.1:1001\"; }");
    u = table(cfg);
    ck_assert_int_eq(upstream_choose(u, 0, NULL, NULL), -1);
    drop(u);
    config_free(cfg);
}
END_TEST

START_TEST(no_prober_passive)
{
    /* health none: a failed connect takes the server out for `interval`,
     * then it is tried again; a good connect brings it back. */
    struct config *cfg = conf("roundrobin", "type = \"none\"; interval = 0.2; timeout = 0.1;",
                              "{ address = \"127.0.0.1:1001\"; }, "
                              "{ address = \"127.0.0.1:1002\"; }");
    struct upstreams *u = table(cfg);
    ck_assert_int_eq(upstream_report(u, 0, 0, false, false, "refused"), -1);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(upstream_choose(u, 0, NULL, NULL), 1);
    usleep(250000);
    bool seen0 = false;
    for (int i = 0; i < 10; i++)
        seen0 |= upstream_choose(u, 0, NULL, NULL) == 0;
    ck_assert(seen0);
    ck_assert_int_eq(upstream_report(u, 0, 0, true, false, NULL), 1);
    drop(u);
    config_free(cfg);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("upstream");
    TCase *tc = tcase_create("upstream");
    tcase_add_test(tc, roundrobin_weights);
    tcase_add_test(tc, source_sticky_and_minimal_moves);
    tcase_add_test(tc, leastconn_and_max_conns);
    tcase_add_test(tc, backups_and_tried);
    tcase_add_test(tc, rise_and_fall);
    tcase_add_test(tc, no_prober_passive);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
