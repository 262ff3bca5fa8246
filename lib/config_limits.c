/*
 * config_limits — the limits section: per-client limits, the allow and
 * deny lists, the size of the client table, and shedding.
 */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>

#include "alloc.h"
#include "clients.h"

struct networks {
    struct addr_cidr **v;
    size_t *n;
};

static int add_network(const struct conf_ctx *c, const config_setting_t *s, const char *v,
                       void *arg)
{
    struct networks *l = arg;
    struct addr_cidr net;
    char why[256];
    if (addr_cidr_parse(v, &net, why, sizeof why) < 0)
        return conf_fail(c, s, "%s", why);
    if (*l->n == CONFIG_MAX_NETWORKS)
        return conf_fail(c, s, "at most %d networks", CONFIG_MAX_NETWORKS);
    *l->v = xreallocarray(*l->v, *l->n + 1, sizeof **l->v);
    (*l->v)[(*l->n)++] = net;
    return 0;
}

/* A network or an array of them; [ ] is none. */
static int load_networks(const struct conf_ctx *c, const config_setting_t *g, const char *name,
                         struct addr_cidr **v, size_t *n)
{
    const config_setting_t *s = config_setting_get_member(g, name);
    struct networks l = { v, n };
    if (!s || (config_setting_is_aggregate(s) && config_setting_length(s) == 0 &&
               config_setting_type(s) != CONFIG_TYPE_GROUP))
        return 0;
    return conf_each_string(c, s, add_network, &l);
}

static void defaults(struct limits_conf *l)
{
    l->per_client = CONFIG_DEFAULT_PER_CLIENT;
    l->handshake_rate = CONFIG_DEFAULT_HANDSHAKE_RATE;
    l->handshake_burst = 0;
    l->ipv6_prefix = CLIENTS_DEFAULT_IPV6_PREFIX;
    l->shed = SHED_IDLE;
    l->shed_idle_after = CONFIG_DEFAULT_SHED_IDLE_AFTER;
    l->table_size = CONFIG_DEFAULT_CLIENT_TABLE;
}

int conf_load_limits(const struct conf_ctx *c, const config_setting_t *root, struct config *cfg)
{
    static const char *const keys[] = { "per_client", "handshake_rate", "handshake_burst",
                                        "ipv6_prefix", "allow", "deny", "shed",
                                        "shed_idle_after", "table_size", NULL };
    static const char *const sheds[] = { "idle", "off", NULL };
    struct limits_conf *l = &cfg->limits;
    const config_setting_t *g;
    int shed;

    defaults(l);
    if (conf_group(c, root, "limits", keys, &g) < 0)
        return -1;
    if (!g)
        return 0;
    /* Counted clients hold a worker each: with twice the entries, at most
     * half the table is taken by them. */
    int pool = cfg->workers.count ? cfg->workers.count
                                  : cfg->workers.max ? cfg->workers.max : CONFIG_MAX_WORKERS;
    long long min_table = 2LL * pool;
    if (conf_int(c, g, "per_client", l->per_client, 0, 1000000, &l->per_client) < 0 ||
        conf_int(c, g, "handshake_rate", l->handshake_rate, 0, 1000000, &l->handshake_rate) < 0 ||
        conf_int(c, g, "handshake_burst", 0, 0, 1000000, &l->handshake_burst) < 0 ||
        conf_int(c, g, "ipv6_prefix", l->ipv6_prefix, 1, 128, &l->ipv6_prefix) < 0 ||
        load_networks(c, g, "allow", &l->allow, &l->nallow) < 0 ||
        load_networks(c, g, "deny", &l->deny, &l->ndeny) < 0 ||
        conf_enum(c, g, "shed", sheds, SHED_IDLE, &shed) < 0 ||
        conf_duration(c, g, "shed_idle_after", l->shed_idle_after, &l->shed_idle_after) < 0 ||
        conf_int(c, g, "table_size", l->table_size, min_table, CLIENTS_MAX_SLOTS,
                 &l->table_size) < 0)
        return -1;
    l->shed = (enum shed)shed;
    return 0;
}
