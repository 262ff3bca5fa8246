#include "unit.h"

#include "probe_http.h"

/* ---- probe_http_judge ---- */

struct jcase {
    const char *reply;
    size_t len;             /* 0: strlen(reply) */
    int lo, hi;             /* 0, 0: 200-399 */
    const char *body;
    bool ok;
    const char *word;       /* in the reason */
};

#define R(s) s, sizeof(s) - 1

static const struct jcase jcases[] = {
    /* 0 */ { R("HTTP/1.1 200 OK\r\nServer: x\r\n\r\n"), 0, 0, NULL, true, "HTTP 200" },
    { R("HTTP/1.0 503 Service Unavailable\r\n\r\n"), 0, 0, NULL, false,
      "HTTP status 503 (expected 200-399)" },
    { R("HTTP/1.1 204\r\n\r\n"), 0, 0, NULL, true, "HTTP 204" },           /* no reason phrase */
    { R("HTTP/1.1 200 \r\n\r\n"), 0, 0, NULL, true, "HTTP 200" },          /* empty phrase */
    { R("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nOKextra"), 0, 0, "OK", true, "HTTP 200" },
    /* 5: beyond Content-Length does not count */
    { R("HTTP/1.1 200 OK\r\nCONTENT-LENGTH: 2\r\n\r\nOKextra"), 0, 0, "ext", false,
      "body does not contain 'ext'" },
    { "", 0, 0, 0, NULL, false, "empty reply" },
    { R("SSH-2.0-OpenSSH_9.2p1\r\n"), 0, 0, NULL, false, "no status line ('SSH-2.0" },
    { R("HTTP/1.1 2000 X\r\n\r\n"), 0, 0, NULL, false, "bad status code" },
    { R("HTTP/1.1 2x0 OK\r\n\r\n"), 0, 0, NULL, false, "bad status code" },
    /* 10: headers cut off, status passing: truncated */
    { R("HTTP/1.1 200 OK\r\nServer: x\r\n"), 0, 0, NULL, false, "truncated reply" },
    /* headers cut off, but the status decides */
    { R("HTTP/1.1 503 Unavailable\r\nServer: x"), 0, 0, NULL, false, "HTTP status 503" },
    { R("HTTP/1.1 200 OK"), 0, 0, NULL, false, "truncated reply: incomplete status line" },
    { R("HTTP/1.1 50"), 0, 0, NULL, false, "truncated" },
    { R("HTT"), 0, 0, NULL, false, "truncated" },
    /* 15 */
    { R("HTTP/2 200\r\n\r\n"), 0, 0, NULL, false, "no status line" },
    { R("http/1.1 200 OK\r\n\r\n"), 0, 0, NULL, false, "no status line" },
    { R("HTTP/1.1 200 OK\nA: b\n\nall is OK"), 0, 0, "OK", true, "HTTP 200" },   /* bare LF */
    { R("HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"), 0, 0, NULL, false,
      "bad Content-Length" },
    { R("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"), 0, 0, NULL,
      false, "bad Content-Length" },
    /* 20: a cut-off body passes if the substring is in the part read */
    { R("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstatus: OK, more"), 0, 0, "OK", true,
      "HTTP 200" },
    { R("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstatus: bad"), 0, 0, "OK", false,
      "body does not contain 'OK' (only 11 of 100 bytes read)" },
    /* chunked: the substring spans two chunks */
    { R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nO\r\n1;x=y\r\nK\r\n0\r\n\r\n"),
      0, 0, "OK", true, "HTTP 200" },
    { R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nO\r\n0\r\n\r\n"), 0, 0, "OK",
      false, "body does not contain 'OK'" },
    { R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nOK\r\n"), 0, 0, "OK", false,
      "bad chunked body" },
    /* 25: chunk sizes are not body text */
    { R("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n4\r\nabcd\r\n"), 0, 0, "4",
      false, "chunked body cut off after 4 bytes" },
    { R("HTTP/1.1 200 OK\r\n\r\nab\0cOK"), 0, 0, "OK", true, "HTTP 200" },     /* a NUL */
    { R("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"), 0, 0, NULL, true, "HTTP 200" },
    { R("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"), 0, 0, NULL, false, "truncated" },
    { R("HTTP/1.1 201 Created\r\n\r\n"), 200, 200, NULL, false, "HTTP status 201 (expected 200)" },
    /* 30 */
    { R("HTTP/1.1 399 X\r\n\r\n"), 200, 399, NULL, true, "HTTP 399" },
    { R("HTTP/1.1 400 X\r\n\r\n"), 200, 399, NULL, false, "HTTP status 400 (expected 200-399)" },
    { R("HTTP/1.1 404 Not Found\r\n\r\n"), 400, 499, NULL, true, "HTTP 404" },
    { R("HTTP/1.1 200 OK\r\nNoColonHere\r\n\r\n"), 0, 0, NULL, false, "bad header line" },
    { R("HTTP/1.1 204 No Content\r\n\r\nOK"), 0, 0, "OK", false, "body does not contain" },
    /* 35 */
    { R("HTTP/1.1 099 X\r\n\r\n"), 0, 0, NULL, false, "bad status code" },
    { R("\r\n\r\n"), 0, 0, NULL, false, "no status line" },
    { R("HTTP/1.1 200 OK\r\n X-Folded: y\r\n\tcontinued\r\n\r\n"), 0, 0, NULL, true, "HTTP 200" },
    { R("HTTP/1.1 200 OK\r\n\r\nbody without length, read to close: OK"), 0, 0, "OK", true,
      "HTTP 200" },
    { R("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), 0, 0, "OK", false,
      "body does not contain 'OK'" },
    /* 40 */
    { R("HTTP/1.1 200 OK\r\n\r\n"), 0, 0, "", true, "HTTP 200" },          /* "" = any */
    { R("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), 0, 0, NULL, false, "no status line" },
    { R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r"), 0, 0, "x", false,
      "cut off" },
    { R("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n12345678901234567\r\n"), 0, 0, "x",
      false, "bad chunked body" },
    /* chunked wins over Content-Length */
    { R("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nab"), 0, 0, "x", false, "chunked body cut off after 2 bytes" },
    { R("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        "5\r\nabcOK\r\n0\r\n\r\n"), 0, 0, "OK", true, "HTTP 200" },
};

START_TEST(judge_cases)
{
    const struct jcase *c = &jcases[_i];
    size_t len = c->len ? c->len : strlen(c->reply);
    /* An exact-size copy: ASan catches any read past len. */
    char *buf = malloc(len ? len : 1);
    memcpy(buf, c->reply, len);
    struct probe_conf pc = { .type = PROBE_HTTP, .expect_lo = c->lo, .expect_hi = c->hi,
                             .body = c->body };
    char reason[PROBE_REASON_MAX] = "unset";
    bool ok = probe_http_judge(&pc, buf, len, reason, sizeof reason);
    ck_assert_msg(ok == c->ok, "case %d: %s (%s)", _i, ok ? "passed" : "failed", reason);
    ck_assert_msg(strstr(reason, c->word), "case %d: reason '%s' lacks '%s'", _i, reason,
                  c->word);
    free(buf);
}
END_TEST

START_TEST(judge_small_reason)
{
    struct probe_conf pc = { .type = PROBE_HTTP };
    char reason[8];
    memset(reason, 'x', sizeof reason);
    ck_assert(!probe_http_judge(&pc, "HTTP/1.1 503 X\r\n\r\n", 18, reason, sizeof reason));
    ck_assert_str_eq(reason, "HTTP st");
    ck_assert(probe_http_judge(&pc, "HTTP/1.1 200 X\r\n\r\n", 18, NULL, 0));
    ck_assert(!probe_http_judge(&pc, NULL, 0, NULL, 0));
}
END_TEST

/* Every prefix of some replies, and random junk: never a crash or an
 * over-read (run under ASan), always a reason. */
START_TEST(judge_prefixes_and_junk)
{
    static const char *replies[] = {
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
        "X: y\r\n\r\n3;e=1\r\nabc\r\n2\r\nOK\r\n0\r\nTrailer: z\r\n\r\n",
        "HTTP/1.0 200 OK\nContent-Length: 9\n\nstatus OK",
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 5\r\n\r\n",
    };
    struct probe_conf pc = { .type = PROBE_HTTP, .body = "OK" };
    char reason[PROBE_REASON_MAX];
    for (size_t k = 0; k < sizeof replies / sizeof replies[0]; k++) {
        size_t n = strlen(replies[k]);
        for (size_t len = 0; len <= n; len++) {
            char *buf = malloc(len ? len : 1);
            memcpy(buf, replies[k], len);
            reason[0] = '\0';
            bool ok = probe_http_judge(&pc, buf, len, reason, sizeof reason);
            ck_assert_msg(reason[0], "reply %zu prefix %zu: no reason", k, len);
            if (k == 2)
                ck_assert_msg(!ok, "503 prefix %zu passed", len);
            if (len == n && k < 2)
                ck_assert_msg(ok, "reply %zu: %s", k, reason);
            free(buf);
        }
    }
    /* Junk made of HTTP-ish pieces. */
    static const char *bits[] = { "HTTP/1.1 ", "200", " OK", "\r\n", "\n", "\r", ":",
                                  "Content-Length: ", "Transfer-Encoding: chunked", "5",
                                  "ffffffffffffffff", "0", ";", "OK", "\x00", "\xff", " " };
    unsigned seed = 12345;
    char tmp[512];
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        int parts = (int)(rand_r(&seed) % 12);
        if (round % 2 == 0) {
            memcpy(tmp, "HTTP/1.1 200 OK\r\n", 17);
            len = 17;
        }
        for (int p = 0; p < parts; p++) {
            const char *b = bits[rand_r(&seed) % (sizeof bits / sizeof bits[0])];
            size_t bl = b[0] ? strlen(b) : 1;
            if (len + bl > sizeof tmp)
                break;
            memcpy(tmp + len, b, bl);
            len += bl;
        }
        char *buf = malloc(len ? len : 1);
        memcpy(buf, tmp, len);
        pc.body = round % 3 ? "OK" : NULL;
        reason[0] = '\0';
        probe_http_judge(&pc, buf, len, reason, sizeof reason);
        ck_assert_msg(reason[0], "round %d: no reason", round);
        free(buf);
    }
}
END_TEST

/* A reply read in pieces: undecided (PROBE_MORE) while open, decided as
 * soon as the bytes allow, and truncated once nothing more will come. */
START_TEST(verdict_while_open)
{
    static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nfine, OK";
    struct probe_conf pc = { .type = PROBE_HTTP, .body = "OK" };
    char reason[PROBE_REASON_MAX];
    size_t n = sizeof reply - 1;
    for (size_t len = 0; len < n; len++) {
        reason[0] = '\0';
        ck_assert_msg(probe_http_verdict(&pc, reply, len, PROBE_REPLY_OPEN, reason, sizeof reason)
                      == PROBE_MORE, "prefix %zu: %s", len, reason);
        ck_assert_int_eq(probe_http_verdict(&pc, reply, len, PROBE_REPLY_CAP, reason,
                                            sizeof reason), PROBE_FAIL);
    }
    ck_assert_int_eq(probe_http_verdict(&pc, reply, n, PROBE_REPLY_OPEN, reason, sizeof reason),
                     PROBE_PASS);
    ck_assert_str_eq(reason, "HTTP 200");
    /* A failing status decides at once, without the rest. */
    ck_assert_int_eq(probe_http_verdict(&pc, "HTTP/1.1 500 ", 13, PROBE_REPLY_OPEN, reason,
                                        sizeof reason), PROBE_FAIL);
    ck_assert_str_eq(reason, "HTTP status 500 (expected 200-399)");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("probe_http");
    TCase *tc = tcase_create("judge");
    tcase_add_loop_test(tc, judge_cases, 0, (int)(sizeof jcases / sizeof jcases[0]));
    tcase_add_test(tc, judge_small_reason);
    tcase_add_test(tc, judge_prefixes_and_junk);
    tcase_add_test(tc, verdict_while_open);
    suite_add_tcase(s, tc);
    return s;
}

UNIT_MAIN(suite)
