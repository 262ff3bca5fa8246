#include "clienthello.h"

#include <string.h>

/* A bounds-checked reader. */
struct rd {
    const uint8_t *p;
    size_t left;
    bool bad;
};

static unsigned get(struct rd *r, size_t n)
{
    unsigned v = 0;
    if (r->bad || r->left < n) {
        r->bad = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    r->left -= n;
    return v;
}

/* A sub-reader over the next n bytes (n given by a length field). */
static struct rd sub(struct rd *r, size_t n)
{
    struct rd s = { r->p, n, false };
    if (r->bad || r->left < n) {
        r->bad = true;
        s.bad = true;
        s.left = 0;
        return s;
    }
    r->p += n;
    r->left -= n;
    return s;
}

/* RFC 6066: a host_name, no trailing dot; LDH labels (and '_', seen in
 * the wild). Stored lower-cased. */
static void take_sni(struct client_hello *ch, struct rd e)
{
    if (ch->sni[0] || ch->sni_invalid)      /* a second server_name extension */
        return;
    struct rd list = sub(&e, get(&e, 2));
    while (!list.bad && list.left > 0) {
        unsigned type = get(&list, 1);
        struct rd name = sub(&list, get(&list, 2));
        if (list.bad || type != 0)
            continue;
        if (name.left == 0 || name.left > 253) {     /* a DNS name has at most 253 */
            ch->sni_invalid = true;
            return;
        }
        for (size_t i = 0; i < name.left; i++) {
            char c = (char)name.p[i];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                  c == '_')) {
                ch->sni_invalid = true;
                ch->sni[0] = '\0';
                return;
            }
            ch->sni[i] = c;
        }
        ch->sni[name.left] = '\0';
        if (ch->sni[name.left - 1] == '.') {
            ch->sni_invalid = true;
            ch->sni[0] = '\0';
        }
        return;
    }
}

static void take_sigalgs(struct client_hello *ch, struct rd e)
{
    struct rd list = sub(&e, get(&e, 2));
    ch->sigalgs = true;
    while (!list.bad && list.left >= 2) {
        unsigned a = get(&list, 2);
        if (a == 0x0403 || a == 0x0503 || a == 0x0603)
            ch->ecdsa_sig13 = true;
        if ((a & 0xff) == 3 && (a >> 8) >= 2 && (a >> 8) <= 6)
            ch->ecdsa_sig12 = true;
    }
}

static void take_versions(struct client_hello *ch, struct rd e)
{
    struct rd list = sub(&e, get(&e, 1));
    while (!list.bad && list.left >= 2)
        if (get(&list, 2) == 0x0304)
            ch->tls13 = true;
}

long client_hello_parse(const uint8_t *buf, size_t len, struct client_hello *ch)
{
    memset(ch, 0, sizeof *ch);
    if (len < 5)
        return 5;
    if (buf[0] != 22 || buf[1] != 3)            /* handshake, TLS 1.x/SSL 3 */
        return -1;
    size_t reclen = (size_t)buf[3] << 8 | buf[4];
    if (reclen == 0 || reclen > 16384)
        return -1;
    if (len < 5 + reclen)
        return (long)(5 + reclen);
    struct rd rec = { buf + 5, reclen, false };
    if (get(&rec, 1) != 1)                      /* client_hello */
        return -1;
    size_t msglen = get(&rec, 3);
    if (rec.bad)
        return 0;       /* a message split over records: parsed as far as nothing */
    ch->complete = msglen <= rec.left;
    struct rd m = { rec.p, msglen <= rec.left ? msglen : rec.left, false };
    get(&m, 2);                                 /* legacy_version */
    sub(&m, 32);                                /* random */
    sub(&m, get(&m, 1));                        /* legacy_session_id */
    struct rd suites = sub(&m, get(&m, 2));
    while (!suites.bad && suites.left >= 2) {
        unsigned s = get(&suites, 2);
        if (s == 0xc02b || s == 0xc02c || s == 0xcca9 || s == 0xc023 || s == 0xc024 ||
            s == 0xc009 || s == 0xc00a || s == 0xc0ac || s == 0xc0ad)
            ch->ecdsa_suite12 = true;
    }
    sub(&m, get(&m, 1));                        /* legacy_compression_methods */
    if (m.bad || m.left == 0) {
        ch->complete = ch->complete && !m.bad;
        return 0;
    }
    struct rd exts = sub(&m, get(&m, 2));
    while (!exts.bad && exts.left >= 4) {
        unsigned type = get(&exts, 2);
        struct rd e = sub(&exts, get(&exts, 2));
        if (exts.bad)
            break;
        switch (type) {
        case 0:  take_sni(ch, e); break;
        case 13: take_sigalgs(ch, e); break;
        case 43: take_versions(ch, e); break;
        default: break;
        }
    }
    if (exts.bad || m.bad)
        ch->complete = false;
    return 0;
}

bool client_hello_ecdsa(const struct client_hello *ch, bool allow12, bool allow13)
{
    if (allow13 && ch->tls13)           /* TLS 1.3 will be negotiated */
        return ch->ecdsa_sig13;
    /* TLS 1.2 without signature_algorithms means SHA-1 pairs, ECDSA included. */
    return allow12 && ch->ecdsa_suite12 && (!ch->sigalgs || ch->ecdsa_sig12);
}
