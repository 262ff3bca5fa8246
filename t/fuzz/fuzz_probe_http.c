/*
 * fuzz_probe_http — the judge of a health check's HTTP reply, on the
 * bytes a server sends back. The first byte picks the probe_conf: the
 * status range expected (bits 0-1) and the body substring (bits 2-3).
 *
 * Checked: a verdict is one of the three and MORE only while the reply is
 * open, a reason is always given (a NUL-terminated string within its
 * buffer) unless MORE, probe_http_judge agrees with the verdict at EOF,
 * and a verdict reached on a prefix of the reply (a prober stops reading
 * then) is the verdict on the whole reply still open.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "probe_http.h"

#define PREFIXES 8      /* prefixes judged per input, besides the whole */

static const struct { int lo, hi; } ranges[] = { { 0, 0 }, { 200, 200 }, { 200, 299 },
                                                 { 100, 599 } };
static const char *const bodies[] = { NULL, "", "OK", "healthy\r\n" };

static enum probe_verdict verdict(const struct probe_conf *pc, const char *buf, size_t len,
                                  enum probe_reply_end how)
{
    char reason[PROBE_REASON_MAX];
    memset(reason, 'x', sizeof reason);
    enum probe_verdict v = probe_http_verdict(pc, buf, len, how, reason, sizeof reason);
    FUZZ_ASSERT(v == PROBE_PASS || v == PROBE_FAIL || v == PROBE_MORE);
    FUZZ_ASSERT(v != PROBE_MORE || how == PROBE_REPLY_OPEN);
    if (v != PROBE_MORE)
        FUZZ_ASSERT(memchr(reason, '\0', sizeof reason) && reason[0]);
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct probe_conf pc = { .type = PROBE_HTTP, .timeout = 1, .path = "/healthz" };
    char reason[PROBE_REASON_MAX];
    if (size == 0)
        return 0;
    pc.expect_lo = ranges[data[0] & 3].lo;
    pc.expect_hi = ranges[data[0] & 3].hi;
    pc.body = bodies[data[0] >> 2 & 3];
    size_t len = size - 1;
    char *reply = malloc(len ? len : 1);    /* exactly the reply: no NUL after it */
    memcpy(reply, data + 1, len);

    enum probe_verdict at_eof = verdict(&pc, reply, len, PROBE_REPLY_EOF);
    FUZZ_ASSERT((at_eof == PROBE_PASS) == probe_http_judge(&pc, reply, len, reason, sizeof reason));
    (void)verdict(&pc, reply, len, PROBE_REPLY_CAP);
    enum probe_verdict open = verdict(&pc, reply, len, PROBE_REPLY_OPEN);
    FUZZ_ASSERT(open == PROBE_MORE || open == at_eof);
    for (size_t k = 1; k <= PREFIXES && len > 0; k++) {
        size_t n = len * k / (PREFIXES + 1);
        enum probe_verdict v = verdict(&pc, reply, n, PROBE_REPLY_OPEN);
        FUZZ_ASSERT(v == PROBE_MORE || v == open);
    }
    free(reply);
    return 0;
}
