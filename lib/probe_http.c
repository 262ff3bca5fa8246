#include "probe_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define DEFAULT_EXPECT_LO 200
#define DEFAULT_EXPECT_HI 399
#define EXCERPT_MAX 32          /* bytes of a bad reply quoted in the reason */
#define EXCERPT_WANT_MAX 40     /* bytes of the body substring quoted */
/* Digits of a Content-Length (decimal) or a chunk size (hex) at most: far
 * from overflowing a size_t either way. */
#define DIGITS_MAX 15

/* Up to max bytes of s as printable ASCII, for quoting a reply in a reason. */
static const char *excerpt(const char *s, size_t n, size_t max, char *out, size_t outlen)
{
    size_t k = 0;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n && k + 1 < outlen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\r' || c == '\n')
            break;
        out[k++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[k] = '\0';
    return out;
}

/* The end of the line starting at p (the LF), or NULL if there is none. */
static const char *line_end(const char *p, const char *end)
{
    return memchr(p, '\n', (size_t)(end - p));
}

/* A line's content length without its CR. */
static size_t line_len(const char *p, const char *lf)
{
    size_t n = (size_t)(lf - p);
    return n > 0 && p[n - 1] == '\r' ? n - 1 : n;
}

static bool name_is(const char *p, size_t n, const char *name)
{
    return strlen(name) == n && strncasecmp(p, name, n) == 0;
}

static void trim(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

struct reply {
    int status;
    const char *body;           /* the bytes after the header block */
    size_t body_len;            /* as present in the buffer */
    bool chunked;
    bool has_length;
    size_t length;              /* Content-Length */
};

/*
 * The status line at *pp. PROBE_PASS: r->status set, *pp past it; PROBE_FAIL:
 * reason set; PROBE_MORE: the line is not all there yet.
 */
static enum probe_verdict parse_status(const char **pp, const char *end, struct reply *r,
                                 char *reason, size_t rlen)
{
    static const char proto[] = "HTTP/1.";
    const char *p = *pp;
    size_t n = (size_t)(end - p), plen = sizeof proto - 1;
    char ex[48];

    if (n == 0)
        return PROBE_MORE;
    if (memcmp(p, proto, n < plen ? n : plen) != 0) {
        snprintf(reason, rlen, "bad HTTP reply: no status line ('%s')",
            excerpt(p, n, EXCERPT_MAX, ex, sizeof ex));
        return PROBE_FAIL;
    }
    /* "HTTP/1.1 200" + one of SP CR LF: 13 bytes before we can decide. */
    if (n < plen + 6)
        return PROBE_MORE;
    const char *v = p + plen, *c = v + 2;
    if (v[0] < '0' || v[0] > '9' || v[1] != ' ') {
        snprintf(reason, rlen, "bad HTTP reply: no status line ('%s')",
            excerpt(p, n, EXCERPT_MAX, ex, sizeof ex));
        return PROBE_FAIL;
    }
    for (int i = 0; i < 3; i++)
        if (c[i] < '0' || c[i] > '9') {
            snprintf(reason, rlen, "bad HTTP reply: bad status code ('%s')",
                excerpt(p, n, EXCERPT_MAX, ex, sizeof ex));
            return PROBE_FAIL;
        }
    if ((c[3] != ' ' && c[3] != '\r' && c[3] != '\n') || c[0] == '0') {
        snprintf(reason, rlen, "bad HTTP reply: bad status code ('%s')",
            excerpt(p, n, EXCERPT_MAX, ex, sizeof ex));
        return PROBE_FAIL;
    }
    r->status = (c[0] - '0') * 100 + (c[1] - '0') * 10 + (c[2] - '0');
    const char *lf = line_end(c + 3, end);
    if (!lf) {
        *pp = NULL;             /* status known, line not complete */
        return PROBE_PASS;
    }
    *pp = lf + 1;
    return PROBE_PASS;
}

static bool parse_length(const char *v, size_t n, size_t *out)
{
    size_t x = 0;
    if (n == 0 || n > DIGITS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9')
            return false;
        x = x * 10 + (size_t)(v[i] - '0');
    }
    *out = x;
    return true;
}

/*
 * The header lines from *pp to the empty line. PROBE_PASS: *pp past the empty
 * line; PROBE_MORE: no empty line yet.
 */
static enum probe_verdict parse_headers(const char **pp, const char *end, struct reply *r,
                                  char *reason, size_t rlen)
{
    const char *p = *pp;
    char ex[48];
    for (;;) {
        const char *lf = line_end(p, end);
        if (!lf)
            return PROBE_MORE;
        size_t n = line_len(p, lf);
        if (n == 0) {
            *pp = lf + 1;
            return PROBE_PASS;
        }
        if (p[0] == ' ' || p[0] == '\t') {     /* obsolete folding: part of the last value */
            p = lf + 1;
            continue;
        }
        const char *colon = memchr(p, ':', n);
        if (!colon || colon == p) {
            snprintf(reason, rlen, "bad HTTP reply: bad header line ('%s')",
                excerpt(p, n, EXCERPT_MAX, ex, sizeof ex));
            return PROBE_FAIL;
        }
        const char *name = p, *val = colon + 1;
        size_t nn = (size_t)(colon - p), vn = n - nn - 1;
        trim(&name, &nn);
        trim(&val, &vn);
        if (name_is(name, nn, "content-length")) {
            size_t x;
            if (!parse_length(val, vn, &x) || (r->has_length && x != r->length)) {
                snprintf(reason, rlen, "bad HTTP reply: bad Content-Length ('%s')",
                    excerpt(val, vn, EXCERPT_MAX, ex, sizeof ex));
                return PROBE_FAIL;
            }
            r->has_length = true;
            r->length = x;
        } else if (name_is(name, nn, "transfer-encoding")) {
            /* The last coding is what frames the body. */
            r->chunked = vn >= 7 && strncasecmp(val + vn - 7, "chunked", 7) == 0;
        }
        p = lf + 1;
    }
}

/* Whether the trailers after the last chunk, and the empty line that ends
 * them, are all in [p, end). */
static bool trailers_end(const char *p, const char *end)
{
    for (;;) {
        const char *lf = line_end(p, end);
        if (!lf)
            return false;
        if (line_len(p, lf) == 0)
            return true;
        p = lf + 1;
    }
}

/*
 * Decodes the chunked body in r into out (at least body_len bytes).
 * Returns the decoded length; *complete tells whether the last chunk was
 * seen, *bad whether the framing is broken.
 */
static size_t dechunk(const struct reply *r, char *out, bool *complete, bool *bad)
{
    const char *p = r->body, *end = r->body + r->body_len;
    size_t k = 0;
    *complete = *bad = false;
    while (p < end) {
        const char *lf = line_end(p, end);
        size_t sz = 0, i = 0, n = lf ? line_len(p, lf) : (size_t)(end - p);
        if (!lf && n > 0 && p[n - 1] == '\r')
            n--;                /* the LF is still to come */
        for (; i < n && i <= DIGITS_MAX; i++) {
            char ch = p[i];
            int d = ch >= '0' && ch <= '9' ? ch - '0'
                  : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                  : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
            if (d < 0)
                break;
            sz = sz * 16 + (size_t)d;
        }
        /* Hex digits, then the end of the line or an extension. */
        if (i > DIGITS_MAX || (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t')) {
            *bad = true;
            return k;
        }
        if (!lf)
            return k;           /* the size line is cut off */
        if (i == 0) {
            *bad = true;
            return k;
        }
        p = lf + 1;
        if (sz == 0) {
            *complete = trailers_end(p, end);
            return k;
        }
        size_t have = (size_t)(end - p);
        if (sz > have) {
            memcpy(out + k, p, have);
            return k + have;
        }
        memcpy(out + k, p, sz);
        k += sz;
        p += sz;
        /* The CRLF after the data. */
        if (p < end && *p == '\r')
            p++;
        if (p < end) {
            if (*p != '\n') {
                *bad = true;
                return k;
            }
            p++;
        }
    }
    return k;
}

static void expected(const struct probe_conf *pc, int *lo, int *hi)
{
    *lo = pc->expect_lo;
    *hi = pc->expect_hi;
    if (*lo == 0 && *hi == 0) {
        *lo = DEFAULT_EXPECT_LO;
        *hi = DEFAULT_EXPECT_HI;
    }
}

/* Undecided: PROBE_MORE while more may come; once nothing will (final),
 * PROBE_FAIL as "truncated reply: what". */
static enum probe_verdict truncated(bool final, const char *what, char *reason, size_t rlen)
{
    if (!final)
        return PROBE_MORE;
    snprintf(reason, rlen, "truncated reply: %s", what);
    return PROBE_FAIL;
}

/*
 * The status line and headers of buf[0..len), skipping interim 1xx
 * replies. PROBE_PASS: a status in range and the whole header block, with
 * r set and r->body at the bytes after it.
 */
static enum probe_verdict judge_head(const struct probe_conf *pc, const char *buf, size_t len,
                                     bool final, struct reply *r, char *reason, size_t rlen)
{
    const char *p = buf, *end = buf + len;
    int lo, hi;
    expected(pc, &lo, &hi);
    for (;;) {
        memset(r, 0, sizeof *r);
        enum probe_verdict v = parse_status(&p, end, r, reason, rlen);
        if (v != PROBE_PASS)
            return v == PROBE_FAIL ? v : truncated(final, "incomplete status line", reason, rlen);
        bool interim = r->status >= 100 && r->status < 200 && r->status != 101;
        if (!interim && (r->status < lo || r->status > hi)) {
            if (lo == hi)
                snprintf(reason, rlen, "HTTP status %d (expected %d)", r->status, lo);
            else
                snprintf(reason, rlen, "HTTP status %d (expected %d-%d)", r->status, lo, hi);
            return PROBE_FAIL;
        }
        if (!p)
            return truncated(final, "incomplete status line", reason, rlen);
        v = parse_headers(&p, end, r, reason, rlen);
        if (v == PROBE_MORE) {
            char what[64];
            snprintf(what, sizeof what, "no end of headers in %zu bytes", len);
            return truncated(final, what, reason, rlen);
        }
        if (v == PROBE_FAIL)
            return PROBE_FAIL;
        if (!interim)
            break;
        /* An interim reply: the real one follows. */
    }
    r->body = p;
    r->body_len = (size_t)(end - p);
    return PROBE_PASS;
}

/* Why want is not in the blen body bytes searched (of due, if known). */
static void say_not_found(const struct reply *r, const char *want, enum probe_reply_end how,
                          bool complete, size_t blen, size_t due, char *reason, size_t rlen)
{
    char ex[48];
    excerpt(want, strlen(want), EXCERPT_WANT_MAX, ex, sizeof ex);
    if (complete || (!r->chunked && !r->has_length && how == PROBE_REPLY_EOF))
        snprintf(reason, rlen, "body does not contain '%s'", ex);
    else if (r->chunked)
        snprintf(reason, rlen,
                 "body does not contain '%s' (chunked body cut off after %zu bytes)", ex, blen);
    else if (r->has_length)
        snprintf(reason, rlen, "body does not contain '%s' (only %zu of %zu bytes read)", ex,
                 blen, due);
    else
        snprintf(reason, rlen, "body does not contain '%s' (searched the first %zu bytes)", ex,
                 blen);
}

/* Searches the body of r for want. */
static enum probe_verdict judge_body(const struct reply *r, const char *want,
                                     enum probe_reply_end how, char *reason, size_t rlen)
{
    bool bodyless = r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200);
    const char *body = r->body;
    size_t blen = r->body_len, due = 0;
    bool complete = false, bad = false;
    char *decoded = NULL;

    if (bodyless) {
        blen = 0;
        complete = true;
    } else if (r->chunked) {
        decoded = xmalloc(r->body_len);
        blen = dechunk(r, decoded, &complete, &bad);
        body = decoded;
    } else if (r->has_length) {
        due = r->length;
        if (blen >= r->length) {
            blen = r->length;
            complete = true;
        }
    }

    bool found = memmem(body, blen, want, strlen(want)) != NULL;
    free(decoded);
    if (found) {
        snprintf(reason, rlen, "HTTP %d", r->status);
        return PROBE_PASS;
    }
    if (bad) {
        snprintf(reason, rlen, "bad HTTP reply: bad chunked body");
        return PROBE_FAIL;
    }
    if (!complete && how == PROBE_REPLY_OPEN)
        return PROBE_MORE;
    say_not_found(r, want, how, complete, blen, due, reason, rlen);
    return PROBE_FAIL;
}

enum probe_verdict probe_http_verdict(const struct probe_conf *pc, const char *buf, size_t len,
                                      enum probe_reply_end how, char *reason, size_t rlen)
{
    bool final = how != PROBE_REPLY_OPEN;
    struct reply r;

    if (len == 0) {
        if (final)
            snprintf(reason, rlen, "bad HTTP reply: empty reply");
        return final ? PROBE_FAIL : PROBE_MORE;
    }
    enum probe_verdict v = judge_head(pc, buf, len, final, &r, reason, rlen);
    if (v != PROBE_PASS)
        return v;
    const char *want = pc->body && *pc->body ? pc->body : NULL;
    if (!want) {
        snprintf(reason, rlen, "HTTP %d", r.status);
        return PROBE_PASS;
    }
    return judge_body(&r, want, how, reason, rlen);
}

bool probe_http_judge(const struct probe_conf *pc, const char *buf, size_t len,
                      char *reason, size_t reasonlen)
{
    if (!buf)
        len = 0;
    if (!reason)
        reasonlen = 0;
    return probe_http_verdict(pc, buf ? buf : "", len, PROBE_REPLY_EOF, reason, reasonlen) ==
           PROBE_PASS;
}
