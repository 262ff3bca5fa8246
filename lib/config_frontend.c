/*
 * config_frontend — a frontend: its listeners, certificates (one by one or
 * a cert_dir), ALPN and its routes, client certificates.
 */
#include "config_int.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

struct listen_acc {
    struct frontend_conf *fe;
    size_t cap;
};

static int add_listen(const struct conf_ctx *c, const config_setting_t *s, const char *v, void *arg)
{
    struct listen_acc *a = arg;
    char why[256];
    struct addr ad;
    if (addr_parse(v, false, &ad, why, sizeof why) < 0)
        return conf_fail(c, s, "%s", why);
    if (a->fe->nlisten == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 4;
        a->fe->listen = xrealloc(a->fe->listen, a->cap * sizeof *a->fe->listen);
    }
    a->fe->listen[a->fe->nlisten].text = xstrdup(v);
    a->fe->listen[a->fe->nlisten].addr = ad;
    a->fe->nlisten++;
    return 0;
}
static int load_cert(const struct conf_ctx *c, const config_setting_t *g, struct cert_conf *cc)
{
    static const char *const keys[] = { "cert", "key", "key_password_file", "ocsp_file",
                                        NULL };
    if (config_setting_type(g) != CONFIG_TYPE_GROUP)
        return conf_fail(c, g, "expected a group { cert = ...; key = ...; }, got %s",
                    conf_type_name(config_setting_type(g)));
    if (conf_check_keys(c, g, keys) < 0)
        return -1;
    cc->where = conf_where(c, g);
    if (conf_nonempty_string(c, g, "cert", true, &cc->cert) < 0)
        return -1;
    conf_make_absolute(&cc->cert);
    if (conf_cert_key(c, g, cc->cert, &cc->key, &cc->key_password_file) < 0)
        return -1;
    return conf_file(c, g, "ocsp_file", &cc->ocsp_file);
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
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) ? xstrdup(p) : NULL;
}

/*
 * cert_dir: every NAME.pem or NAME.crt, in name order, is a chain; its key
 * is NAME.key if that exists, else in the same file; NAME.ocsp, if it
 * exists, is the OCSP response to staple.
 */
static int load_cert_dir(const struct conf_ctx *c, const config_setting_t *s,
                         struct frontend_conf *fe)
{
    DIR *d = opendir(fe->cert_dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    if (!d)
        return conf_fail(c, s, "cannot open directory '%s': %s", fe->cert_dir, strerror(errno));
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !(has_suffix(e->d_name, ".pem") || has_suffix(e->d_name,
                                                                                 ".crt")))
            continue;
        if (n == cap)
            names = xrealloc(names, (cap = cap ? cap * 2 : 16) * sizeof *names);
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    int rc = 0;
    if (fe->ncerts + n > CONFIG_MAX_CERTS)
        rc = conf_fail(c, s, "at most %d certificates per frontend", CONFIG_MAX_CERTS);
    else if (n)
        fe->certs = xrealloc(fe->certs, (fe->ncerts + n) * sizeof *fe->certs);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            struct cert_conf *cc = &fe->certs[fe->ncerts++];
            *cc = (struct cert_conf){ 0 };  /* the array grew: its new entries are not zeroed */
            size_t base = strlen(names[i]) - 4;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", fe->cert_dir, names[i]);
            cc->cert = xstrdup(p);
            cc->key = sibling(fe->cert_dir, names[i], base, ".key");
            if (!cc->key)
                cc->key = xstrdup(p);
            cc->ocsp_file = sibling(fe->cert_dir, names[i], base, ".ocsp");
            char w[4200];
            snprintf(w, sizeof w, "%s:%d: cert_dir file '%s'", conf_setting_file(c, s),
                     config_setting_source_line(s), names[i]);
            cc->where = xstrdup(w);
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int add_alpn(const struct conf_ctx *c, const config_setting_t *s, const char *v, void *arg)
{
    struct frontend_conf *fe = arg;
    size_t len = strlen(v);
    if (len == 0 || len > 255)
        return conf_fail(c, s, "an ALPN protocol name must have 1 to 255 bytes");
    for (size_t i = 0; i < len; i++)
        if (v[i] <= ' ' || v[i] > '~' || v[i] == '"' || v[i] == '\\')
            return conf_fail(c, s, "ALPN protocol '%s': printable ASCII only, no space, quote or "
                              "backslash", v);
    for (size_t i = 0; i < fe->nalpn; i++)
        if (strcmp(fe->alpn[i], v) == 0)
            return conf_fail(c, s, "ALPN protocol '%s' is listed twice", v);
    if (fe->nalpn == CONFIG_MAX_ALPN)
        return conf_fail(c, s, "at most %d ALPN protocols", CONFIG_MAX_ALPN);
    fe->alpn = xrealloc(fe->alpn, (fe->nalpn + 1) * sizeof *fe->alpn);
    fe->alpn[fe->nalpn++] = xstrdup(v);
    return 0;
}

static int add_route(const struct conf_ctx *c, const config_setting_t *s, struct frontend_conf *fe,
                     const char *protocol, const char *upstream)
{
    for (size_t i = 0; i < fe->nroutes; i++)
        if (strcmp(fe->routes[i].protocol, protocol) == 0)
            return conf_fail(c, s, "ALPN protocol '%s' is routed twice", protocol);
    fe->routes = xrealloc(fe->routes, (fe->nroutes + 1) * sizeof *fe->routes);
    fe->routes[fe->nroutes++] = (struct alpn_route){ .protocol = xstrdup(protocol),
                                                     .upstream = xstrdup(upstream),
                                                     .where = conf_where(c, s) };
    return 0;
}

/*
 * alpn_upstreams: a group { h2 = "up"; } for protocol names that are
 * libconfig names, or a list ( { protocol = "http/1.1"; upstream = "up"; } ).
 */
static int load_routes(const struct conf_ctx *c, const config_setting_t *g,
                       struct frontend_conf *fe)
{
    static const char *const keys[] = { "protocol", "upstream", NULL };
    const config_setting_t *s = config_setting_get_member(g, "alpn_upstreams");
    if (!s)
        return 0;
    int t = config_setting_type(s);
    if (t != CONFIG_TYPE_GROUP && t != CONFIG_TYPE_LIST)
        return conf_fail(c, s, "expected a group { h2 = \"upstream\"; } or a list "
                          "( { protocol = ...; upstream = ...; } ), got %s", conf_type_name(t));
    for (int i = 0; i < config_setting_length(s); i++) {
        const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
        char *proto = NULL, *up = NULL;
        int rc;
        if (t == CONFIG_TYPE_GROUP) {
            if (config_setting_type(e) != CONFIG_TYPE_STRING)
                return conf_fail(c, e, "expected an upstream name, got %s",
                            conf_type_name(config_setting_type(e)));
            rc = add_route(c, e, fe, config_setting_name(e), config_setting_get_string(e));
        } else {
            if (config_setting_type(e) != CONFIG_TYPE_GROUP)
                return conf_fail(c, e,
                                 "expected a group { protocol = ...; upstream = ...; }, got %s",
                            conf_type_name(config_setting_type(e)));
            rc = conf_check_keys(c, e, keys) < 0 ||
                 conf_nonempty_string(c, e, "protocol", true, &proto) < 0 ||
                 conf_nonempty_string(c, e, "upstream", true, &up) < 0 ? -1
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
            return conf_fail(c, config_setting_get_elem(s, (unsigned)i),
                        "ALPN protocol '%s' is not offered by this frontend (add it to alpn)",
                        fe->routes[i].protocol);
    }
    return 0;
}


/* verify_client, client_ca, client_crl, verify_depth. */
static int load_client_auth(const struct conf_ctx *c, const config_setting_t *g,
                            struct frontend_conf *fe)
{
    static const char *const modes[] = { "none", "optional", "required", NULL };
    int mode;
    if (conf_enum(c, g, "verify_client", modes, VERIFY_CLIENT_NONE, &mode) < 0 ||
        conf_file(c, g, "client_ca", &fe->client_ca) < 0 ||
        conf_file(c, g, "client_crl", &fe->client_crl) < 0 ||
        conf_int(c, g, "verify_depth", CONFIG_DEFAULT_VERIFY_DEPTH, 1, 16, &fe->verify_depth) < 0)
        return -1;
    fe->verify_client = (enum verify_client)mode;
    if (fe->verify_client != VERIFY_CLIENT_NONE && !fe->client_ca)
        return conf_fail(c, config_setting_get_member(g, "verify_client"),
                    "verify_client = \"%s\" needs client_ca (the CA certificates that issue "
                    "client certificates)", modes[mode]);
    return 0;
}

int conf_load_frontend(const struct conf_ctx *c, const config_setting_t *g,
                       struct frontend_conf *fe)
{
    static const char *const keys[] = { "name", "listen", "certificates", "cert_dir",
                                        "strict_sni", "alpn", "alpn_upstreams",
                                        "verify_client", "client_ca", "client_crl",
                                        "verify_depth", "upstream", NULL };
    const config_setting_t *s, *certs;
    struct listen_acc acc = { fe, 0 };

    if (conf_check_keys(c, g, keys) < 0)
        return -1;
    fe->where = conf_where(c, g);
    if (conf_nonempty_string(c, g, "name", true, &fe->name) < 0 ||
        conf_member(c, g, "listen", true, &s) < 0 ||
        conf_each_string(c, s, add_listen, &acc) < 0)
        return -1;
    certs = config_setting_get_member(g, "certificates");
    if (certs && config_setting_type(certs) != CONFIG_TYPE_LIST)
        return conf_fail(c, certs, "expected a list ( { cert = ...; key = ...; }, ... ), got %s",
                    conf_type_name(config_setting_type(certs)));
    fe->ncerts = certs ? (size_t)config_setting_length(certs) : 0;
    if (fe->ncerts > CONFIG_MAX_CERTS)
        return conf_fail(c, certs, "at most %d certificates per frontend", CONFIG_MAX_CERTS);
    fe->certs = xcalloc(fe->ncerts ? fe->ncerts : 1, sizeof *fe->certs);
    for (size_t i = 0; i < fe->ncerts; i++)
        if (load_cert(c, config_setting_get_elem(certs, (unsigned)i), &fe->certs[i]) < 0)
            return -1;
    if (conf_nonempty_string(c, g, "cert_dir", false, &fe->cert_dir) < 0)
        return -1;
    if (fe->cert_dir) {
        conf_make_absolute(&fe->cert_dir);
        if (load_cert_dir(c, config_setting_get_member(g, "cert_dir"), fe) < 0)
            return -1;
    }
    if (fe->ncerts == 0)
        return conf_fail(c, certs ? certs : g, "frontend '%s' has no certificate (give "
                    "certificates, or a cert_dir with *.pem or *.crt files)", fe->name);
    if (conf_bool(c, g, "strict_sni", false, &fe->strict_sni) < 0)
        return -1;
    if ((s = config_setting_get_member(g, "alpn")) && conf_each_string(c, s, add_alpn, fe) < 0)
        return -1;
    if (load_routes(c, g, fe) < 0 || load_client_auth(c, g, fe) < 0)
        return -1;
    return conf_nonempty_string(c, g, "upstream", true, &fe->upstream);
}
