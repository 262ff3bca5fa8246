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

#include "alloc.h"
#include "config_int.h"
#include "log.h"

/* ---- log, workers, timeouts ---- */

static int load_log(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "destination", "facility", "level", "access_log", NULL };
    const config_setting_t *g, *s;
    char *str = NULL;

    if (conf_group(c, root, "log", keys, &g) < 0)
        return -1;
    cfg->log.facility = log_facility_parse("daemon");
    cfg->log.level = LOG_LVL_INFO;
    if (!g) {
        cfg->log.destination = xstrdup("syslog");
        return 0;
    }
    if (conf_nonempty_string(c, g, "destination", false, &cfg->log.destination) < 0)
        return -1;
    if (!cfg->log.destination)
        cfg->log.destination = xstrdup("syslog");
    if ((s = config_setting_get_member(g, "facility"))) {
        if (conf_string(c, g, "facility", false, NULL, &str) < 0)
            return -1;
        cfg->log.facility = log_facility_parse(str);
        free(str);
        if (cfg->log.facility < 0)
            return conf_fail(c, s, "unknown syslog facility (expected daemon, user, auth, "
                              "authpriv or local0..local7)");
    }
    if ((s = config_setting_get_member(g, "level"))) {
        if (conf_string(c, g, "level", false, NULL, &str) < 0)
            return -1;
        cfg->log.level = log_level_parse(str);
        free(str);
        if (cfg->log.level < 0)
            return conf_fail(c, s,
                             "unknown level (expected error, warning, notice, info or debug)");
    }
    if (conf_string(c, g, "access_log", false, NULL, &cfg->log.access_log) < 0)
        return -1;
    if (strcmp(cfg->log.destination, "stderr") != 0 && strcmp(cfg->log.destination, "syslog") != 0)
        conf_make_absolute(&cfg->log.destination);
    conf_make_absolute(&cfg->log.access_log);
    return 0;
}

/* workers.park_after: a duration, or 0: never park. */
static int load_park_after(const struct conf_ctx *c, const config_setting_t *g,
                           struct config *cfg)
{
    const config_setting_t *s = g ? config_setting_get_member(g, "park_after") : NULL;
    cfg->workers.park_after = CONFIG_DEFAULT_PARK_AFTER;
    if (s && config_setting_type(s) == CONFIG_TYPE_INT && config_setting_get_int(s) == 0) {
        cfg->workers.park_after = 0;
        return 0;
    }
    return g ? conf_duration(c, g, "park_after", CONFIG_DEFAULT_PARK_AFTER,
                             &cfg->workers.park_after) : 0;
}

/* workers.max: a number, or "auto" (the default): what the machine allows. */
static int load_workers_max(const struct conf_ctx *c, const config_setting_t *g,
                            struct config *cfg)
{
    const config_setting_t *s = g ? config_setting_get_member(g, "max") : NULL;
    cfg->workers.max = CONFIG_WORKERS_AUTO;
    if (s && config_setting_type(s) == CONFIG_TYPE_STRING) {
        if (strcmp(config_setting_get_string(s), "auto") != 0)
            return conf_fail(c, s, "workers.max: expected a number or \"auto\", got '%s'",
                             config_setting_get_string(s));
        return 0;
    }
    return s ? conf_int(c, g, "max", CONFIG_WORKERS_AUTO, 1, CONFIG_MAX_WORKERS,
                        &cfg->workers.max) : 0;
}

static int load_workers(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "count", "min_spare", "max_spare", "max",
                                        "max_connections", "park_after", NULL };
    const config_setting_t *g;
    struct { int *v; const char *k; int def, lo, hi; } ints[] = {
        { &cfg->workers.count, "count", CONFIG_DEFAULT_WORKERS, 0, CONFIG_MAX_WORKERS },
        { &cfg->workers.min_spare, "min_spare", CONFIG_DEFAULT_MIN_SPARE, 1, CONFIG_MAX_WORKERS },
        { &cfg->workers.max_spare, "max_spare", CONFIG_DEFAULT_MAX_SPARE, 1, CONFIG_MAX_WORKERS },
        { &cfg->workers.max_connections, "max_connections", 0, 0, 1000000000 },
    };
    if (conf_group(c, root, "workers", keys, &g) < 0)
        return -1;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        *ints[i].v = ints[i].def;
        if (g && conf_int(c, g, ints[i].k, ints[i].def, ints[i].lo, ints[i].hi, ints[i].v) < 0)
            return -1;
    }
    if (load_workers_max(c, g, cfg) < 0 || load_park_after(c, g, cfg) < 0)
        return -1;
    bool set_max = cfg->workers.max != CONFIG_WORKERS_AUTO;
    const struct config_workers_check { bool bad; const char *k, *msg; } checks[] = {
        { cfg->workers.max_spare < cfg->workers.min_spare, "max_spare",
          "must be at least min_spare" },
        { set_max && cfg->workers.max < cfg->workers.min_spare, "max",
          "must be at least min_spare" },
    };
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++)
        if (checks[i].bad && !cfg->workers.count) {
            const config_setting_t *s = g ? config_setting_get_member(g, checks[i].k) : NULL;
            return conf_fail(c, s ? s : (g ? g : root), "workers.%s %s", checks[i].k,
                             checks[i].msg);
        }
    return 0;
}

static int load_timeouts(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "handshake", "connect", "idle", "shutdown", NULL };
    const config_setting_t *g;
    if (conf_group(c, root, "timeouts", keys, &g) < 0)
        return -1;
    cfg->timeouts.handshake = CONFIG_DEFAULT_HANDSHAKE;
    cfg->timeouts.connect = CONFIG_DEFAULT_CONNECT;
    cfg->timeouts.idle = CONFIG_DEFAULT_IDLE;
    cfg->timeouts.shutdown = CONFIG_DEFAULT_SHUTDOWN;
    if (!g)
        return 0;
    if (conf_duration(c, g, "handshake", CONFIG_DEFAULT_HANDSHAKE, &cfg->timeouts.handshake) < 0 ||
        conf_duration(c, g, "connect", CONFIG_DEFAULT_CONNECT, &cfg->timeouts.connect) < 0 ||
        conf_duration(c, g, "idle", CONFIG_DEFAULT_IDLE, &cfg->timeouts.idle) < 0 ||
        conf_duration(c, g, "shutdown", CONFIG_DEFAULT_SHUTDOWN, &cfg->timeouts.shutdown) < 0)
        return -1;
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

static int cross_check(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    const config_setting_t *fes = config_setting_get_member(root, "frontends");
    const config_setting_t *ups = config_setting_get_member(root, "upstreams");

    for (size_t i = 0; i < cfg->nupstreams; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->upstreams[i].name, cfg->upstreams[j].name) == 0)
                return conf_fail(c, config_setting_get_elem(ups, (unsigned)i),
                            "upstream name '%s' is already used at %s", cfg->upstreams[i].name,
                            cfg->upstreams[j].where);
    for (size_t i = 0; i < cfg->nfrontends; i++) {
        struct frontend_conf *fe = &cfg->frontends[i];
        const config_setting_t *g = config_setting_get_elem(fes, (unsigned)i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(fe->name, cfg->frontends[j].name) == 0)
                return conf_fail(c, g, "frontend name '%s' is already used at %s", fe->name,
                            cfg->frontends[j].where);
        size_t k;
        for (k = 0; k < cfg->nupstreams; k++)
            if (strcmp(cfg->upstreams[k].name, fe->upstream) == 0)
                break;
        if (k == cfg->nupstreams)
            return conf_fail(c, config_setting_get_member(g, "upstream"),
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
                        return conf_fail(c, listen_elem(config_setting_get_member(g, "listen"), a),
                                    "address '%s' is already listened on by frontend '%s'",
                                    fe->listen[a].text, cfg->frontends[j].name);
    }
    return 0;
}

/* user, group, chroot: whom the workers run as, and where. */
static int load_identity(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    char *ch = NULL;
    if (conf_string(c, root, "user", false, NULL, &cfg->user) < 0 ||
        conf_string(c, root, "group", false, NULL, &cfg->group) < 0 ||
        conf_string(c, root, "chroot", false, NULL, &ch) < 0)
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
            return conf_fail(c, config_setting_get_member(root, "chroot"),
                             "must be an absolute path");
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
            return conf_fail(c, config_setting_get_member(root, "user"), "no such user '%s'",
                        cfg->user);
        cfg->uid = pw->pw_uid;
        cfg->gid = pw->pw_gid;
    }
    if (cfg->group) {
        struct group *gr = getgrnam(cfg->group);
        if (!gr)
            return conf_fail(c, config_setting_get_member(root, "group"), "no such group '%s'",
                        cfg->group);
        cfg->gid = gr->gr_gid;
    }
    if (cfg->group && !cfg->user)
        return conf_fail(c, config_setting_get_member(root, "group"),
                         "needs user: without it the workers keep user ID 0 (root)");
    if (cfg->chroot && (!cfg->user || cfg->uid == 0))
        return conf_fail(c, config_setting_get_member(root, "chroot"),
                         "needs user, other than root: root can leave a chroot");
    return 0;
}

static int load_root(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "daemon", "pidfile", "user", "group", "chroot",
                                        "log", "workers", "timeouts",
                                        "tls", "limits", "keys", "frontends", "upstreams",
                                        NULL };
    const config_setting_t *fes, *ups;

    if (conf_check_keys(c, root, keys) < 0 ||
        conf_bool(c, root, "daemon", true, &cfg->daemon) < 0 ||
        conf_string(c, root, "pidfile", false, CONFIG_DEFAULT_PIDFILE, &cfg->pidfile) < 0 ||
        load_identity(c, root, cfg) < 0 ||
        load_log(c, root, cfg) < 0 || load_workers(c, root, cfg) < 0 ||
        load_timeouts(c, root, cfg) < 0 || conf_load_tls(c, root, cfg) < 0 ||
        conf_load_limits(c, root, cfg) < 0 || conf_load_keys(c, root, cfg) < 0 ||
        conf_list(c, root, "upstreams", &ups) < 0 || conf_list(c, root, "frontends", &fes) < 0)
        return -1;

    cfg->nupstreams = (size_t)config_setting_length(ups);
    cfg->upstreams = xcalloc(cfg->nupstreams, sizeof *cfg->upstreams);
    for (size_t i = 0; i < cfg->nupstreams; i++)
        if (conf_load_upstream(c, config_setting_get_elem(ups, (unsigned)i),
                               &cfg->upstreams[i]) < 0)
            return -1;
    cfg->nfrontends = (size_t)config_setting_length(fes);
    cfg->frontends = xcalloc(cfg->nfrontends, sizeof *cfg->frontends);
    for (size_t i = 0; i < cfg->nfrontends; i++)
        if (conf_load_frontend(c, config_setting_get_elem(fes, (unsigned)i),
                               &cfg->frontends[i]) < 0)
            return -1;
    conf_make_absolute(&cfg->pidfile);
    return cross_check(c, root, cfg) < 0 ? -1 : conf_collect_keys(c, root, cfg);
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    config_t cf;
    struct conf_ctx c = { path, err, errlen };
    struct config *cfg = xcalloc(1, sizeof *cfg);
    FILE *fp;

    cfg->path = xstrdup(path);
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
            free(fe->certs[j].key_password_file);
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
            free(sv->tls.key_password_file);
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
    free(cfg->limits.deny);
    free(cfg->limits.allow);
    free(cfg->keys.list);
    free(cfg->keys.pkcs11_module);
    free(cfg->keys.where);
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
