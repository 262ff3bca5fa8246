#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <libconfig.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

#include "log.h"
#include "tls_policy.h"

struct ctx {
    const char *path;
    char *err;
    size_t errlen;
};

/* "tls.groups", "frontends[0].listen[1]" */
static void setting_path(const config_setting_t *s, char *buf, size_t len)
{
    const config_setting_t *chain[16];
    int n = 0;
    for (; s && n < 16; s = config_setting_parent(s))
        chain[n++] = s;
    buf[0] = '\0';
    size_t off = 0;
    for (int i = n - 1; i >= 0 && off < len; i--) {
        const config_setting_t *p = chain[i];
        if (config_setting_is_root(p))
            continue;
        const char *name = config_setting_name(p);
        if (name)
            off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "." : "", name);
        else
            off += (size_t)snprintf(buf + off, len - off, "[%d]", config_setting_index(p));
    }
}

static const char *setting_file(const struct ctx *c, const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);
    return f ? f : c->path;
}

__attribute__((format(printf, 3, 4)))
static int fail(const struct ctx *c, const config_setting_t *s, const char *fmt, ...)
{
    char path[256], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    setting_path(s, path, sizeof path);
    unsigned line = config_setting_source_line(s);
    if (line == 0)      /* the root: a missing top-level key has no line */
        snprintf(c->err, c->errlen, "%s: %s", setting_file(c, s), msg);
    else
        snprintf(c->err, c->errlen, "%s:%u: %s%s%s", setting_file(c, s), line, path,
                 path[0] ? ": " : "", msg);
    return -1;
}

static char *where(const struct ctx *c, const config_setting_t *s)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s:%u", setting_file(c, s), config_setting_source_line(s));
    return strdup(buf);
}

/* Rejects any member of group s whose name is not in allowed (NULL-terminated). */
static int check_keys(const struct ctx *c, const config_setting_t *s, const char *const *allowed)
{
    for (int i = 0; i < config_setting_length(s); i++) {
        config_setting_t *m = config_setting_get_elem(s, (unsigned)i);
        const char *name = config_setting_name(m);
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            if (strcmp(*a, name) == 0)
                ok = true;
        if (!ok) {
            char known[512];
            size_t off = 0;
            for (const char *const *a = allowed; *a && off < sizeof known; a++)
                off += (size_t)snprintf(known + off, sizeof known - off, "%s%s",
                                        a == allowed ? "" : ", ", *a);
            return fail(c, m, "unknown key (known here: %s)", known);
        }
    }
    return 0;
}

static const char *type_name(int type)
{
    switch (type) {
    case CONFIG_TYPE_GROUP: return "a group { }";
    case CONFIG_TYPE_INT: case CONFIG_TYPE_INT64: return "an integer";
    case CONFIG_TYPE_FLOAT: return "a number";
    case CONFIG_TYPE_STRING: return "a string";
    case CONFIG_TYPE_BOOL: return "true or false";
    case CONFIG_TYPE_ARRAY: return "an array [ ]";
    case CONFIG_TYPE_LIST: return "a list ( )";
    default: return "something else";
    }
}

/* Member lookups: 0 = found (or absent and not required), -1 = error. */
static int get_member(const struct ctx *c, const config_setting_t *grp, const char *name,
                      bool required, const config_setting_t **out)
{
    *out = config_setting_get_member(grp, name);
    if (!*out && required)
        return fail(c, grp, "missing required key '%s'", name);
    return 0;
}

static int get_string(const struct ctx *c, const config_setting_t *grp, const char *name,
                      bool required, const char *def, char **out)
{
    const config_setting_t *s;
    if (get_member(c, grp, name, required, &s) < 0)
        return -1;
    if (!s) {
        *out = def ? strdup(def) : NULL;
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(c, s, "expected a string, got %s", type_name(config_setting_type(s)));
    *out = strdup(config_setting_get_string(s));
    return 0;
}

static int get_nonempty_string(const struct ctx *c, const config_setting_t *grp,
                               const char *name, bool required, char **out)
{
    if (get_string(c, grp, name, required, NULL, out) < 0)
        return -1;
    if (*out && !**out)
        return fail(c, config_setting_get_member(grp, name), "must not be empty");
    return 0;
}

static int get_bool(const struct ctx *c, const config_setting_t *grp, const char *name,
                    bool def, bool *out)
{
    const config_setting_t *s = config_setting_get_member(grp, name);
    if (!s) {
        *out = def;
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return fail(c, s, "expected true or false, got %s", type_name(config_setting_type(s)));
    *out = config_setting_get_bool(s);
    return 0;
}

static int get_int(const struct ctx *c, const config_setting_t *grp, const char *name,
                   long long def, long long min, long long max, int *out)
{
    const config_setting_t *s = config_setting_get_member(grp, name);
    long long v = def;
    if (s) {
        int t = config_setting_type(s);
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail(c, s, "expected an integer, got %s", type_name(t));
        v = config_setting_get_int64(s);
        if (v < min || v > max)
            return fail(c, s, "must be from %lld to %lld, got %lld", min, max, v);
    }
    *out = (int)v;
    return 0;
}

/* Durations are seconds, integer or float, > 0 and at most a day. */
static int get_duration(const struct ctx *c, const config_setting_t *grp, const char *name,
                        double def, double *out)
{
    const config_setting_t *s = config_setting_get_member(grp, name);
    if (!s) {
        *out = def;
        return 0;
    }
    int t = config_setting_type(s);
    double v;
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
        v = (double)config_setting_get_int64(s);
    else if (t == CONFIG_TYPE_FLOAT)
        v = config_setting_get_float(s);
    else
        return fail(c, s, "expected a duration in seconds, got %s", type_name(t));
    if (!(v >= 0.001 && v <= 86400))
        return fail(c, s, "must be a duration from 0.001 to 86400 seconds, got %g", v);
    *out = v;
    return 0;
}

static int get_group(const struct ctx *c, const config_setting_t *parent, const char *name,
                     const char *const *allowed, const config_setting_t **out)
{
    *out = config_setting_get_member(parent, name);
    if (!*out)
        return 0;
    if (config_setting_type(*out) != CONFIG_TYPE_GROUP)
        return fail(c, *out, "expected a group { ... }, got %s",
                    type_name(config_setting_type(*out)));
    return check_keys(c, *out, allowed);
}

/* A list ( ... ) of groups, at least one. */
static int get_list(const struct ctx *c, const config_setting_t *parent, const char *name,
                    const config_setting_t **out)
{
    *out = config_setting_get_member(parent, name);
    if (!*out)
        return fail(c, parent, "missing required key '%s'", name);
    if (config_setting_type(*out) != CONFIG_TYPE_LIST)
        return fail(c, *out, "expected a list ( { ... }, ... ), got %s",
                    type_name(config_setting_type(*out)));
    if (config_setting_length(*out) == 0)
        return fail(c, *out, "must have at least one entry");
    for (int i = 0; i < config_setting_length(*out); i++) {
        const config_setting_t *e = config_setting_get_elem(*out, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_GROUP)
            return fail(c, e, "expected a group { ... }, got %s",
                        type_name(config_setting_type(e)));
    }
    return 0;
}

/* A string or an array of strings (at least one), each passed to fn. */
typedef int (*str_fn)(const struct ctx *, const config_setting_t *, const char *, void *);

static int each_string(const struct ctx *c, const config_setting_t *s, str_fn fn, void *arg)
{
    if (config_setting_type(s) == CONFIG_TYPE_STRING)
        return fn(c, s, config_setting_get_string(s), arg);
    if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
        return fail(c, s, "expected a string or an array of strings, got %s",
                    type_name(config_setting_type(s)));
    if (config_setting_length(s) == 0)
        return fail(c, s, "must have at least one entry");
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return fail(c, e, "expected a string, got %s", type_name(config_setting_type(e)));
        if (fn(c, e, config_setting_get_string(e), arg) < 0)
            return -1;
    }
    return 0;
}

/* An absolute version of path: the daemon runs in "/", and files are
 * opened again later (log rotation, stop). */
static char *absolute(const char *path)
{
    char cwd[4096], *out;
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return strdup(path);
    if (asprintf(&out, "%s/%s", cwd, path) < 0)
        return strdup(path);
    return out;
}

static void make_absolute(char **path)
{
    if (*path && **path) {
        char *a = absolute(*path);
        free(*path);
        *path = a;
    }
}

/* ---- log, workers, timeouts ---- */

static int load_log(const struct ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "destination", "facility", "level", "access_log", NULL };
    const config_setting_t *g, *s;
    char *str = NULL;

    if (get_group(c, root, "log", keys, &g) < 0)
        return -1;
    cfg->log.facility = log_facility_parse("daemon");
    cfg->log.level = LOG_LVL_INFO;
    if (!g) {
        cfg->log.destination = strdup("syslog");
        return 0;
    }
    if (get_nonempty_string(c, g, "destination", false, &cfg->log.destination) < 0)
        return -1;
    if (!cfg->log.destination)
        cfg->log.destination = strdup("syslog");
    if ((s = config_setting_get_member(g, "facility"))) {
        if (get_string(c, g, "facility", false, NULL, &str) < 0)
            return -1;
        cfg->log.facility = log_facility_parse(str);
        free(str);
        if (cfg->log.facility < 0)
            return fail(c, s, "unknown syslog facility (expected daemon, user, auth, "
                              "authpriv or local0..local7)");
    }
    if ((s = config_setting_get_member(g, "level"))) {
        if (get_string(c, g, "level", false, NULL, &str) < 0)
            return -1;
        cfg->log.level = log_level_parse(str);
        free(str);
        if (cfg->log.level < 0)
            return fail(c, s, "unknown level (expected error, warning, notice, info or debug)");
    }
    if (get_string(c, g, "access_log", false, NULL, &cfg->log.access_log) < 0)
        return -1;
    if (strcmp(cfg->log.destination, "stderr") != 0 && strcmp(cfg->log.destination, "syslog") != 0)
        make_absolute(&cfg->log.destination);
    make_absolute(&cfg->log.access_log);
    return 0;
}

static int load_workers(const struct ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "count", "min_spare", "max_spare", "max",
                                        "max_connections", NULL };
    const config_setting_t *g;
    struct { int *v; const char *k; int def, lo, hi; } ints[] = {
        { &cfg->workers.count, "count", CONFIG_DEFAULT_WORKERS, 0, CONFIG_MAX_WORKERS },
        { &cfg->workers.min_spare, "min_spare", CONFIG_DEFAULT_MIN_SPARE, 1, CONFIG_MAX_WORKERS },
        { &cfg->workers.max_spare, "max_spare", CONFIG_DEFAULT_MAX_SPARE, 1, CONFIG_MAX_WORKERS },
        { &cfg->workers.max, "max", CONFIG_DEFAULT_MAX_WORKERS, 1, CONFIG_MAX_WORKERS },
        { &cfg->workers.max_connections, "max_connections", 0, 0, 1000000000 },
    };
    if (get_group(c, root, "workers", keys, &g) < 0)
        return -1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        *ints[i].v = ints[i].def;
        if (g && get_int(c, g, ints[i].k, ints[i].def, ints[i].lo, ints[i].hi, ints[i].v) < 0)
            return -1;
    }
    const struct config_workers_check { bool bad; const char *k, *msg; } checks[] = {
        { cfg->workers.max_spare < cfg->workers.min_spare, "max_spare",
          "must be at least min_spare" },
        { cfg->workers.max < cfg->workers.min_spare, "max", "must be at least min_spare" },
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].bad && !cfg->workers.count) {
            const config_setting_t *s = g ? config_setting_get_member(g, checks[i].k) : NULL;
            return fail(c, s ? s : (g ? g : root), "workers.%s %s", checks[i].k, checks[i].msg);
        }
    return 0;
}

static int load_timeouts(const struct ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "handshake", "connect", "idle", "shutdown", NULL };
    const config_setting_t *g;
    if (get_group(c, root, "timeouts", keys, &g) < 0)
        return -1;
    cfg->timeouts.handshake = CONFIG_DEFAULT_HANDSHAKE;
    cfg->timeouts.connect = CONFIG_DEFAULT_CONNECT;
    cfg->timeouts.idle = CONFIG_DEFAULT_IDLE;
    cfg->timeouts.shutdown = CONFIG_DEFAULT_SHUTDOWN;
    if (!g)
        return 0;
    if (get_duration(c, g, "handshake", CONFIG_DEFAULT_HANDSHAKE, &cfg->timeouts.handshake) < 0 ||
        get_duration(c, g, "connect", CONFIG_DEFAULT_CONNECT, &cfg->timeouts.connect) < 0 ||
        get_duration(c, g, "idle", CONFIG_DEFAULT_IDLE, &cfg->timeouts.idle) < 0 ||
        get_duration(c, g, "shutdown", CONFIG_DEFAULT_SHUTDOWN, &cfg->timeouts.shutdown) < 0)
        return -1;
    return 0;
}

/* ---- tls ---- */

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

static int add_protocol(const struct ctx *c, const config_setting_t *s, const char *v, void *arg)
{
    int *mask = arg;
    if (strcmp(v, "TLSv1.2") == 0)
        *mask |= 1;
    else if (strcmp(v, "TLSv1.3") == 0)
        *mask |= 2;
    else
        return fail(c, s, "unsupported protocol '%s' (expected \"TLSv1.2\" or \"TLSv1.3\"; "
                          "older versions are not offered)", v);
    return 0;
}

static int add_group(const struct ctx *c, const config_setting_t *s, const char *v, void *arg)
{
    static const char *const known[] = { "X25519", "X448", "P-256", "P-384", "P-521", NULL };
    for (const char *const *k = known; *k; k++)
        if (strcmp(*k, v) == 0) {
            if (append(arg, v) < 0)
                return fail(c, s, "too many groups");
            return 0;
        }
    return fail(c, s, "unknown group '%s' (expected X25519, X448, P-256, P-384 or P-521)", v);
}

/*
 * Cipher lists name suites one by one (no keywords such as HIGH or ALL):
 * AEAD suites only, and for TLS 1.2 only ECDHE or DHE key exchange, so an
 * override can narrow the defaults but never weaken them. Whether wolfSSL
 * knows each name is checked by tls_policy.c.
 */
static int check_cipher_string(const struct ctx *c, const config_setting_t *s, const char *v,
                               bool tls12)
{
    static const char *const aead[] = { "GCM", "CHACHA20", "CCM", NULL };
    if (!*v)
        return fail(c, s, "must not be empty");
    char *copy = strdup(v), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ":", &save); t && rc == 0; t = strtok_r(NULL, ":", &save)) {
        bool ok = false;
        for (const char *const *a = aead; *a; a++)
            ok |= strstr(t, *a) != NULL;
        if (!ok)
            rc = fail(c, s, "'%s' is not an AEAD suite (name suites one by one: AES-GCM, "
                            "ChaCha20-Poly1305 or AES-CCM; keywords like HIGH are not taken)", t);
        else if (tls12 && strncmp(t, "ECDHE-", 6) != 0 && strncmp(t, "DHE-", 4) != 0 &&
                 strncmp(t, "TLS_ECDHE_", 10) != 0 && strncmp(t, "TLS_DHE_", 8) != 0)
            rc = fail(c, s, "'%s' has no forward secrecy (TLS 1.2 suites must be ECDHE or DHE)",
                      t);
        else if (!tls12 && ((strncmp(t, "TLS13-", 6) != 0 && strncmp(t, "TLS_", 4) != 0) ||
                            strstr(t, "_WITH_")))
            rc = fail(c, s, "'%s' is not a TLS 1.3 suite (TLS13-... or TLS_... names)", t);
    }
    free(copy);
    return rc;
}

/* Sizes: an integer of bytes, or a string with a K, M or G suffix. */
static int get_size(const struct ctx *c, const config_setting_t *grp, const char *name,
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
            return fail(c, s, "expected a size such as 32M, got '%s'", str);
        switch (*end) {
        case 'K': case 'k': v <<= 10; end++; break;
        case 'M': case 'm': v <<= 20; end++; break;
        case 'G': case 'g': v <<= 30; end++; break;
        }
        if (*end)
            return fail(c, s, "expected a size such as 32M (suffix K, M or G), got '%s'", str);
    } else {
        return fail(c, s, "expected a size (bytes, or a string such as \"32M\"), got %s",
                    type_name(t));
    }
    if (v < 0 || (unsigned long long)v > max)
        return fail(c, s, "must be from 0 to %zu bytes, got %lld", max, v);
    *out = (size_t)v;
    return 0;
}

static int add_key_file(const struct ctx *c, const config_setting_t *s, const char *v, void *arg)
{
    struct tls_conf *t = arg;
    if (!*v)
        return fail(c, s, "must not be empty");
    if (t->tickets.nkey_files == CONFIG_MAX_TICKET_KEYS)
        return fail(c, s, "at most %d key files", CONFIG_MAX_TICKET_KEYS);
    t->tickets.key_files = realloc(t->tickets.key_files,
                                   (t->tickets.nkey_files + 1) * sizeof(char *));
    t->tickets.key_files[t->tickets.nkey_files++] = absolute(v);
    return 0;
}

static int load_resumption(const struct ctx *c, const config_setting_t *g, struct tls_conf *t)
{
    static const char *const cache_keys[] = { "size", "timeout", NULL };
    static const char *const ticket_keys[] = { "enabled", "rotate", "lifetime", "key_files",
                                               NULL };
    const config_setting_t *sc = NULL, *tk = NULL, *s;

    t->session_cache.size = CONFIG_DEFAULT_CACHE_SIZE;
    t->session_cache.timeout = CONFIG_DEFAULT_CACHE_TIMEOUT;
    t->tickets.enabled = true;
    t->tickets.rotate = CONFIG_DEFAULT_TICKET_ROTATE;
    t->tickets.lifetime = CONFIG_DEFAULT_TICKET_LIFETIME;
    if (g && (get_group(c, g, "session_cache", cache_keys, &sc) < 0 ||
              get_group(c, g, "tickets", ticket_keys, &tk) < 0))
        return -1;
    if (sc && (get_size(c, sc, "size", CONFIG_DEFAULT_CACHE_SIZE, (size_t)4 << 30,
                        &t->session_cache.size) < 0 ||
               get_duration(c, sc, "timeout", CONFIG_DEFAULT_CACHE_TIMEOUT,
                            &t->session_cache.timeout) < 0))
        return -1;
    if (!tk)
        return 0;
    if (get_bool(c, tk, "enabled", true, &t->tickets.enabled) < 0 ||
        get_duration(c, tk, "rotate", CONFIG_DEFAULT_TICKET_ROTATE, &t->tickets.rotate) < 0 ||
        get_duration(c, tk, "lifetime", CONFIG_DEFAULT_TICKET_LIFETIME, &t->tickets.lifetime) < 0)
        return -1;
    if ((s = config_setting_get_member(tk, "key_files")) &&
        (config_setting_type(s) != CONFIG_TYPE_ARRAY || config_setting_length(s) > 0) &&
        each_string(c, s, add_key_file, t) < 0)
        return -1;
    if (!t->tickets.nkey_files &&
        t->tickets.lifetime / t->tickets.rotate > CONFIG_MAX_TICKET_KEYS - 2) {
        s = config_setting_get_member(tk, "lifetime");
        return fail(c, s ? s : tk, "lifetime / rotate must be at most %d (keys that still "
                    "decrypt), got %g / %g", CONFIG_MAX_TICKET_KEYS - 2, t->tickets.lifetime,
                    t->tickets.rotate);
    }
    return 0;
}

static int load_tls(const struct ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "preset", "protocols", "ciphers", "ciphersuites",
                                        "groups", "session_cache", "tickets", NULL };
    const config_setting_t *g, *s;
    struct tls_conf *t = &cfg->tls;
    int mask = 3;

    if (get_group(c, root, "tls", keys, &g) < 0)
        return -1;
    t->preset = TLS_PRESET_INTERMEDIATE;
    t->where = g ? where(c, g) : strdup(c->path);
    if (g && (s = config_setting_get_member(g, "preset"))) {
        char *p = NULL;
        if (get_string(c, g, "preset", false, NULL, &p) < 0)
            return -1;
        if (strcmp(p, "modern") == 0)
            t->preset = TLS_PRESET_MODERN;
        else if (strcmp(p, "intermediate") != 0) {
            free(p);
            return fail(c, s, "unknown preset (expected \"modern\" or \"intermediate\")");
        }
        free(p);
    }
    if (t->preset == TLS_PRESET_MODERN)
        mask = 2;
    if (g && (s = config_setting_get_member(g, "protocols"))) {
        mask = 0;
        if (each_string(c, s, add_protocol, &mask) < 0)
            return -1;
    }
    t->min_version = (mask & 1) ? TLS1_2_VERSION : TLS1_3_VERSION;
    t->max_version = (mask & 2) ? TLS1_3_VERSION : TLS1_2_VERSION;

    if (g && get_string(c, g, "ciphers", false, NULL, &t->ciphers) < 0)
        return -1;
    if ((s = g ? config_setting_get_member(g, "ciphers") : NULL)) {
        if (check_cipher_string(c, s, t->ciphers, true) < 0)
            return -1;
        t->ciphers_where = where(c, s);
    } else {
        t->ciphers = strdup(TLS_POLICY_CIPHERS);
        t->ciphers_where = strdup(t->where);
    }
    if (g && get_string(c, g, "ciphersuites", false, NULL, &t->ciphersuites) < 0)
        return -1;
    if ((s = g ? config_setting_get_member(g, "ciphersuites") : NULL)) {
        if (check_cipher_string(c, s, t->ciphersuites, false) < 0)
            return -1;
        t->suites_where = where(c, s);
    } else {
        t->ciphersuites = strdup(TLS_POLICY_CIPHERSUITES);
        t->suites_where = strdup(t->where);
    }

    if (g && (s = config_setting_get_member(g, "groups"))) {
        struct strlist l = { .len = 0 };
        if (each_string(c, s, add_group, &l) < 0)
            return -1;
        t->groups = strdup(l.buf);
    } else {
        t->groups = strdup(TLS_POLICY_GROUPS);
    }
    return load_resumption(c, g, t);
}

/* ---- frontends and upstreams ---- */

struct listen_acc {
    struct frontend_conf *fe;
    size_t cap;
};

static int add_listen(const struct ctx *c, const config_setting_t *s, const char *v, void *arg)
{
    struct listen_acc *a = arg;
    char why[256];
    struct addr ad;
    if (addr_parse(v, false, &ad, why, sizeof why) < 0)
        return fail(c, s, "%s", why);
    if (a->fe->nlisten == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4;
        a->fe->listen = realloc(a->fe->listen, a->cap * sizeof *a->fe->listen);
    }
    a->fe->listen[a->fe->nlisten].text = strdup(v);
    a->fe->listen[a->fe->nlisten].addr = ad;
    a->fe->nlisten++;
    return 0;
}

/* A file the daemon will read: it must be readable now. */
static int check_readable(const struct ctx *c, const config_setting_t *s, const char *path)
{
    if (access(path, R_OK) < 0)
        return fail(c, s, "cannot read '%s': %s", path, strerror(errno));
    return 0;
}

static int get_file(const struct ctx *c, const config_setting_t *g, const char *name,
                    char **out)
{
    if (get_string(c, g, name, false, NULL, out) < 0)
        return -1;
    if (*out && !**out) {               /* "" = none */
        free(*out);
        *out = NULL;
    }
    make_absolute(out);
    return *out ? check_readable(c, config_setting_get_member(g, name), *out) : 0;
}

static int load_cert(const struct ctx *c, const config_setting_t *g, struct cert_conf *cc)
{
    static const char *const keys[] = { "cert", "key", "ocsp_file", NULL };
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return fail(c, g, "expected a group { cert = ...; key = ...; }, got %s",
                    type_name(config_setting_type(g)));
    if (check_keys(c, g, keys) < 0)
        return -1;
    cc->where = where(c, g);
    if (get_nonempty_string(c, g, "cert", true, &cc->cert) < 0)
        return -1;
    if (get_nonempty_string(c, g, "key", false, &cc->key) < 0)
        return -1;
    if (!cc->key)                       /* key in the same PEM file as the chain */
        cc->key = strdup(cc->cert);
    make_absolute(&cc->cert);
    make_absolute(&cc->key);
    return get_file(c, g, "ocsp_file", &cc->ocsp_file);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

/* A regular file's path if dir/base+suffix exists, else NULL. */
static char *sibling(const char *dir, const char *name, size_t baselen, const char *suffix)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%.*s%s", dir, (int)baselen, name, suffix);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) ? strdup(p) : NULL;
}

/*
 * cert_dir: every NAME.pem or NAME.crt, in name order, is a chain; its key
 * is NAME.key if that exists, else in the same file; NAME.ocsp, if it
 * exists, is the OCSP response to staple.
 */
static int load_cert_dir(const struct ctx *c, const config_setting_t *s, struct frontend_conf *fe)
{
    DIR *d = opendir(fe->cert_dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    if (!d)
        return fail(c, s, "cannot open directory '%s': %s", fe->cert_dir, strerror(errno));
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !(has_suffix(e->d_name, ".pem") || has_suffix(e->d_name, ".crt")))
            continue;
        if (n == cap)
            names = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    if (fe->ncerts + n > CONFIG_MAX_CERTS)
        rc = fail(c, s, "at most %d certificates per frontend", CONFIG_MAX_CERTS);
    else if (n)
        fe->certs = realloc(fe->certs, (fe->ncerts + n) * sizeof *fe->certs);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            struct cert_conf *cc = &fe->certs[fe->ncerts++];
            size_t base = strlen(names[i]) - 4;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", fe->cert_dir, names[i]);
            cc->cert = strdup(p);
            cc->key = sibling(fe->cert_dir, names[i], base, ".key");
            if (!cc->key)
                cc->key = strdup(p);
            cc->ocsp_file = sibling(fe->cert_dir, names[i], base, ".ocsp");
            char w[4200];
            snprintf(w, sizeof w, "%s:%d: cert_dir file '%s'", setting_file(c, s),
                     config_setting_source_line(s), names[i]);
            cc->where = strdup(w);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int add_alpn(const struct ctx *c, const config_setting_t *s, const char *v, void *arg)
{
    struct frontend_conf *fe = arg;
    size_t len = strlen(v);
    if (len == 0 || len > 255)
        return fail(c, s, "an ALPN protocol name must have 1 to 255 bytes");
    for (size_t i = 0; i < len; i++)
        if (v[i] <= ' ' || v[i] > '~' || v[i] == '"' || v[i] == '\\')
            return fail(c, s, "ALPN protocol '%s': printable ASCII only, no space, quote or "
                              "backslash", v);
    for (size_t i = 0; i < fe->nalpn; i++)
        if (strcmp(fe->alpn[i], v) == 0)
            return fail(c, s, "ALPN protocol '%s' is listed twice", v);
    if (fe->nalpn == CONFIG_MAX_ALPN)
        return fail(c, s, "at most %d ALPN protocols", CONFIG_MAX_ALPN);
    fe->alpn = realloc(fe->alpn, (fe->nalpn + 1) * sizeof *fe->alpn);
    fe->alpn[fe->nalpn++] = strdup(v);
    return 0;
}

static int add_route(const struct ctx *c, const config_setting_t *s, struct frontend_conf *fe,
                     const char *protocol, const char *upstream)
{
    for (size_t i = 0; i < fe->nroutes; i++)
        if (strcmp(fe->routes[i].protocol, protocol) == 0)
            return fail(c, s, "ALPN protocol '%s' is routed twice", protocol);
    fe->routes = realloc(fe->routes, (fe->nroutes + 1) * sizeof *fe->routes);
    fe->routes[fe->nroutes++] = (struct alpn_route){ .protocol = strdup(protocol),
                                                     .upstream = strdup(upstream),
                                                     .where = where(c, s) };
    return 0;
}

/*
 * alpn_upstreams: a group { h2 = "up"; } for protocol names that are
 * libconfig names, or a list ( { protocol = "http/1.1"; upstream = "up"; } ).
 */
static int load_routes(const struct ctx *c, const config_setting_t *g, struct frontend_conf *fe)
{
    static const char *const keys[] = { "protocol", "upstream", NULL };
    const config_setting_t *s = config_setting_get_member(g, "alpn_upstreams");
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_GROUP && t != CONFIG_TYPE_LIST)
        return fail(c, s, "expected a group { h2 = \"upstream\"; } or a list "
                          "( { protocol = ...; upstream = ...; } ), got %s", type_name(t));
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        char *proto = NULL, *up = NULL;
        int rc;
        if (t == CONFIG_TYPE_GROUP) {
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return fail(c, e, "expected an upstream name, got %s",
                            type_name(config_setting_type(e)));
            rc = add_route(c, e, fe, config_setting_name(e), config_setting_get_string(e));
        } else {
            if (config_setting_type(e) != CONFIG_TYPE_GROUP)
                return fail(c, e, "expected a group { protocol = ...; upstream = ...; }, got %s",
                            type_name(config_setting_type(e)));
            rc = check_keys(c, e, keys) < 0 ||
                 get_nonempty_string(c, e, "protocol", true, &proto) < 0 ||
                 get_nonempty_string(c, e, "upstream", true, &up) < 0 ? -1
                 : add_route(c, e, fe, proto, up);
            free(proto);
            free(up);
        }
        if (rc < 0)
            return -1;
    }
    for (size_t i = 0; i < fe->nroutes; i++) {
        size_t j;
        for (j = 0; j < fe->nalpn && strcmp(fe->alpn[j], fe->routes[i].protocol); j++)
            ;
        if (j == fe->nalpn)
            return fail(c, config_setting_get_elem(s, (unsigned)i),
                        "ALPN protocol '%s' is not offered by this frontend (add it to alpn)",
                        fe->routes[i].protocol);
    }
    return 0;
}

static int get_enum(const struct ctx *c, const config_setting_t *grp, const char *name,
                    const char *const *names, int def, int *out);

/* verify_client, client_ca, client_crl, verify_depth. */
static int load_client_auth(const struct ctx *c, const config_setting_t *g,
                            struct frontend_conf *fe)
{
    static const char *const modes[] = { "none", "optional", "required", NULL };
    int mode;
    if (get_enum(c, g, "verify_client", modes, VERIFY_CLIENT_NONE, &mode) < 0 ||
        get_file(c, g, "client_ca", &fe->client_ca) < 0 ||
        get_file(c, g, "client_crl", &fe->client_crl) < 0 ||
        get_int(c, g, "verify_depth", CONFIG_DEFAULT_VERIFY_DEPTH, 1, 16, &fe->verify_depth) < 0)
        return -1;
    fe->verify_client = (enum verify_client)mode;
    if (fe->verify_client != VERIFY_CLIENT_NONE && !fe->client_ca)
        return fail(c, config_setting_get_member(g, "verify_client"),
                    "verify_client = \"%s\" needs client_ca (the CA certificates that issue "
                    "client certificates)", modes[mode]);
    return 0;
}

static int load_frontend(const struct ctx *c, const config_setting_t *g, struct frontend_conf *fe)
{
    static const char *const keys[] = { "name", "listen", "certificates", "cert_dir",
                                        "strict_sni", "alpn", "alpn_upstreams",
                                        "verify_client", "client_ca", "client_crl",
                                        "verify_depth", "upstream", NULL };
    const config_setting_t *s, *certs;
    struct listen_acc acc = { fe, 0 };

    if (check_keys(c, g, keys) < 0)
        return -1;
    fe->where = where(c, g);
    if (get_nonempty_string(c, g, "name", true, &fe->name) < 0 ||
        get_member(c, g, "listen", true, &s) < 0 ||
        each_string(c, s, add_listen, &acc) < 0)
        return -1;
    certs = config_setting_get_member(g, "certificates");
    if (certs && config_setting_type(certs) != CONFIG_TYPE_LIST)
        return fail(c, certs, "expected a list ( { cert = ...; key = ...; }, ... ), got %s",
                    type_name(config_setting_type(certs)));
    fe->ncerts = certs ? (size_t)config_setting_length(certs) : 0;
    if (fe->ncerts > CONFIG_MAX_CERTS)
        return fail(c, certs, "at most %d certificates per frontend", CONFIG_MAX_CERTS);
    fe->certs = calloc(fe->ncerts ? fe->ncerts : 1, sizeof *fe->certs);
    for (size_t i = 0; i < fe->ncerts; i++)
        if (load_cert(c, config_setting_get_elem(certs, (unsigned)i), &fe->certs[i]) < 0)
            return -1;
    if (get_nonempty_string(c, g, "cert_dir", false, &fe->cert_dir) < 0)
        return -1;
    if (fe->cert_dir) {
        make_absolute(&fe->cert_dir);
        if (load_cert_dir(c, config_setting_get_member(g, "cert_dir"), fe) < 0)
            return -1;
    }
    if (fe->ncerts == 0)
        return fail(c, certs ? certs : g, "frontend '%s' has no certificate (give "
                    "certificates, or a cert_dir with *.pem or *.crt files)", fe->name);
    if (get_bool(c, g, "strict_sni", false, &fe->strict_sni) < 0)
        return -1;
    if ((s = config_setting_get_member(g, "alpn")) && each_string(c, s, add_alpn, fe) < 0)
        return -1;
    if (load_routes(c, g, fe) < 0 || load_client_auth(c, g, fe) < 0)
        return -1;
    return get_nonempty_string(c, g, "upstream", true, &fe->upstream);
}

/* One of names[] (NULL-terminated); its index in *out. */
static int get_enum(const struct ctx *c, const config_setting_t *grp, const char *name,
                    const char *const *names, int def, int *out)
{
    const config_setting_t *s = config_setting_get_member(grp, name);
    *out = def;
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return fail(c, s, "expected a string, got %s", type_name(config_setting_type(s)));
    const char *v = config_setting_get_string(s);
    char known[256];
    size_t off = 0;
    for (int i = 0; names[i]; i++) {
        if (strcmp(v, names[i]) == 0) {
            *out = i;
            return 0;
        }
        off += (size_t)snprintf(known + off, sizeof known - off, "%s\"%s\"",
                                i ? ", " : "", names[i]);
    }
    return fail(c, s, "unknown value \"%s\" (expected %s)", v, known);
}

static int get_proxy(const struct ctx *c, const config_setting_t *g, enum proxy_protocol def,
                     enum proxy_protocol *out)
{
    static const char *const names[] = { "off", "v1", "v2", NULL };
    int v;
    if (get_enum(c, g, "proxy_protocol", names, (int)def, &v) < 0)
        return -1;
    *out = (enum proxy_protocol)v;
    return 0;
}

/* A server's tls: true/false, or a group of settings (which means true). */
static int load_backend_tls(const struct ctx *c, const config_setting_t *g,
                            struct backend_tls_conf *t)
{
    static const char *const keys[] = { "enabled", "verify", "ca_file", "sni", "verify_name",
                                        "cert", "key", NULL };
    const config_setting_t *s = config_setting_get_member(g, "tls");
    t->verify = true;
    if (!s)
        return 0;
    if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
        t->enabled = config_setting_get_bool(s);
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_GROUP)
        return fail(c, s, "expected true, false or a group { ... }, got %s",
                    type_name(config_setting_type(s)));
    if (check_keys(c, s, keys) < 0 ||
        get_bool(c, s, "enabled", true, &t->enabled) < 0 ||
        get_bool(c, s, "verify", true, &t->verify) < 0 ||
        get_nonempty_string(c, s, "ca_file", false, &t->ca_file) < 0 ||
        get_nonempty_string(c, s, "sni", false, &t->sni) < 0 ||
        get_nonempty_string(c, s, "verify_name", false, &t->verify_name) < 0 ||
        get_nonempty_string(c, s, "cert", false, &t->cert) < 0 ||
        get_nonempty_string(c, s, "key", false, &t->key) < 0)
        return -1;
    if (t->key && !t->cert)
        return fail(c, config_setting_get_member(s, "key"), "a key needs a cert");
    if (t->cert && !t->key)
        t->key = strdup(t->cert);
    if (!t->verify_name && t->sni)
        t->verify_name = strdup(t->sni);
    make_absolute(&t->ca_file);
    make_absolute(&t->cert);
    make_absolute(&t->key);
    return 0;
}

static int load_server(const struct ctx *c, const config_setting_t *g, struct server_conf *sv,
                       const struct upstream_conf *up)
{
    static const char *const keys[] = { "address", "weight", "backup", "max_conns",
                                        "proxy_protocol", "tls", NULL };
    char why[256];
    if (check_keys(c, g, keys) < 0 ||
        get_nonempty_string(c, g, "address", true, &sv->address) < 0)
        return -1;
    sv->where = where(c, g);
    if (addr_parse(sv->address, true, &sv->addr, why, sizeof why) < 0)
        return fail(c, config_setting_get_member(g, "address"), "%s", why);
    if (addr_port((const struct sockaddr *)&sv->addr.sa) == 0)
        return fail(c, config_setting_get_member(g, "address"), "no usable address");
    if (get_int(c, g, "weight", 1, 1, 1000, &sv->weight) < 0 ||
        get_bool(c, g, "backup", false, &sv->backup) < 0 ||
        get_int(c, g, "max_conns", 0, 0, 1000000, &sv->max_conns) < 0 ||
        get_proxy(c, g, up->proxy, &sv->proxy) < 0 ||
        load_backend_tls(c, g, &sv->tls) < 0)
        return -1;
    return 0;
}

/* "200", 200 or "200-399". */
static int get_expect(const struct ctx *c, const config_setting_t *g, struct health_conf *h)
{
    const config_setting_t *s = config_setting_get_member(g, "expect");
    h->expect_lo = 200;
    h->expect_hi = 399;
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        h->expect_lo = h->expect_hi = (int)config_setting_get_int64(s);
    } else if (t == CONFIG_TYPE_STRING) {
        const char *v = config_setting_get_string(s);
        int n = 0;
        if (sscanf(v, "%d-%d%n", &h->expect_lo, &h->expect_hi, &n) != 2 || v[n]) {
            n = 0;
            if (sscanf(v, "%d%n", &h->expect_lo, &n) != 1 || v[n])
                return fail(c, s, "expected a status or a range such as \"200-399\", got \"%s\"",
                            v);
            h->expect_hi = h->expect_lo;
        }
    } else {
        return fail(c, s, "expected a status or a range such as \"200-399\", got %s",
                    type_name(t));
    }
    if (h->expect_lo < 100 || h->expect_hi > 599 || h->expect_lo > h->expect_hi)
        return fail(c, s, "status range must lie within 100-599, low to high");
    return 0;
}

static int load_health(const struct ctx *c, const config_setting_t *up, struct health_conf *h)
{
    static const char *const keys[] = { "type", "path", "host", "expect", "body", "interval",
                                        "timeout", "rise", "fall", "start", NULL };
    static const char *const types[] = { "none", "tcp", "http", "tls", NULL };
    static const char *const starts[] = { "down", "up", NULL };
    const config_setting_t *g;
    int type = HEALTH_TCP, start = 1;

    h->interval = CONFIG_DEFAULT_HEALTH_INTERVAL;
    h->timeout = CONFIG_DEFAULT_HEALTH_TIMEOUT;
    h->rise = CONFIG_DEFAULT_RISE;
    h->fall = CONFIG_DEFAULT_FALL;
    h->expect_lo = 200;
    h->expect_hi = 399;
    h->path = strdup("/");
    if (get_group(c, up, "health", keys, &g) < 0)
        return -1;
    if (g) {
        char *path = NULL;
        if (get_enum(c, g, "type", types, HEALTH_TCP, &type) < 0 ||
            get_enum(c, g, "start", starts, 1, &start) < 0 ||
            get_nonempty_string(c, g, "path", false, &path) < 0 ||
            get_nonempty_string(c, g, "host", false, &h->host) < 0 ||
            get_nonempty_string(c, g, "body", false, &h->body) < 0 ||
            get_expect(c, g, h) < 0 ||
            get_duration(c, g, "interval", CONFIG_DEFAULT_HEALTH_INTERVAL, &h->interval) < 0 ||
            get_duration(c, g, "timeout", CONFIG_DEFAULT_HEALTH_TIMEOUT, &h->timeout) < 0 ||
            get_int(c, g, "rise", CONFIG_DEFAULT_RISE, 1, 100, &h->rise) < 0 ||
            get_int(c, g, "fall", CONFIG_DEFAULT_FALL, 1, 100, &h->fall) < 0)
            return -1;
        if (path) {
            if (path[0] != '/') {
                free(path);
                return fail(c, config_setting_get_member(g, "path"), "must start with /");
            }
            free(h->path);
            h->path = path;
        }
        if (type != HEALTH_NONE && h->timeout > h->interval)
            return fail(c, config_setting_get_member(g, "timeout") ? config_setting_get_member(g, "timeout") : g,
                        "timeout (%gs) must not be longer than interval (%gs)", h->timeout,
                        h->interval);
    }
    h->type = (enum health_type)type;
    h->start_up = start == 1;
    return 0;
}

static int load_upstream(const struct ctx *c, const config_setting_t *g, struct upstream_conf *up)
{
    static const char *const keys[] = { "name", "servers", "balance", "retries",
                                        "proxy_protocol", "health", NULL };
    static const char *const balances[] = { "roundrobin", "leastconn", "source", NULL };
    const config_setting_t *servers;
    int bal;
    if (check_keys(c, g, keys) < 0)
        return -1;
    up->where = where(c, g);
    if (get_nonempty_string(c, g, "name", true, &up->name) < 0 ||
        get_enum(c, g, "balance", balances, BALANCE_ROUNDROBIN, &bal) < 0 ||
        get_int(c, g, "retries", CONFIG_DEFAULT_RETRIES, 0, 10, &up->retries) < 0 ||
        get_proxy(c, g, PROXY_OFF, &up->proxy) < 0 ||
        load_health(c, g, &up->health) < 0 ||
        get_list(c, g, "servers", &servers) < 0)
        return -1;
    up->balance = (enum balance)bal;
    up->nservers = (size_t)config_setting_length(servers);
    if (up->nservers > CONFIG_MAX_SERVERS)
        return fail(c, servers, "at most %d servers", CONFIG_MAX_SERVERS);
    up->servers = calloc(up->nservers, sizeof *up->servers);
    bool primary = false;
    for (size_t i = 0; i < up->nservers; i++) {
        if (load_server(c, config_setting_get_elem(servers, (unsigned)i), &up->servers[i], up) < 0)
            return -1;
        primary |= !up->servers[i].backup;
    }
    if (!primary)
        return fail(c, servers, "every server is a backup: at least one must not be");
    return 0;
}

static bool same_addr(const struct addr *a, const struct addr *b)
{
    return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
}

/* The a-th listen address: an element of the array, or the string itself. */
static const config_setting_t *listen_elem(const config_setting_t *s, size_t a)
{
    if (config_setting_type(s) == CONFIG_TYPE_STRING)
        return s;
    return config_setting_get_elem(s, (unsigned)a);
}

static int cross_check(const struct ctx *c, const config_setting_t *root, struct config *cfg)
{
    const config_setting_t *fes = config_setting_get_member(root, "frontends");
    const config_setting_t *ups = config_setting_get_member(root, "upstreams");

    for (size_t i = 0; i < cfg->nupstreams; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->upstreams[i].name, cfg->upstreams[j].name) == 0)
                return fail(c, config_setting_get_elem(ups, (unsigned)i),
                            "upstream name '%s' is already used at %s", cfg->upstreams[i].name,
                            cfg->upstreams[j].where);
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        struct frontend_conf *fe = &cfg->frontends[i];
        const config_setting_t *g = config_setting_get_elem(fes, (unsigned)i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(fe->name, cfg->frontends[j].name) == 0)
                return fail(c, g, "frontend name '%s' is already used at %s", fe->name,
                            cfg->frontends[j].where);
        size_t k;
        for (k = 0; k < cfg->nupstreams; k++)
            if (strcmp(cfg->upstreams[k].name, fe->upstream) == 0)
                break;
        if (k == cfg->nupstreams)
            return fail(c, config_setting_get_member(g, "upstream"),
                        "no upstream is named '%s'", fe->upstream);
        fe->upstream_index = k;
        for (size_t r = 0; r < fe->nroutes; r++) {
            for (k = 0; k < cfg->nupstreams; k++)
                if (strcmp(cfg->upstreams[k].name, fe->routes[r].upstream) == 0)
                    break;
            if (k == cfg->nupstreams) {
                snprintf(c->err, c->errlen, "%s: alpn_upstreams: no upstream is named '%s'",
                         fe->routes[r].where, fe->routes[r].upstream);
                return -1;
            }
            fe->routes[r].upstream_index = k;
        }
        /* The same address twice, in this or an earlier frontend. */
        for (size_t a = 0; a < fe->nlisten; a++)
            for (size_t j = 0; j <= i; j++)
                for (size_t b = 0; b < (j == i ? a : cfg->frontends[j].nlisten); b++)
                    if (same_addr(&fe->listen[a].addr, &cfg->frontends[j].listen[b].addr))
                        return fail(c, listen_elem(config_setting_get_member(g, "listen"), a),
                                    "address '%s' is already listened on by frontend '%s'",
                                    fe->listen[a].text, cfg->frontends[j].name);
    }
    return 0;
}

/* user, group, chroot: whom the workers run as, and where. */
static int load_identity(const struct ctx *c, const config_setting_t *root, struct config *cfg)
{
    char *ch = NULL;
    if (get_string(c, root, "user", false, NULL, &cfg->user) < 0 ||
        get_string(c, root, "group", false, NULL, &cfg->group) < 0 ||
        get_string(c, root, "chroot", false, NULL, &ch) < 0)
        return -1;
    if (cfg->user && !*cfg->user) {
        free(cfg->user);
        cfg->user = NULL;
    }
    if (cfg->group && !*cfg->group) {
        free(cfg->group);
        cfg->group = NULL;
    }
    if (ch && *ch) {
        if (ch[0] != '/') {
            free(ch);
            return fail(c, config_setting_get_member(root, "chroot"), "must be an absolute path");
        }
        cfg->chroot = ch;
    } else {
        free(ch);
    }
    cfg->uid = (uid_t)-1;
    cfg->gid = (gid_t)-1;
    if (cfg->user) {
        struct passwd *pw = getpwnam(cfg->user);
        if (!pw)
            return fail(c, config_setting_get_member(root, "user"), "no such user '%s'",
                        cfg->user);
        cfg->uid = pw->pw_uid;
        cfg->gid = pw->pw_gid;
    }
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr)
            return fail(c, config_setting_get_member(root, "group"), "no such group '%s'",
                        cfg->group);
        cfg->gid = gr->gr_gid;
    }
    return 0;
}

static int load_root(const struct ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "daemon", "pidfile", "user", "group", "chroot",
                                        "log", "workers", "timeouts",
                                        "tls", "frontends", "upstreams", NULL };
    const config_setting_t *fes, *ups;

    if (check_keys(c, root, keys) < 0 ||
        get_bool(c, root, "daemon", true, &cfg->daemon) < 0 ||
        get_string(c, root, "pidfile", false, CONFIG_DEFAULT_PIDFILE, &cfg->pidfile) < 0 ||
        load_identity(c, root, cfg) < 0 ||
        load_log(c, root, cfg) < 0 || load_workers(c, root, cfg) < 0 ||
        load_timeouts(c, root, cfg) < 0 || load_tls(c, root, cfg) < 0 ||
        get_list(c, root, "upstreams", &ups) < 0 || get_list(c, root, "frontends", &fes) < 0)
        return -1;

    cfg->nupstreams = (size_t)config_setting_length(ups);
    cfg->upstreams = calloc(cfg->nupstreams, sizeof *cfg->upstreams);
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (load_upstream(c, config_setting_get_elem(ups, (unsigned)i), &cfg->upstreams[i]) < 0)
            return -1;
    cfg->nfrontends = (size_t)config_setting_length(fes);
    cfg->frontends = calloc(cfg->nfrontends, sizeof *cfg->frontends);
    for (size_t i = 0; i < cfg->nfrontends; i++)
        if (load_frontend(c, config_setting_get_elem(fes, (unsigned)i), &cfg->frontends[i]) < 0)
            return -1;
    make_absolute(&cfg->pidfile);
    return cross_check(c, root, cfg);
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    config_t cf;
    struct ctx c = { path, err, errlen };
    struct config *cfg = calloc(1, sizeof *cfg);
    FILE *fp;

    cfg->path = strdup(path);
    if (!(fp = fopen(path, "r"))) {
        snprintf(err, errlen, "%s: cannot open: %m", path);
        config_free(cfg);
        return NULL;
    }
    fclose(fp);
    config_init(&cf);
    /* libconfig 1.5 would prepend an include directory even to absolute
     * paths, so none is set: @include paths are absolute or relative to
     * the directory tlsoffd was started in. */
    if (config_read_file(&cf, path) != CONFIG_TRUE) {
        snprintf(err, errlen, "%s:%d: syntax error: %s",
                 config_error_file(&cf) ? config_error_file(&cf) : path,
                 config_error_line(&cf), config_error_text(&cf));
        config_destroy(&cf);
        config_free(cfg);
        return NULL;
    }
    int rc = load_root(&c, config_root_setting(&cf), cfg);
    config_destroy(&cf);
    if (rc < 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        struct frontend_conf *fe = &cfg->frontends[i];
        for (size_t j = 0; j < fe->nlisten; j++)
            free(fe->listen[j].text);
        for (size_t j = 0; j < fe->ncerts; j++) {
            free(fe->certs[j].cert);
            free(fe->certs[j].key);
            free(fe->certs[j].ocsp_file);
            free(fe->certs[j].where);
        }
        for (size_t j = 0; j < fe->nalpn; j++)
            free(fe->alpn[j]);
        for (size_t j = 0; j < fe->nroutes; j++) {
            free(fe->routes[j].protocol);
            free(fe->routes[j].upstream);
            free(fe->routes[j].where);
        }
        free(fe->alpn);
        free(fe->routes);
        free(fe->cert_dir);
        free(fe->client_ca);
        free(fe->client_crl);
        free(fe->listen);
        free(fe->certs);
        free(fe->name);
        free(fe->upstream);
        free(fe->where);
    }
    for (size_t i = 0; i < cfg->nupstreams; i++) {
        struct upstream_conf *up = &cfg->upstreams[i];
        for (size_t j = 0; j < up->nservers; j++) {
            struct server_conf *sv = &up->servers[j];
            free(sv->address);
            free(sv->where);
            free(sv->tls.ca_file);
            free(sv->tls.sni);
            free(sv->tls.verify_name);
            free(sv->tls.cert);
            free(sv->tls.key);
        }
        free(up->health.path);
        free(up->health.host);
        free(up->health.body);
        free(up->servers);
        free(up->name);
        free(up->where);
    }
    free(cfg->frontends);
    free(cfg->upstreams);
    free(cfg->tls.ciphers);
    free(cfg->tls.ciphersuites);
    free(cfg->tls.groups);
    for (size_t i = 0; i < cfg->tls.tickets.nkey_files; i++)
        free(cfg->tls.tickets.key_files[i]);
    free(cfg->tls.tickets.key_files);
    free(cfg->tls.where);
    free(cfg->tls.ciphers_where);
    free(cfg->tls.suites_where);
    free(cfg->log.destination);
    free(cfg->log.access_log);
    free(cfg->pidfile);
    free(cfg->user);
    free(cfg->group);
    free(cfg->chroot);
    free(cfg->path);
    free(cfg);
}

const struct upstream_conf *config_frontend_upstream(const struct config *cfg,
                                                     const struct frontend_conf *fe)
{
    return &cfg->upstreams[fe->upstream_index];
}

size_t config_frontend_route(const struct frontend_conf *fe, const char *alpn)
{
    for (size_t i = 0; alpn && i < fe->nroutes; i++)
        if (strcmp(fe->routes[i].protocol, alpn) == 0)
            return fe->routes[i].upstream_index;
    return fe->upstream_index;
}
