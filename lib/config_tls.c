/*
 * config_tls — the tls section: protocols, suites and groups, the session
 * cache and tickets.
 */
#include "config_int.h"

#include <wolfssl/options.h>
#include <wolfssl/ssl.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "tls_policy.h"

struct strlist {
    char buf[512];
    size_t len;
};

static int append(struct strlist *l, const char *s)
{
    int n = snprintf(l->buf + l->len, sizeof l->buf - l->len, "%s%s", l->len ? ":" : "", s);
    if (n < 0 || (size_t)n >= sizeof l->buf - l->len)
        return -1;
    l->len += (size_t)n;
    return 0;
}

static int add_protocol(const struct conf_ctx *c, const config_setting_t *s, const char *v,
                        void *arg)
{
    int *mask = arg;
    if (strcmp(v, "TLSv1.2") == 0)
        *mask |= 1;
    else if (strcmp(v, "TLSv1.3") == 0)
        *mask |= 2;
    else
        return conf_fail(c, s, "unsupported protocol '%s' (expected \"TLSv1.2\" or \"TLSv1.3\"; "
                          "older versions are not offered)", v);
    return 0;
}

static int add_group(const struct conf_ctx *c, const config_setting_t *s, const char *v, void *arg)
{
    static const char *const known[] = { "X25519", "X448", "P-256", "P-384", "P-521", NULL };
    for (const char *const *k = known; *k; k++)
        if (strcmp(*k, v) == 0) {
            if (append(arg, v) < 0)
                return conf_fail(c, s, "too many groups");
            return 0;
        }
    return conf_fail(c, s, "unknown group '%s' (expected X25519, X448, P-256, P-384 or P-521)", v);
}

/* CCM-8 (CCM8, CCM_8, CCM-8 in any case): AES-CCM with an 8-byte tag. */
static bool is_ccm8(const char *name)
{
    char up[128];
    size_t n = 0;
    for (const char *p = name; *p && n + 1 < sizeof up; p++)
        if (*p != '-' && *p != '_')
            up[n++] = (char)toupper((unsigned char)*p);
    up[n] = '\0';
    return strstr(up, "CCM8") != NULL;
}

/*
 * Cipher lists name suites one by one (no keywords such as HIGH or ALL):
 * AEAD suites of full strength only (no CCM-8), and for TLS 1.2 only ECDHE
 * or DHE key exchange, so an override can narrow the defaults but never
 * weaken them. Whether wolfSSL knows each name is checked by tls_policy.c.
 */
static int check_cipher_string(const struct conf_ctx *c, const config_setting_t *s, const char *v,
                               bool tls12)
{
    static const char *const aead[] = { "GCM", "CHACHA20", "CCM", NULL };
    if (!*v)
        return conf_fail(c, s, "must not be empty");
    char *copy = xstrdup(v), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ":", &save); t && rc == 0; t = strtok_r(NULL, ":", &save)) {
        bool ok = false;
        for (const char *const *a = aead; *a; a++)
            ok |= strstr(t, *a) != NULL;
        if (!ok)
            rc = conf_fail(c, s, "'%s' is not an AEAD suite (name suites one by one: AES-GCM, "
                            "ChaCha20-Poly1305 or AES-CCM; keywords like HIGH are not taken)", t);
        else if (is_ccm8(t))
            rc = conf_fail(c, s, "'%s' is AES-CCM-8, whose 8-byte tag is too short (take the "
                            "AES-CCM suite with a 16-byte tag, or AES-GCM)", t);
        else if (tls12 && strncmp(t, "ECDHE-", 6) != 0 && strncmp(t, "DHE-", 4) != 0 &&
                 strncmp(t, "TLS_ECDHE_", 10) != 0 && strncmp(t, "TLS_DHE_", 8) != 0)
            rc = conf_fail(c, s,
                           "'%s' has no forward secrecy (TLS 1.2 suites must be ECDHE or DHE)",
                      t);
        else if (!tls12 && ((strncmp(t, "TLS13-", 6) != 0 && strncmp(t, "TLS_", 4) != 0) ||
                            strstr(t, "_WITH_")))
            rc = conf_fail(c, s, "'%s' is not a TLS 1.3 suite (TLS13-... or TLS_... names)", t);
    }
    free(copy);
    return rc;
}

/* Sizes: an integer of bytes, or a string with a K, M or G suffix. */
static int get_size(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                    size_t def, size_t max, size_t *out)
{
    const config_setting_t *s = config_setting_get_member(grp, name);
    long long v;
    if (!s) {
        *out = def;
        return 0;
    }
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        v = config_setting_get_int64(s);
    } else if (t == CONFIG_TYPE_STRING) {
        const char *str = config_setting_get_string(s);
        char *end;
        v = strtoll(str, &end, 10);
        if (end == str)
            return conf_fail(c, s, "expected a size such as 32M, got '%s'", str);
        switch (*end) {
        case 'K': case 'k': v <<= 10; end++; break;
        case 'M': case 'm': v <<= 20; end++; break;
        case 'G': case 'g': v <<= 30; end++; break;
        }
        if (*end)
            return conf_fail(c, s, "expected a size such as 32M (suffix K, M or G), got '%s'", str);
    } else {
        return conf_fail(c, s, "expected a size (bytes, or a string such as \"32M\"), got %s",
                    conf_type_name(t));
    }
    if (v < 0 || (unsigned long long)v > max)
        return conf_fail(c, s, "must be from 0 to %zu bytes, got %lld", max, v);
    *out = (size_t)v;
    return 0;
}

static int add_key_file(const struct conf_ctx *c, const config_setting_t *s, const char *v,
                        void *arg)
{
    struct tls_conf *t = arg;
    if (!*v)
        return conf_fail(c, s, "must not be empty");
    if (t->tickets.nkey_files == CONFIG_MAX_TICKET_KEYS)
        return conf_fail(c, s, "at most %d key files", CONFIG_MAX_TICKET_KEYS);
    t->tickets.key_files = xrealloc(t->tickets.key_files,
                                   (t->tickets.nkey_files + 1) * sizeof(char *));
    t->tickets.key_files[t->tickets.nkey_files++] = conf_absolute(v);
    return 0;
}

static int load_resumption(const struct conf_ctx *c, const config_setting_t *g, struct tls_conf *t)
{
    static const char *const cache_keys[] = { "size", "timeout", NULL };
    static const char *const ticket_keys[] = { "enabled", "rotate", "lifetime", "max_age",
                                               "key_files", NULL };
    const config_setting_t *sc = NULL, *tk = NULL, *s;

    t->session_cache.size = CONFIG_DEFAULT_CACHE_SIZE;
    t->session_cache.timeout = CONFIG_DEFAULT_CACHE_TIMEOUT;
    t->tickets.enabled = true;
    t->tickets.rotate = CONFIG_DEFAULT_TICKET_ROTATE;
    t->tickets.lifetime = CONFIG_DEFAULT_TICKET_LIFETIME;
    t->tickets.max_age = CONFIG_MAX_TICKET_AGE;
    if (g && (conf_group(c, g, "session_cache", cache_keys, &sc) < 0 ||
              conf_group(c, g, "tickets", ticket_keys, &tk) < 0))
        return -1;
    if (sc && (get_size(c, sc, "size", CONFIG_DEFAULT_CACHE_SIZE, (size_t)4 << 30,
                        &t->session_cache.size) < 0 ||
               conf_duration(c, sc, "timeout", CONFIG_DEFAULT_CACHE_TIMEOUT,
                            &t->session_cache.timeout) < 0))
        return -1;
    if (!tk)
        return 0;
    if (conf_bool(c, tk, "enabled", true, &t->tickets.enabled) < 0 ||
        conf_duration(c, tk, "rotate", CONFIG_DEFAULT_TICKET_ROTATE, &t->tickets.rotate) < 0 ||
        conf_duration(c, tk, "lifetime", CONFIG_DEFAULT_TICKET_LIFETIME, &t->tickets.lifetime) < 0 ||
        conf_duration_max(c, tk, "max_age", CONFIG_MAX_TICKET_AGE, CONFIG_MAX_TICKET_AGE,
                          &t->tickets.max_age) < 0)
        return -1;
    if ((s = config_setting_get_member(tk, "key_files")) &&
        (config_setting_type(s) != CONFIG_TYPE_ARRAY || config_setting_length(s) > 0) &&
        conf_each_string(c, s, add_key_file, t) < 0)
        return -1;
    if (!t->tickets.nkey_files &&
        t->tickets.lifetime / t->tickets.rotate > CONFIG_MAX_TICKET_KEYS - 2) {
        s = config_setting_get_member(tk, "lifetime");
        return conf_fail(c, s ? s : tk, "lifetime / rotate must be at most %d (keys that still "
                    "decrypt), got %g / %g", CONFIG_MAX_TICKET_KEYS - 2, t->tickets.lifetime,
                    t->tickets.rotate);
    }
    return 0;
}

int conf_load_tls(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "preset", "protocols", "ciphers", "ciphersuites",
                                        "groups", "session_cache", "tickets", NULL };
    const config_setting_t *g, *s;
    struct tls_conf *t = &cfg->tls;
    int mask = 3;

    if (conf_group(c, root, "tls", keys, &g) < 0)
        return -1;
    t->preset = TLS_PRESET_INTERMEDIATE;
    t->where = g ? conf_where(c, g) : xstrdup(c->path);
    if (g && (s = config_setting_get_member(g, "preset"))) {
        char *p = NULL;
        if (conf_string(c, g, "preset", false, NULL, &p) < 0)
            return -1;
        if (strcmp(p, "modern") == 0)
            t->preset = TLS_PRESET_MODERN;
        else if (strcmp(p, "intermediate") != 0) {
            free(p);
            return conf_fail(c, s, "unknown preset (expected \"modern\" or \"intermediate\")");
        }
        free(p);
    }
    if (t->preset == TLS_PRESET_MODERN)
        mask = 2;
    if (g && (s = config_setting_get_member(g, "protocols"))) {
        mask = 0;
        if (conf_each_string(c, s, add_protocol, &mask) < 0)
            return -1;
    }
    t->min_version = (mask & 1) ? TLS1_2_VERSION : TLS1_3_VERSION;
    t->max_version = (mask & 2) ? TLS1_3_VERSION : TLS1_2_VERSION;

    if (g && conf_string(c, g, "ciphers", false, NULL, &t->ciphers) < 0)
        return -1;
    if ((s = g ? config_setting_get_member(g, "ciphers") : NULL)) {
        if (check_cipher_string(c, s, t->ciphers, true) < 0)
            return -1;
        t->ciphers_where = conf_where(c, s);
    } else {
        t->ciphers = xstrdup(TLS_POLICY_CIPHERS);
        t->ciphers_where = xstrdup(t->where);
    }
    if (g && conf_string(c, g, "ciphersuites", false, NULL, &t->ciphersuites) < 0)
        return -1;
    if ((s = g ? config_setting_get_member(g, "ciphersuites") : NULL)) {
        if (check_cipher_string(c, s, t->ciphersuites, false) < 0)
            return -1;
        t->suites_where = conf_where(c, s);
    } else {
        t->ciphersuites = xstrdup(TLS_POLICY_CIPHERSUITES);
        t->suites_where = xstrdup(t->where);
    }

    if (g && (s = config_setting_get_member(g, "groups"))) {
        struct strlist l = { .len = 0 };
        if (conf_each_string(c, s, add_group, &l) < 0)
            return -1;
        t->groups = xstrdup(l.buf);
    } else {
        t->groups = xstrdup(TLS_POLICY_GROUPS);
    }
    return load_resumption(c, g, t);
}
