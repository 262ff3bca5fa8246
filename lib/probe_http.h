/*
 * probe_http — judging the reply to an HTTP health check.
 *
 * Owns: the parsing of an HTTP/1.x reply as far as it was read (status
 * line, headers, a body framed by Content-Length, chunks or the close) and
 * the verdict against a probe_conf (status range, body substring). No I/O:
 * probe_run (probe.c) reads and asks after each read.
 */
#ifndef TLSOFFD_PROBE_HTTP_H
#define TLSOFFD_PROBE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "probe.h"

enum probe_verdict { PROBE_PASS, PROBE_FAIL, PROBE_MORE };

/* Why the bytes judged end where they do. */
enum probe_reply_end {
    PROBE_REPLY_OPEN,       /* more may come: undecided is PROBE_MORE */
    PROBE_REPLY_EOF,        /* the server closed, or probe_http_judge */
    PROBE_REPLY_CAP,        /* PROBE_HTTP_MAX bytes read */
};

/*
 * The verdict on buf[0..len), as probe_http_judge gives it, but for a
 * reply still coming in: with how PROBE_REPLY_OPEN, PROBE_MORE while
 * more bytes could still decide. Otherwise nothing more will come, and
 * what is undecided fails as truncated. The reason is set unless
 * PROBE_MORE.
 */
enum probe_verdict probe_http_verdict(const struct probe_conf *pc, const char *buf, size_t len,
                                      enum probe_reply_end how, char *reason, size_t rlen);

/*
 * Parses an HTTP/1.x reply (status line, headers, body as far as it was
 * read: Content-Length or until close; chunked bodies are decoded, as far as
 * they are well-formed) in buf[0..len) and judges it against pc (status
 * range, body substring). Returns true if it passes; otherwise false with
 * the reason. The reason is also set on success ("HTTP 200"). reason may be
 * NULL if reasonlen is 0. buf need not be NUL-terminated; it may hold NULs.
 *
 * The rules, for a reply that ends at len (EOF, the size cap, or an error):
 *  - Status line: "HTTP/1.<digit> <3 digits>" then SP, CR or LF; the reason
 *    phrase is optional. Anything else is "bad HTTP reply: ..."; nothing at
 *    all is "empty reply"; a prefix of a status line is "truncated reply".
 *  - An interim 1xx reply (but 101) is skipped with its headers.
 *  - The status decides alone when it fails: "HTTP status 503 (expected
 *    200-399)" even if the headers after it are cut off.
 *  - A passing status needs the complete header block (an empty line, CRLF
 *    or bare LF); without one the reply fails as "truncated reply".
 *  - Header names are case-insensitive; a line without ':' or a bad or
 *    conflicting Content-Length is "bad HTTP reply". Transfer-Encoding
 *    chunked wins over Content-Length.
 *  - The body substring is searched in the body bytes present (up to
 *    Content-Length; the decoded chunk data; or everything to the end).
 *    A cut-off body fails only if the substring is not in the part present,
 *    and the reason says how much was searched. 204, 304 and replies with
 *    Content-Length 0 have an empty body.
 */
bool probe_http_judge(const struct probe_conf *pc, const char *buf, size_t len,
                      char *reason, size_t reasonlen);

#endif
