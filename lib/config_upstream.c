/*
 * config_upstream — an upstream: its servers, TLS to them, PROXY protocol,
 * the balancing and the health checks.
 */
#include "config_int.h"
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wolfssl/options.h>

#include "alloc.h"

static int get_proxy(const struct conf_ctx *c, const config_setting_t *g, enum proxy_protocol def,
                     enum proxy_protocol *out)
{
    static const char *const names[] = { "off", "v1", "v2", NULL };
    int v;
    if (conf_enum(c, g, "proxy_protocol", names, (int)def, &v) < 0)
        return -1;
    *out = (enum proxy_protocol)v;
    return 0;
}

/* wolfSSL checks a name against an iPAddress subjectAltName only so built. */
#if defined(OPENSSL_ALL) || defined(WOLFSSL_IP_ALT_NAME)
#define CAN_CHECK_IP 1
#else
#define CAN_CHECK_IP 0
#endif

/*
 * The name a server's certificate must carry when none is set: the host of
 * its address ("host:port", "[v6]:port"). An IP address is written as
 * wolfSSL writes an iPAddress subjectAltName to compare it: IPv4 dotted,
 * IPv6 as eight groups of four upper-case hex digits. NULL if none can be
 * checked ("*", or an IP address when wolfSSL cannot check IPs).
 */
static char *address_name(const char *address)
{
    char host[256], out[48];
    unsigned char ip[16];
    snprintf(host, sizeof host, "%s", address);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
        host[n - 1] = '\0';
        if (!CAN_CHECK_IP || inet_pton(AF_INET6, host + 1, ip) != 1)
            return NULL;
        for (int i = 0; i < 8; i++)
            snprintf(out + i * 5, sizeof out - (size_t)i * 5, "%02X%02X%s", ip[2 * i],
                     ip[2 * i + 1], i < 7 ? ":" : "");
        return xstrdup(out);
    }
    if (inet_pton(AF_INET, host, ip) == 1)
        return CAN_CHECK_IP ? xstrdup(inet_ntop(AF_INET, ip, out, sizeof out)) : NULL;
    return strcmp(host, "*") && n ? xstrdup(host) : NULL;
}

/* verify_name, else sni, else the address's host; an error if verifying
 * and none of them can be checked. */
static int default_verify_name(const struct conf_ctx *c, const config_setting_t *s,
                               const char *address, struct backend_tls_conf *t)
{
    if (!t->enabled || !t->verify || t->verify_name)
        return 0;
    t->verify_name = t->sni ? xstrdup(t->sni) : address_name(address);
    if (!t->verify_name)
        return conf_fail(c, s, "cannot check the certificate of %s by its address (this "
                         "wolfSSL does not check IP addresses): set tls.verify_name (or "
                         "sni), or verify = false", address);
    return 0;
}

/* A server's tls: true/false, or a group of settings (which means true). */
static int load_backend_tls(const struct conf_ctx *c, const config_setting_t *g,
                            const char *address, struct backend_tls_conf *t)
{
    static const char *const keys[] = { "enabled", "verify", "ca_file", "sni", "verify_name",
                                        "cert", "key", "key_password_file", NULL };
    const config_setting_t *s = config_setting_get_member(g, "tls");
    t->verify = true;
    if (!s)
        return 0;
    if (config_setting_type(s) == CONFIG_TYPE_BOOL) {
        t->enabled = config_setting_get_bool(s);
        return default_verify_name(c, s, address, t);
    }
    if (config_setting_type(s) != CONFIG_TYPE_GROUP)
        return conf_fail(c, s, "expected true, false or a group { ... }, got %s",
                    conf_type_name(config_setting_type(s)));
    if (conf_check_keys(c, s, keys) < 0 ||
        conf_bool(c, s, "enabled", true, &t->enabled) < 0 ||
        conf_bool(c, s, "verify", true, &t->verify) < 0 ||
        conf_nonempty_string(c, s, "ca_file", false, &t->ca_file) < 0 ||
        conf_nonempty_string(c, s, "sni", false, &t->sni) < 0 ||
        conf_nonempty_string(c, s, "verify_name", false, &t->verify_name) < 0 ||
        conf_nonempty_string(c, s, "cert", false, &t->cert) < 0)
        return -1;
    if (!t->cert && config_setting_get_member(s, "key"))
        return conf_fail(c, config_setting_get_member(s, "key"), "a key needs a cert");
    if (!t->cert && config_setting_get_member(s, "key_password_file"))
        return conf_fail(c, config_setting_get_member(s, "key_password_file"),
                         "a key_password_file needs a cert");
    if (default_verify_name(c, s, address, t) < 0)
        return -1;
    conf_make_absolute(&t->ca_file);
    conf_make_absolute(&t->cert);
    return t->cert ? conf_cert_key(c, s, t->cert, &t->key, &t->key_password_file) : 0;
}

static int load_server(const struct conf_ctx *c, const config_setting_t *g, struct server_conf *sv,
                       const struct upstream_conf *up)
{
    static const char *const keys[] = { "address", "weight", "backup", "max_conns",
                                        "proxy_protocol", "tls", NULL };
    char why[256];
    if (conf_check_keys(c, g, keys) < 0 ||
        conf_nonempty_string(c, g, "address", true, &sv->address) < 0)
        return -1;
    sv->where = conf_where(c, g);
    if (addr_parse(sv->address, true, &sv->addr, why, sizeof why) < 0)
        return conf_fail(c, config_setting_get_member(g, "address"), "%s", why);
    if (addr_port((const struct sockaddr *)&sv->addr.sa) == 0)
        return conf_fail(c, config_setting_get_member(g, "address"), "no usable address");
    if (conf_int(c, g, "weight", 1, 1, 1000, &sv->weight) < 0 ||
        conf_bool(c, g, "backup", false, &sv->backup) < 0 ||
        conf_int(c, g, "max_conns", 0, 0, 1000000, &sv->max_conns) < 0 ||
        get_proxy(c, g, up->proxy, &sv->proxy) < 0 ||
        load_backend_tls(c, g, sv->address, &sv->tls) < 0)
        return -1;
    return 0;
}

/* "200", 200 or "200-399". */
static int get_expect(const struct conf_ctx *c, const config_setting_t *g, struct health_conf *h)
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
                return conf_fail(c, s,
                                 "expected a status or a range such as \"200-399\", got \"%s\"",
                            v);
            h->expect_hi = h->expect_lo;
        }
    } else {
        return conf_fail(c, s, "expected a status or a range such as \"200-399\", got %s",
                    conf_type_name(t));
    }
    if (h->expect_lo < 100 || h->expect_hi > 599 || h->expect_lo > h->expect_hi)
        return conf_fail(c, s, "status range must lie within 100-599, low to high");
    return 0;
}

static int load_health(const struct conf_ctx *c, const config_setting_t *up, struct health_conf *h)
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
    h->path = xstrdup("/");
    if (conf_group(c, up, "health", keys, &g) < 0)
        return -1;
    if (g) {
        char *path = NULL;
        if (conf_enum(c, g, "type", types, HEALTH_TCP, &type) < 0 ||
            conf_enum(c, g, "start", starts, 1, &start) < 0 ||
            conf_nonempty_string(c, g, "path", false, &path) < 0 ||
            conf_nonempty_string(c, g, "host", false, &h->host) < 0 ||
            conf_nonempty_string(c, g, "body", false, &h->body) < 0 ||
            get_expect(c, g, h) < 0 ||
            conf_duration(c, g, "interval", CONFIG_DEFAULT_HEALTH_INTERVAL, &h->interval) < 0 ||
            conf_duration(c, g, "timeout", CONFIG_DEFAULT_HEALTH_TIMEOUT, &h->timeout) < 0 ||
            conf_int(c, g, "rise", CONFIG_DEFAULT_RISE, 1, 100, &h->rise) < 0 ||
            conf_int(c, g, "fall", CONFIG_DEFAULT_FALL, 1, 100, &h->fall) < 0) {
            free(path);     /* not yet h->path: config_free would not see it */
            return -1;
        }
        if (path) {
            if (path[0] != '/') {
                free(path);
                return conf_fail(c, config_setting_get_member(g, "path"), "must start with /");
            }
            free(h->path);
            h->path = path;
        }
        if (type != HEALTH_NONE && h->timeout > h->interval) {
            const config_setting_t *t = config_setting_get_member(g, "timeout");
            return conf_fail(c, t ? t : g, "timeout (%gs) must not be longer than interval "
                             "(%gs)", h->timeout, h->interval);
        }
    }
    h->type = (enum health_type)type;
    h->start_up = start == 1;
    return 0;
}

int conf_load_upstream(const struct conf_ctx *c, const config_setting_t *g,
                       struct upstream_conf *up)
{
    static const char *const keys[] = { "name", "servers", "balance", "retries",
                                        "proxy_protocol", "health", NULL };
    static const char *const balances[] = { "roundrobin", "leastconn", "source", NULL };
    const config_setting_t *servers;
    int bal;
    if (conf_check_keys(c, g, keys) < 0)
        return -1;
    up->where = conf_where(c, g);
    if (conf_nonempty_string(c, g, "name", true, &up->name) < 0 ||
        conf_enum(c, g, "balance", balances, BALANCE_ROUNDROBIN, &bal) < 0 ||
        conf_int(c, g, "retries", CONFIG_DEFAULT_RETRIES, 0, 10, &up->retries) < 0 ||
        get_proxy(c, g, PROXY_OFF, &up->proxy) < 0 ||
        load_health(c, g, &up->health) < 0 ||
        conf_list(c, g, "servers", &servers) < 0)
        return -1;
    up->balance = (enum balance)bal;
    up->nservers = (size_t)config_setting_length(servers);
    if (up->nservers > CONFIG_MAX_SERVERS)
        return conf_fail(c, servers, "at most %d servers", CONFIG_MAX_SERVERS);
    up->servers = xcalloc(up->nservers, sizeof *up->servers);
    bool primary = false;
    for (size_t i = 0; i < up->nservers; i++) {
        if (load_server(c, config_setting_get_elem(servers, (unsigned)i), &up->servers[i], up) < 0)
            return -1;
        primary |= !up->servers[i].backup;
    }
    if (!primary)
        return conf_fail(c, servers, "every server is a backup: at least one must not be");
    return 0;
}
