/*
 * config_read — the typed readers of libconfig settings: each checks the
 * type and range and reports a problem as FILE:LINE: setting: message.
 */
#include "config_int.h"

#include <stdarg.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

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

const char *conf_setting_file(const struct conf_ctx *c, const config_setting_t *s)
{
    const char *f = config_setting_source_file(s);
    return f ? f : c->path;
}

__attribute__((format(printf, 3, 4)))
int conf_fail(const struct conf_ctx *c, const config_setting_t *s, const char *fmt, ...)
{
    char path[256], msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    setting_path(s, path, sizeof path);
    unsigned line = config_setting_source_line(s);
    if (line == 0)      /* the root: a missing top-level key has no line */
        snprintf(c->err, c->errlen, "%s: %s", conf_setting_file(c, s), msg);
    else
        snprintf(c->err, c->errlen, "%s:%u: %s%s%s", conf_setting_file(c, s), line, path,
                 path[0] ? ": " : "", msg);
    return -1;
}

char *conf_where(const struct conf_ctx *c, const config_setting_t *s)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s:%u", conf_setting_file(c, s), config_setting_source_line(s));
    return xstrdup(buf);
}

/* Rejects any member of group s whose name is not in allowed (NULL-terminated). */
int conf_check_keys(const struct conf_ctx *c, const config_setting_t *s, const char *const *allowed)
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
            return conf_fail(c, m, "unknown key (known here: %s)", known);
        }
    }
    return 0;
}

const char *conf_type_name(int type)
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
int conf_member(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                bool required, const config_setting_t **out)
{
    *out = config_setting_get_member(grp, name);
    if (!*out && required)
        return conf_fail(c, grp, "missing required key '%s'", name);
    return 0;
}

int conf_string(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                bool required, const char *def, char **out)
{
    const config_setting_t *s;
    if (conf_member(c, grp, name, required, &s) < 0)
        return -1;
    if (!s) {
        *out = def ? xstrdup(def) : NULL;
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return conf_fail(c, s, "expected a string, got %s", conf_type_name(config_setting_type(s)));
    *out = xstrdup(config_setting_get_string(s));
    return 0;
}

int conf_nonempty_string(const struct conf_ctx *c, const config_setting_t *grp,
                         const char *name, bool required, char **out)
{
    if (conf_string(c, grp, name, required, NULL, out) < 0)
        return -1;
    if (*out && !**out)
        return conf_fail(c, config_setting_get_member(grp, name), "must not be empty");
    return 0;
}

int conf_bool(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
              bool def, bool *out)
{
    const config_setting_t *s = config_setting_get_member(grp, name);
    if (!s) {
        *out = def;
        return 0;
    }
    if (config_setting_type(s) != CONFIG_TYPE_BOOL)
        return conf_fail(c, s, "expected true or false, got %s",
                         conf_type_name(config_setting_type(s)));
    *out = config_setting_get_bool(s);
    return 0;
}

int conf_int(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
             long long def, long long min, long long max, int *out)
{
    const config_setting_t *s = config_setting_get_member(grp, name);
    long long v = def;
    if (s) {
        int t = config_setting_type(s);
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return conf_fail(c, s, "expected an integer, got %s", conf_type_name(t));
        v = config_setting_get_int64(s);
        if (v < min || v > max)
            return conf_fail(c, s, "must be from %lld to %lld, got %lld", min, max, v);
    }
    *out = (int)v;
    return 0;
}

/* Durations are seconds, integer or float, > 0 and at most a day. */
int conf_duration(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                  double def, double *out)
{
    return conf_duration_max(c, grp, name, def, 86400, out);
}

int conf_duration_max(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                      double def, double max, double *out)
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
        return conf_fail(c, s, "expected a duration in seconds, got %s", conf_type_name(t));
    if (!(v >= 0.001 && v <= max))
        return conf_fail(c, s, "must be a duration from 0.001 to %g seconds, got %g", max, v);
    *out = v;
    return 0;
}

int conf_group(const struct conf_ctx *c, const config_setting_t *parent, const char *name,
               const char *const *allowed, const config_setting_t **out)
{
    *out = config_setting_get_member(parent, name);
    if (!*out)
        return 0;
    if (config_setting_type(*out) != CONFIG_TYPE_GROUP)
        return conf_fail(c, *out, "expected a group { ... }, got %s",
                    conf_type_name(config_setting_type(*out)));
    return conf_check_keys(c, *out, allowed);
}

/* A list ( ... ) of groups, at least one. */
int conf_list(const struct conf_ctx *c, const config_setting_t *parent, const char *name,
              const config_setting_t **out)
{
    *out = config_setting_get_member(parent, name);
    if (!*out)
        return conf_fail(c, parent, "missing required key '%s'", name);
    if (config_setting_type(*out) != CONFIG_TYPE_LIST)
        return conf_fail(c, *out, "expected a list ( { ... }, ... ), got %s",
                    conf_type_name(config_setting_type(*out)));
    if (config_setting_length(*out) == 0)
        return conf_fail(c, *out, "must have at least one entry");
    for (int i = 0; i < config_setting_length(*out); i++) {
        const config_setting_t *e = config_setting_get_elem(*out, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_GROUP)
            return conf_fail(c, e, "expected a group { ... }, got %s",
                        conf_type_name(config_setting_type(e)));
    }
    return 0;
}

/* A string or an array of strings (at least one), each passed to fn. */
int conf_each_string(const struct conf_ctx *c, const config_setting_t *s, conf_str_fn fn, void *arg)
{
    if (config_setting_type(s) == CONFIG_TYPE_STRING)
        return fn(c, s, config_setting_get_string(s), arg);
    if (config_setting_type(s) != CONFIG_TYPE_ARRAY && config_setting_type(s) != CONFIG_TYPE_LIST)
        return conf_fail(c, s, "expected a string or an array of strings, got %s",
                    conf_type_name(config_setting_type(s)));
    if (config_setting_length(s) == 0)
        return conf_fail(c, s, "must have at least one entry");
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING)
            return conf_fail(c, e, "expected a string, got %s",
                             conf_type_name(config_setting_type(e)));
        if (fn(c, e, config_setting_get_string(e), arg) < 0)
            return -1;
    }
    return 0;
}

/* An absolute version of path: the daemon runs in "/", and files are
 * opened again later (log rotation, stop). */
char *conf_absolute(const char *path)
{
    char cwd[4096], *out;
    if (path[0] == '/' || !getcwd(cwd, sizeof cwd))
        return xstrdup(path);
    if (asprintf(&out, "%s/%s", cwd, path) < 0)
        return xstrdup(path);
    return out;
}

void conf_make_absolute(char **path)
{
    if (*path && **path) {
        char *a = conf_absolute(*path);
        free(*path);
        *path = a;
    }
}


/* A file the daemon will read: it must be readable now. */
int conf_check_readable(const struct conf_ctx *c, const config_setting_t *s, const char *path)
{
    if (access(path, R_OK) < 0)
        return conf_fail(c, s, "cannot read '%s': %s", path, strerror(errno));
    return 0;
}

int conf_file(const struct conf_ctx *c, const config_setting_t *g, const char *name,
              char **out)
{
    if (conf_string(c, g, name, false, NULL, out) < 0)
        return -1;
    if (*out && !**out) {               /* "" = none */
        free(*out);
        *out = NULL;
    }
    conf_make_absolute(out);
    return *out ? conf_check_readable(c, config_setting_get_member(g, name), *out) : 0;
}

/* One of names[] (NULL-terminated); its index in *out. */
int conf_enum(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
              const char *const *names, int def, int *out)
{
    const config_setting_t *s = config_setting_get_member(grp, name);
    *out = def;
    if (!s)
        return 0;
    if (config_setting_type(s) != CONFIG_TYPE_STRING)
        return conf_fail(c, s, "expected a string, got %s", conf_type_name(config_setting_type(s)));
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
    return conf_fail(c, s, "unknown value \"%s\" (expected %s)", v, known);
}
