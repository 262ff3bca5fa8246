/*
 * pkcs11_uri — RFC 7512 PKCS#11 URIs: the attributes tlsoffd reads,
 * percent-decoded into a struct pkcs11_uri. Which attributes, and why an
 * unknown one is an error: lib/pkcs11.h.
 */
#include "pkcs11_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"

enum part { PATH, QUERY };

struct attr_def;
/* A value's raw bytes (percent-decoded), len of them, for attribute d. */
typedef int (*attr_set_fn)(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                           size_t len, char *err, size_t errlen);

struct attr_def {
    const char *name;
    enum part part;
    attr_set_fn set;
    size_t field;       /* offsetof the char[] field, for set_text */
    size_t max;         /* the longest value, in bytes */
};

static int refuse(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                  size_t len, char *err, size_t errlen)
{
    (void)u, (void)v, (void)len;
    snprintf(err, errlen, "PKCS#11 URI: attribute '%s' is not supported%s", d->name,
             strcmp(d->name, "module-name") == 0 ? " (give module-path)" : "");
    return -1;
}

/* A text value: no NUL byte, at most max bytes. */
static int set_text(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                    size_t len, char *err, size_t errlen)
{
    if (memchr(v, 0, len)) {
        snprintf(err, errlen, "PKCS#11 URI: %s: a NUL byte (%%00) in a text value", d->name);
        return -1;
    }
    char *field = (char *)u + d->field;
    memcpy(field, v, len);
    field[len] = '\0';
    return 0;
}

static int set_id(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                  size_t len, char *err, size_t errlen)
{
    (void)d, (void)err, (void)errlen;
    memcpy(u->id, v, len);
    u->id_len = len;
    u->has_id = true;
    return 0;
}

static int set_slot(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                    size_t len, char *err, size_t errlen)
{
    char buf[24];
    bool digits = true;
    for (size_t i = 0; i < len; i++)
        digits = digits && isdigit(v[i]);
    memcpy(buf, v, len);
    buf[len] = '\0';
    errno = 0;
    unsigned long n = strtoul(buf, NULL, 10);
    if (!digits || errno) {
        snprintf(err, errlen, "PKCS#11 URI: %s: '%s' is not a decimal slot number", d->name,
                 buf);
        return -1;
    }
    u->slot_id = n;
    u->has_slot = true;
    return 0;
}

static int set_type(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                    size_t len, char *err, size_t errlen)
{
    (void)u;
    if (len == 7 && memcmp(v, "private", 7) == 0)
        return 0;
    snprintf(err, errlen, "PKCS#11 URI: %s: '%.*s': a key for tlsoffd is of type private",
             d->name, (int)len, (const char *)v);
    return -1;
}

/* An absolute path, no NUL byte: into *dst (malloc'd). */
static int set_path(char **dst, const char *name, const char *v, size_t len, char *err,
                    size_t errlen)
{
    if (memchr(v, 0, len)) {
        snprintf(err, errlen, "PKCS#11 URI: %s: a NUL byte (%%00) in a path", name);
        return -1;
    }
    if (len == 0 || v[0] != '/') {
        snprintf(err, errlen, "PKCS#11 URI: %s: '%.*s' is not an absolute path", name,
                 (int)len, v);
        return -1;
    }
    *dst = xstrndup(v, len);
    return 0;
}

static int set_module(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                      size_t len, char *err, size_t errlen)
{
    return set_path(&u->module_path, d->name, (const char *)v, len, err, errlen);
}

/* file:/path, file:///path, or /path (RFC 8089 file URIs, local only). */
static int set_pin_source(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                          size_t len, char *err, size_t errlen)
{
    const char *s = (const char *)v;
    if (len >= 5 && strncasecmp(s, "file:", 5) == 0) {
        s += 5, len -= 5;
        if (len >= 2 && s[0] == '/' && s[1] == '/') {
            if (len < 3 || s[2] != '/') {
                snprintf(err, errlen, "PKCS#11 URI: %s: only local files (file:/path or "
                         "file:///path)", d->name);
                return -1;
            }
            s += 2, len -= 2;
        }
    }
    return set_path(&u->pin_source, d->name, s, len, err, errlen);
}

static int set_pin_value(struct pkcs11_uri *u, const struct attr_def *d, const uint8_t *v,
                         size_t len, char *err, size_t errlen)
{
    if (memchr(v, 0, len)) {
        snprintf(err, errlen, "PKCS#11 URI: %s: a NUL byte (%%00) in the PIN", d->name);
        return -1;
    }
    memcpy(u->pin_value, v, len);
    u->pin_value[len] = '\0';
    u->has_pin_value = true;
    return 0;
}

#define TEXT(n, f, m) { n, PATH, set_text, offsetof(struct pkcs11_uri, f), m }
static const struct attr_def attrs[] = {
    TEXT("token", token, P11_TOKEN_LABEL_MAX),
    TEXT("manufacturer", manufacturer, P11_MANUFACTURER_MAX),
    TEXT("model", model, P11_MODEL_MAX),
    TEXT("serial", serial, P11_SERIAL_MAX),
    TEXT("object", object, P11_OBJECT_MAX),
    { "id", PATH, set_id, 0, P11_ID_MAX },
    { "slot-id", PATH, set_slot, 0, 20 },
    { "type", PATH, set_type, 0, 16 },
    { "module-path", QUERY, set_module, 0, 4096 },
    { "pin-source", QUERY, set_pin_source, 0, 4096 },
    { "pin-value", QUERY, set_pin_value, 0, P11_PIN_MAX },
    /* RFC 7512's, but not read by tlsoffd: refused rather than ignored. */
    { "library-manufacturer", PATH, refuse, 0, 64 },
    { "library-description", PATH, refuse, 0, 64 },
    { "library-version", PATH, refuse, 0, 64 },
    { "slot-description", PATH, refuse, 0, 64 },
    { "slot-manufacturer", PATH, refuse, 0, 64 },
    { "module-name", QUERY, refuse, 0, 64 },
};
#define NATTRS (sizeof attrs / sizeof attrs[0])

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decodes s[0..n) into out (max bytes). The length, or -1 with why. */
static long pct_decode(const char *name, const char *s, size_t n, uint8_t *out, size_t max,
                       char *err, size_t errlen)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval((unsigned char)s[i + 2]) : -1;
            if (lo < 0) {
                snprintf(err, errlen, "PKCS#11 URI: %s: '%%' not followed by two hex digits",
                         name);
                return -1;
            }
            c = hi << 4 | lo;
            i += 2;
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(err, errlen, "PKCS#11 URI: %s: a control character (percent-encode it)",
                     name);
            return -1;
        }
        if (len == max) {
            snprintf(err, errlen, "PKCS#11 URI: %s: longer than %zu bytes", name, max);
            return -1;
        }
        out[len++] = (uint8_t)c;
    }
    return (long)len;
}

static const struct attr_def *find_attr(const char *name)
{
    for (size_t i = 0; i < NATTRS; i++)
        if (strcmp(attrs[i].name, name) == 0)
            return &attrs[i];
    return NULL;
}

/* The name of "name=value" into name[cap]; the value's start, or NULL. */
static const char *split_attr(const char *s, size_t n, char *name, size_t cap)
{
    const char *eq = memchr(s, '=', n);
    size_t nl = eq ? (size_t)(eq - s) : n;
    snprintf(name, cap, "%.*s", (int)nl, s);
    for (char *c = name; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return eq ? eq + 1 : NULL;
}

/* One attribute, "name=value", of the path or the query. */
static int one_attr(struct pkcs11_uri *u, enum part part, const char *s, size_t n,
                    uint32_t *seen, char *err, size_t errlen)
{
    static const char *const where[] = { "path (before '?', ';' between)",
                                         "query (after '?', '&' between)" };
    char name[48];
    const char *v = split_attr(s, n, name, sizeof name);
    const struct attr_def *d = find_attr(name);
    if (n == 0) {
        snprintf(err, errlen, "PKCS#11 URI: an empty attribute in the %s", where[part]);
        return -1;
    }
    if (!d) {
        snprintf(err, errlen, "PKCS#11 URI: unknown attribute '%s' in the %s", name,
                 where[part]);
        return -1;
    }
    if (d->part != part) {
        snprintf(err, errlen, "PKCS#11 URI: attribute '%s' belongs in the %s", name,
                 where[d->part]);
        return -1;
    }
    uint32_t bit = 1u << (d - attrs);
    if (*seen & bit) {
        snprintf(err, errlen, "PKCS#11 URI: attribute '%s' given twice", name);
        return -1;
    }
    *seen |= bit;
    uint8_t buf[4096];
    long len = v ? pct_decode(name, v, n - (size_t)(v - s), buf, d->max, err, errlen) : 0;
    int ret = -1;
    if (len == 0)
        snprintf(err, errlen, "PKCS#11 URI: attribute '%s' has no value", name);
    else if (len > 0)
        ret = d->set(u, d, buf, (size_t)len, err, errlen);
    explicit_bzero(buf, sizeof buf);
    return ret;
}

/* The attributes of one part, separated by sep. */
static int each_attr(struct pkcs11_uri *u, enum part part, const char *s, size_t n, char sep,
                     uint32_t *seen, char *err, size_t errlen)
{
    if (n == 0)
        return 0;
    for (;;) {
        const char *end = memchr(s, sep, n);
        size_t k = end ? (size_t)(end - s) : n;
        if (one_attr(u, part, s, k, seen, err, errlen) < 0)
            return -1;
        if (!end)
            return 0;
        s += k + 1, n -= k + 1;
    }
}

bool pkcs11_is_uri(const char *s)
{
    return s && strncasecmp(s, "pkcs11:", 7) == 0;
}

int pkcs11_uri_parse(struct pkcs11_uri *u, const char *uri, char *err, size_t errlen)
{
    memset(u, 0, sizeof *u);
    if (!pkcs11_is_uri(uri)) {
        snprintf(err, errlen, "not a PKCS#11 URI: it does not begin with 'pkcs11:'");
        return -1;
    }
    const char *p = uri + 7;
    size_t plen = strcspn(p, "?");
    uint32_t seen = 0;
    int ret = 0;
    if (strchr(p, '#')) {
        snprintf(err, errlen, "PKCS#11 URI: a fragment ('#') is not allowed");
        ret = -1;
    }
    if (ret == 0)
        ret = each_attr(u, PATH, p, plen, ';', &seen, err, errlen);
    if (ret == 0 && p[plen] == '?')
        ret = each_attr(u, QUERY, p + plen + 1, strlen(p + plen + 1), '&', &seen, err, errlen);
    if (ret == 0 && u->pin_source && u->has_pin_value) {
        snprintf(err, errlen, "PKCS#11 URI: give pin-source or pin-value, not both");
        ret = -1;
    }
    if (ret == 0 && !u->object[0] && !u->has_id) {
        snprintf(err, errlen, "PKCS#11 URI: names no key: give object (its label) or id");
        ret = -1;
    }
    if (ret < 0)
        pkcs11_uri_clear(u);
    return ret;
}

int pkcs11_uri_check(const char *uri, char *err, size_t errlen)
{
    struct pkcs11_uri u;
    if (pkcs11_uri_parse(&u, uri, err, errlen) < 0)
        return -1;
    pkcs11_uri_clear(&u);
    return 0;
}

void pkcs11_uri_clear(struct pkcs11_uri *u)
{
    free(u->module_path);
    free(u->pin_source);
    explicit_bzero(u, sizeof *u);
}
