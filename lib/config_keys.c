/*
 * config_keys — the keys section (where private keys live: the key
 * processes, how many, how long a signature may take, the PKCS#11
 * module), a certificate entry's key and key_password_file, and the
 * table of every private key the key processes load.
 */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "pkcs11.h"

/* processes: a count, or "auto" (one per CPU). */
static int load_processes(const struct conf_ctx *c, const config_setting_t *g, int *out)
{
    const config_setting_t *s = config_setting_get_member(g, "processes");
    *out = 0;
    if (s && config_setting_type(s) == CONFIG_TYPE_STRING) {
        if (strcmp(config_setting_get_string(s), "auto") == 0)
            return 0;
        return conf_fail(c, s, "expected a number of processes or \"auto\", got \"%s\"",
                         config_setting_get_string(s));
    }
    return conf_int(c, g, "processes", 0, 1, CONFIG_MAX_KEY_PROCESSES, out);
}

int conf_load_keys(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "isolate", "processes", "timeout", "pkcs11_module",
                                        NULL };
    struct keys_conf *k = &cfg->keys;
    const config_setting_t *g;
    k->isolate = true;
    k->timeout = CONFIG_DEFAULT_KEY_TIMEOUT;
    if (conf_group(c, root, "keys", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    k->where = conf_where(c, g);
    return conf_bool(c, g, "isolate", true, &k->isolate) < 0 ||
                   load_processes(c, g, &k->processes) < 0 ||
                   conf_duration(c, g, "timeout", k->timeout, &k->timeout) < 0 ||
                   conf_file(c, g, "pkcs11_module", &k->pkcs11_module) < 0
               ? -1
               : 0;
}

int conf_cert_key(const struct conf_ctx *c, const config_setting_t *g, const char *cert,
                  char **key, char **password_file)
{
    if (conf_nonempty_string(c, g, "key", false, key) < 0 ||
        conf_file(c, g, "key_password_file", password_file) < 0)
        return -1;
    if (!*key)                          /* key in the same PEM file as the chain */
        *key = xstrdup(cert);
    if (!pkcs11_is_uri(*key)) {
        conf_make_absolute(key);
        return 0;
    }
    char why[256];                      /* the URI's form; the token is the key processes' */
    if (pkcs11_uri_check(*key, why, sizeof why) < 0)
        return conf_fail(c, config_setting_get_member(g, "key"), "%s", why);
    return 0;
}

static void add_key(struct keys_conf *k, const char *key, const char *password_file,
                    const char *cert, const char *where, bool *remote, int *id)
{
    k->list = xreallocarray(k->list, k->n + 1, sizeof *k->list);
    k->list[k->n] = (struct key_conf){ key, password_file, cert, where };
    *remote = true;
    *id = (int)k->n++;
}

/* A key on a token can only be used where the token is open. */
static int check_isolated(const struct conf_ctx *c, const config_setting_t *root,
                          const struct config *cfg, const char *key, const char *where)
{
    (void)root;
    if (cfg->keys.isolate || !pkcs11_is_uri(key))
        return 0;
    snprintf(c->err, c->errlen, "%s: key '%s': a PKCS#11 key is only used by the key "
             "processes: it needs keys.isolate = true%s%s", where, key,
             cfg->keys.where ? " at " : "", cfg->keys.where ? cfg->keys.where : "");
    return -1;
}

int conf_collect_keys(const struct conf_ctx *c, const config_setting_t *root,
                      struct config *cfg)
{
    struct keys_conf *k = &cfg->keys;
    for (size_t i = 0; i < cfg->nfrontends; i++)
        for (size_t j = 0; j < cfg->frontends[i].ncerts; j++) {
            struct cert_conf *cc = &cfg->frontends[i].certs[j];
            if (check_isolated(c, root, cfg, cc->key, cc->where) < 0)
                return -1;
            if (k->isolate)
                add_key(k, cc->key, cc->key_password_file, cc->cert, cc->where, &cc->key_remote,
                        &cc->key_id);
        }
    for (size_t i = 0; i < cfg->nupstreams; i++)
        for (size_t j = 0; j < cfg->upstreams[i].nservers; j++) {
            struct server_conf *sv = &cfg->upstreams[i].servers[j];
            if (!sv->tls.enabled || !sv->tls.cert)
                continue;
            if (check_isolated(c, root, cfg, sv->tls.key, sv->where) < 0)
                return -1;
            if (k->isolate)
                add_key(k, sv->tls.key, sv->tls.key_password_file, sv->tls.cert, sv->where,
                        &sv->tls.key_remote, &sv->tls.key_id);
        }
    if (k->n > CONFIG_MAX_KEYS) {
        snprintf(c->err, c->errlen, "%s: at most %d private keys", cfg->path, CONFIG_MAX_KEYS);
        return -1;
    }
    return 0;
}
