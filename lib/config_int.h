/*
 * config_int — what the files of the config module share (not for other
 * modules): the reading context, the typed readers of libconfig settings
 * that report errors as FILE:LINE: setting: message, and the loaders of
 * the configuration's sections.
 *
 *   config.c           config_load, config_free, cross-checks, the top level
 *   config_read.c      the typed readers
 *   config_tls.c       the tls section (policy, resumption)
 *   config_frontend.c  frontends (listen, certificates, ALPN, client auth)
 *   config_upstream.c  upstreams (servers, TLS to backends, health checks)
 *   config_limits.c    the limits section (per-client limits, allow/deny, shedding)
 *   config_keys.c      the keys section and the table of private keys
 */
#ifndef TLSOFFD_CONFIG_INT_H
#define TLSOFFD_CONFIG_INT_H

#include <libconfig.h>

#include "config.h"

struct conf_ctx {
    const char *path;
    char *err;
    size_t errlen;
};

typedef int (*conf_str_fn)(const struct conf_ctx *, const config_setting_t *, const char *,
                           void *);

/* The file a setting was read from (the main file or an @include). */
const char *conf_setting_file(const struct conf_ctx *c, const config_setting_t *s);

__attribute__((format(printf, 3, 4)))
int conf_fail(const struct conf_ctx *c, const config_setting_t *s, const char *fmt, ...);

char *conf_where(const struct conf_ctx *c, const config_setting_t *s);

/* Rejects any member of group s whose name is not in allowed (NULL-terminated). */
int conf_check_keys(const struct conf_ctx *c, const config_setting_t *s,
                    const char *const *allowed);

const char *conf_type_name(int type);

/* Member lookups: 0 = found (or absent and not required), -1 = error. */
int conf_member(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                bool required, const config_setting_t **out);

int conf_string(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                bool required, const char *def, char **out);

int conf_nonempty_string(const struct conf_ctx *c, const config_setting_t *grp,
                         const char *name, bool required, char **out);

int conf_bool(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
              bool def, bool *out);

int conf_int(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
             long long def, long long min, long long max, int *out);

/* Durations are seconds, integer or float, > 0 and at most a day
 * (conf_duration_max: at most max). */
int conf_duration(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                  double def, double *out);
int conf_duration_max(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
                      double def, double max, double *out);

int conf_group(const struct conf_ctx *c, const config_setting_t *parent, const char *name,
               const char *const *allowed, const config_setting_t **out);

/* A list ( ... ) of groups, at least one. */
int conf_list(const struct conf_ctx *c, const config_setting_t *parent, const char *name,
              const config_setting_t **out);

int conf_each_string(const struct conf_ctx *c, const config_setting_t *s, conf_str_fn fn,
                     void *arg);

/* An absolute version of path: the daemon runs in "/", and files are
 * opened again later (log rotation, stop). */
char *conf_absolute(const char *path);

void conf_make_absolute(char **path);

/* A file the daemon will read: it must be readable now. */
int conf_check_readable(const struct conf_ctx *c, const config_setting_t *s, const char *path);

int conf_file(const struct conf_ctx *c, const config_setting_t *g, const char *name,
              char **out);

/* One of names[] (NULL-terminated); its index in *out. */
int conf_enum(const struct conf_ctx *c, const config_setting_t *grp, const char *name,
              const char *const *names, int def, int *out);

/* The sections. */
int conf_load_tls(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg);
int conf_load_frontend(const struct conf_ctx *c, const config_setting_t *g,
                       struct frontend_conf *fe);
int conf_load_upstream(const struct conf_ctx *c, const config_setting_t *g,
                       struct upstream_conf *up);
/* After the workers: the table's size is checked against the pool. */
int conf_load_limits(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg);
int conf_load_keys(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg);
/* A certificate entry's key (file or URI) and key_password_file, read from g. */
int conf_cert_key(const struct conf_ctx *c, const config_setting_t *g, const char *cert,
                  char **key, char **password_file);
/* After frontends and upstreams: with keys.isolate, every private key
 * gets its place in cfg->keys.list. */
int conf_collect_keys(const struct conf_ctx *c, const config_setting_t *root,
                      struct config *cfg);

#endif
