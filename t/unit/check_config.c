#include "unit.h"

#include <netinet/in.h>

#include "config.h"
#include "tls_policy.h"
#include "log.h"
#include <wolfssl/options.h>
#include <wolfssl/ssl.h>

static char err[CONFIG_ERR_MAX];

#define MINIMAL_FE \
    "frontends = ( { name = \"https\"; listen = \"127.0.0.1:8443\";\n" \
    "  certificates = ( { cert = \"a.pem\"; } ); upstream = \"web\"; } );\n"
#define MINIMAL_UP \
    "upstreams = ( { name = \"web\"; servers = ( { address = \"127.0.0.1:8080\"; } ); } );\n"

static struct config *load(const char *text)
{
    char *path = unit_tempfile(text);
    struct config *cfg = config_load(path, err, sizeof err);
    unlink(path);
    free(path);
    return cfg;
}

/* The error names the file, the line and says what. */
static void expect_error(const char *text, int line, const char *what)
{
    char *path = unit_tempfile(text);
    struct config *cfg = config_load(path, err, sizeof err);
    char prefix[600];
    if (line)
        snprintf(prefix, sizeof prefix, "%s:%d: ", path, line);
    else
        snprintf(prefix, sizeof prefix, "%s: ", path);
    ck_assert_msg(cfg == NULL, "accepted: %s", text);
    ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0, "want prefix '%s', got '%s'",
                  prefix, err);
    ck_assert_msg(strstr(err, what) != NULL, "want '%s' in '%s'", what, err);
    unlink(path);
    free(path);
}

START_TEST(minimal_defaults)
{
    struct config *cfg = load(MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert(cfg->daemon);
    ck_assert_str_eq(cfg->pidfile, CONFIG_DEFAULT_PIDFILE);
    ck_assert_str_eq(cfg->log.destination, "syslog");
    ck_assert_int_eq(cfg->log.level, LOG_LVL_INFO);
    ck_assert_ptr_null(cfg->log.access_log);
    ck_assert_int_eq(cfg->workers.count, 0);                 /* a dynamic pool */
    ck_assert_int_eq(cfg->workers.min_spare, 4);
    ck_assert_int_eq(cfg->workers.max_spare, 16);
    ck_assert_int_eq(cfg->workers.max, CONFIG_WORKERS_AUTO);
    ck_assert_int_eq(cfg->workers.max_connections, 0);
    ck_assert(cfg->timeouts.handshake == CONFIG_DEFAULT_HANDSHAKE);
    ck_assert(cfg->timeouts.connect == CONFIG_DEFAULT_CONNECT);
    ck_assert(cfg->timeouts.idle == CONFIG_DEFAULT_IDLE);
    ck_assert(cfg->timeouts.shutdown == CONFIG_DEFAULT_SHUTDOWN);
    ck_assert_int_eq(cfg->tls.min_version, TLS1_2_VERSION);
    ck_assert_int_eq(cfg->tls.max_version, TLS1_3_VERSION);
    ck_assert_str_eq(cfg->tls.ciphers, TLS_POLICY_CIPHERS);
    ck_assert_str_eq(cfg->tls.ciphersuites, TLS_POLICY_CIPHERSUITES);
    ck_assert_str_eq(cfg->tls.groups, TLS_POLICY_GROUPS);
    ck_assert_uint_eq(cfg->nfrontends, 1);
    ck_assert_uint_eq(cfg->frontends[0].nlisten, 1);
    ck_assert_str_eq(cfg->frontends[0].certs[0].key, cfg->frontends[0].certs[0].cert);
    ck_assert_str_eq(config_frontend_upstream(cfg, &cfg->frontends[0])->name, "web");
    config_free(cfg);
}
END_TEST

START_TEST(full_file)
{
    struct config *cfg = load(
        "daemon = false;\n"
        "pidfile = \"\";\n"
        "log = { destination = \"stderr\"; facility = \"local3\"; level = \"debug\";\n"
        "        access_log = \"/tmp/a.log\"; };\n"
        "workers = { count = 7; };\n"
        "timeouts = { handshake = 2.5; connect = 1; idle = 60; shutdown = 5; };\n"
        "tls = { preset = \"modern\"; groups = [ \"P-256\" ];\n"
        "        ciphersuites = \"TLS13-CHACHA20-POLY1305-SHA256\"; };\n"
        "frontends = (\n"
        "  { name = \"a\"; listen = [ \"127.0.0.1:1\", \"[::1]:1\" ];\n"
        "    certificates = ( { cert = \"c.pem\"; key = \"c.key\"; } ); upstream = \"u2\"; },\n"
        "  { name = \"b\"; listen = \"*:2\"; certificates = ( { cert = \"d.pem\"; } );\n"
        "    upstream = \"u1\"; }\n"
        ");\n"
        "upstreams = (\n"
        "  { name = \"u1\"; servers = ( { address = \"127.0.0.1:80\"; }, { address = \"[::1]:81\"; } ); },\n"
        "  { name = \"u2\"; servers = ( { address = \"localhost:82\"; } ); }\n"
        ");\n");
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert(!cfg->daemon);
    ck_assert_str_eq(cfg->pidfile, "");
    ck_assert_str_eq(cfg->log.destination, "stderr");
    ck_assert_int_eq(cfg->log.level, LOG_LVL_DEBUG);
    ck_assert_str_eq(cfg->log.access_log, "/tmp/a.log");
    ck_assert_int_eq(cfg->workers.count, 7);
    ck_assert(cfg->timeouts.handshake == 2.5);
    ck_assert(cfg->timeouts.connect == 1.0);
    ck_assert_int_eq(cfg->tls.min_version, TLS1_3_VERSION);
    ck_assert_int_eq(cfg->tls.max_version, TLS1_3_VERSION);
    ck_assert_str_eq(cfg->tls.groups, "P-256");
    ck_assert_str_eq(cfg->tls.ciphersuites, "TLS13-CHACHA20-POLY1305-SHA256");
    ck_assert_uint_eq(cfg->nfrontends, 2);
    ck_assert_uint_eq(cfg->frontends[0].nlisten, 2);
    ck_assert_int_eq(cfg->frontends[0].listen[1].addr.sa.ss_family, AF_INET6);
    ck_assert_str_eq(config_frontend_upstream(cfg, &cfg->frontends[0])->name, "u2");
    ck_assert_str_eq(config_frontend_upstream(cfg, &cfg->frontends[1])->name, "u1");
    ck_assert_uint_eq(cfg->upstreams[0].nservers, 2);
    ck_assert_str_eq(cfg->upstreams[0].servers[1].address, "[::1]:81");
    config_free(cfg);
}
END_TEST

START_TEST(cipher_names)
{
    struct config *cfg = load("tls = { ciphers = \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256:"
                              "ECDHE-RSA-CHACHA20-POLY1305\";\n"
                              "  ciphersuites = \"TLS_CHACHA20_POLY1305_SHA256\"; };\n"
                              MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_str_eq(cfg->tls.ciphersuites, "TLS_CHACHA20_POLY1305_SHA256");
    ck_assert_ptr_nonnull(strstr(cfg->tls.ciphers_where, ":1"));
    ck_assert_ptr_nonnull(strstr(cfg->tls.suites_where, ":2"));
    config_free(cfg);
    expect_error("tls = { ciphersuites = \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"; };\n"
                 MINIMAL_FE MINIMAL_UP, 1, "is not a TLS 1.3 suite");
}
END_TEST

START_TEST(resumption_keys)
{
    struct config *cfg = load(MINIMAL_FE MINIMAL_UP);
    ck_assert_uint_eq(cfg->tls.session_cache.size, 32u << 20);
    ck_assert(cfg->tls.session_cache.timeout == 300.0);
    ck_assert(cfg->tls.tickets.enabled);
    ck_assert(cfg->tls.tickets.rotate == 3600.0 && cfg->tls.tickets.lifetime == 43200.0);
    ck_assert(cfg->tls.tickets.max_age == 604800.0);
    ck_assert_uint_eq(cfg->tls.tickets.nkey_files, 0);
    config_free(cfg);
    cfg = load("tls = { session_cache = { size = \"64K\"; timeout = 60; };\n"
               "  tickets = { enabled = false; rotate = 10; lifetime = 20; max_age = 3600;\n"
               "              key_files = [ \"/k/a.key\", \"b.key\" ]; }; };\n"
               MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_uint_eq(cfg->tls.session_cache.size, 64u << 10);
    ck_assert(!cfg->tls.tickets.enabled);
    ck_assert(cfg->tls.tickets.max_age == 3600.0);
    ck_assert_uint_eq(cfg->tls.tickets.nkey_files, 2);
    ck_assert_str_eq(cfg->tls.tickets.key_files[0], "/k/a.key");
    ck_assert_int_eq(cfg->tls.tickets.key_files[1][0], '/');       /* made absolute */
    config_free(cfg);
    cfg = load("tls = { session_cache = { size = 0; }; tickets = { key_files = []; }; };\n"
               MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_uint_eq(cfg->tls.session_cache.size, 0);
    config_free(cfg);
    expect_error("tls = { session_cache = {\n size = \"32Q\"; }; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "tls.session_cache.size: expected a size such as 32M");
    expect_error("tls = { session_cache = { size = -1; }; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "must be from 0 to");
    expect_error("tls = { session_cache = { sizes = 1; }; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "tls.session_cache.sizes: unknown key");
    expect_error("tls = { tickets = {\n rotate = 60;\n lifetime = 86400; }; };\n"
                 MINIMAL_FE MINIMAL_UP, 3, "lifetime / rotate must be at most 30");
    expect_error("tls = { tickets = {\n max_age = 604801; }; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "from 0.001 to 604800 seconds");
    expect_error("tls = { tickets = { key_files = [ \"\" ]; }; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "must not be empty");
}
END_TEST

START_TEST(limits_keys)
{
    struct config *cfg = load(MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(cfg->limits.per_client, 256);
    ck_assert_int_eq(cfg->limits.handshake_rate, 50);
    ck_assert_int_eq(cfg->limits.handshake_burst, 0);
    ck_assert_int_eq(cfg->limits.ipv6_prefix, 64);
    ck_assert_uint_eq(cfg->limits.nallow + cfg->limits.ndeny, 0);
    ck_assert_int_eq(cfg->limits.shed, SHED_IDLE);
    ck_assert(cfg->limits.shed_idle_after == 5.0);
    ck_assert_int_eq(cfg->limits.table_size, 4 * CONFIG_MAX_WORKERS);
    config_free(cfg);
    cfg = load("limits = { per_client = 0; handshake_rate = 0; handshake_burst = 20;\n"
               "  ipv6_prefix = 48; allow = [ \"192.0.2.0/24\", \"2001:db8::/32\",\n"
               "  \"::ffff:198.51.100.7\" ]; deny = \"192.0.2.128/25\";\n"
               "  shed = \"off\"; shed_idle_after = 0.5; table_size = 100000; };\n"
               MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(cfg->limits.per_client, 0);
    ck_assert_int_eq(cfg->limits.handshake_rate, 0);
    ck_assert_int_eq(cfg->limits.handshake_burst, 20);
    ck_assert_int_eq(cfg->limits.ipv6_prefix, 48);
    ck_assert_uint_eq(cfg->limits.nallow, 3);
    ck_assert_int_eq(cfg->limits.allow[1].family, AF_INET6);
    ck_assert_int_eq(cfg->limits.allow[1].bits, 32);
    ck_assert_int_eq(cfg->limits.allow[2].family, AF_INET);     /* mapped: IPv4 */
    ck_assert_uint_eq(cfg->limits.ndeny, 1);
    ck_assert_int_eq(cfg->limits.deny[0].bits, 25);
    ck_assert_int_eq(cfg->limits.shed, SHED_OFF);
    ck_assert(cfg->limits.shed_idle_after == 0.5);
    ck_assert_int_eq(cfg->limits.table_size, 100000);
    config_free(cfg);
    cfg = load("limits = { allow = [ ]; deny = [ ]; };\n" MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_uint_eq(cfg->limits.nallow + cfg->limits.ndeny, 0);
    ck_assert_int_eq(cfg->limits.per_client, 256);
    config_free(cfg);
}
END_TEST

START_TEST(limits_errors)
{
    expect_error("limits = {\n per_clients = 3; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "limits.per_clients: unknown key (known here: per_client,");
    expect_error("limits = 3;\n" MINIMAL_FE MINIMAL_UP, 1, "limits: expected a group");
    expect_error("limits = { per_client = -1; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "limits.per_client: must be from 0 to 1000000, got -1");
    expect_error("limits = { handshake_rate = \"50/s\"; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "limits.handshake_rate: expected an integer, got a string");
    expect_error("limits = { handshake_burst = 1000001; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "limits.handshake_burst: must be from 0 to 1000000");
    expect_error("limits = { ipv6_prefix = 0; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "limits.ipv6_prefix: must be from 1 to 128, got 0");
    expect_error("limits = { ipv6_prefix = 129; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "must be from 1 to 128, got 129");
    expect_error("limits = { deny = [ \"192.0.2.0/24\",\n \"192.0.2.7/24\" ]; };\n"
                 MINIMAL_FE MINIMAL_UP, 2,
                 "limits.deny[1]: '192.0.2.7/24' has bits set after the first 24");
    expect_error("limits = {\n allow = \"example.org\"; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "limits.allow: 'example.org': 'example.org' is not an IP address");
    expect_error("limits = { allow = [ \"10.0.0.0/33\" ]; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "'10.0.0.0/33': the prefix length must be a number from 0 to 32");
    expect_error("limits = { allow = [ 10 ]; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "limits.allow[0]: expected a string, got an integer");
    expect_error("limits = { deny = { a = 1; }; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "limits.deny: expected a string or an array of strings");
    expect_error("limits = { shed = \"oldest\"; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "limits.shed: unknown value \"oldest\" (expected \"idle\", \"off\")");
    expect_error("limits = { shed_idle_after = 0; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "limits.shed_idle_after: must be a duration");
    expect_error("workers = { max = 300; };\nlimits = { table_size = 599; };\n"
                 MINIMAL_FE MINIMAL_UP, 2, "limits.table_size: must be from 600 to");
    /* At most CONFIG_MAX_NETWORKS entries a list. */
    size_t cap = 64 + (CONFIG_MAX_NETWORKS + 1) * 24 + sizeof(MINIMAL_FE MINIMAL_UP);
    char *text = malloc(cap);
    size_t off = (size_t)snprintf(text, cap, "limits = { deny = [\n");
    for (int i = 0; i <= CONFIG_MAX_NETWORKS; i++)
        off += (size_t)snprintf(text + off, cap - off, "\"10.%d.%d.0/24\"%s\n", i / 256,
                                i % 256, i < CONFIG_MAX_NETWORKS ? "," : " ]; };");
    snprintf(text + off, cap - off, MINIMAL_FE MINIMAL_UP);
    expect_error(text, CONFIG_MAX_NETWORKS + 2, "at most 1024 networks");
    free(text);
}
END_TEST

START_TEST(protocols)
{
    struct config *cfg = load("tls = { protocols = [ \"TLSv1.2\" ]; };\n" MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(cfg->tls.min_version, TLS1_2_VERSION);
    ck_assert_int_eq(cfg->tls.max_version, TLS1_2_VERSION);
    config_free(cfg);
}
END_TEST

START_TEST(relative_paths)
{
    /* The daemon runs in "/": relative paths are made absolute at load. */
    char cwd[4096], want[4200];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    struct config *cfg = load("pidfile = \"run/t.pid\";\n"
                              "log = { destination = \"logs/main.log\"; access_log = \"a.log\"; };\n"
                              MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    snprintf(want, sizeof want, "%s/run/t.pid", cwd);
    ck_assert_str_eq(cfg->pidfile, want);
    snprintf(want, sizeof want, "%s/logs/main.log", cwd);
    ck_assert_str_eq(cfg->log.destination, want);
    snprintf(want, sizeof want, "%s/a.pem", cwd);
    ck_assert_str_eq(cfg->frontends[0].certs[0].cert, want);
    ck_assert_str_eq(cfg->frontends[0].certs[0].key, want);
    config_free(cfg);
    cfg = load("log = { destination = \"syslog\"; access_log = \"\"; };\n" MINIMAL_FE MINIMAL_UP);
    ck_assert_str_eq(cfg->log.destination, "syslog");
    ck_assert_str_eq(cfg->log.access_log, "");
    config_free(cfg);
}
END_TEST

START_TEST(include)
{
    char *inc = unit_tempfile("workers = { count = 3; };\n");
    char text[1024];
    snprintf(text, sizeof text, "@include \"%s\"\n" MINIMAL_FE MINIMAL_UP, inc);
    struct config *cfg = load(text);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(cfg->workers.count, 3);
    config_free(cfg);
    unlink(inc);
    free(inc);
}
END_TEST

START_TEST(missing_file)
{
    ck_assert_ptr_null(config_load("/nonexistent/tlsoffd.conf", err, sizeof err));
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/tlsoffd.conf: cannot open: No such file"));
}
END_TEST

START_TEST(syntax_error)
{
    expect_error("workers = { count = 3 };\n\nfoo = ;\n", 3, "syntax error");
}
END_TEST

START_TEST(unknown_keys)
{
    expect_error("workers = { count = 3; };\ntimeout = { idle = 3; };\n" MINIMAL_FE MINIMAL_UP,
                 2, "timeout: unknown key");
    expect_error("timeouts = {\n  idle = 3;\n  handshak = 2;\n};\n" MINIMAL_FE MINIMAL_UP,
                 3, "timeouts.handshak: unknown key (known here: handshake, connect");
    expect_error(MINIMAL_UP "frontends = ( { name = \"x\"; listen = \"127.0.0.1:1\";\n"
                 "  certificates = ( { cert = \"a\";\n keyfile = \"b\"; } ); upstream = \"web\"; } );\n",
                 4, "frontends[0].certificates[0].keyfile: unknown key");
}
END_TEST

START_TEST(types_and_ranges)
{
    expect_error("workers = {\n count = \"four\"; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "workers.count: expected an integer, got a string");
    expect_error("workers = { count = -1; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "must be from 0 to 32768, got -1");
    expect_error("workers = { min_spare = 8;\n max_spare = 4; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "workers.max_spare must be at least min_spare");
    expect_error("workers = { max = 2; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "workers.max must be at least min_spare");
    expect_error("workers = {\n max = \"lots\"; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "workers.max: expected a number or \"auto\", got 'lots'");
    expect_error("workers = { max = 32769; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "must be from 1 to 32768, got 32769");
    struct config *cfg = load("workers = { max = \"auto\"; min_spare = 8; max_spare = 9; };\n"
                              MINIMAL_FE MINIMAL_UP);
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(cfg->workers.max, CONFIG_WORKERS_AUTO);
    config_free(cfg);
    expect_error("\ntimeouts = { idle = -1; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "timeouts.idle: must be a duration");
    expect_error("timeouts = { idle = \"5s\"; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "expected a duration in seconds");
    expect_error("daemon = 1;\n" MINIMAL_FE MINIMAL_UP, 1, "daemon: expected true or false");
    expect_error("log = { level = \"loud\"; };\n" MINIMAL_FE MINIMAL_UP, 1, "unknown level");
    expect_error("log = { facility = \"kern2\"; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "unknown syslog facility");
    expect_error("log = { destination = \"\"; };\n" MINIMAL_FE MINIMAL_UP, 1, "must not be empty");
    expect_error("workers = 4;\n" MINIMAL_FE MINIMAL_UP, 1, "expected a group");
    /* Confinement that would leave the workers root. */
    expect_error("daemon = false;\nchroot = \"/tmp\";\n" MINIMAL_FE MINIMAL_UP, 2,
                 "chroot: needs user, other than root");
    expect_error("user = \"root\";\nchroot = \"/tmp\";\n" MINIMAL_FE MINIMAL_UP, 2,
                 "chroot: needs user, other than root");
    expect_error("group = \"nogroup\";\n" MINIMAL_FE MINIMAL_UP, 1,
                 "group: needs user: without it the workers keep user ID 0");
}
END_TEST

START_TEST(tls_errors)
{
    expect_error("tls = {\n protocols = [ \"TLSv1.1\" ]; };\n" MINIMAL_FE MINIMAL_UP, 2,
                 "unsupported protocol 'TLSv1.1'");
    expect_error("tls = { ciphers = \"ECDHE-RSA-NULL-SHA\"; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "'ECDHE-RSA-NULL-SHA' is not an AEAD suite");
    expect_error("tls = {\n  ciphers = \"ECDHE-RSA-AES128-GCM-SHA256:HIGH\"; };\n" MINIMAL_FE MINIMAL_UP,
                 2, "tls.ciphers: 'HIGH' is not an AEAD suite");
    expect_error("tls = { ciphers = \"ECDHE-ECDSA-AES128-SHA\"; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "not an AEAD suite");
    expect_error("tls = { ciphers = \"AES128-GCM-SHA256\"; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "has no forward secrecy");
    expect_error("tls = {\n  ciphers = \"ECDHE-ECDSA-AES128-CCM:ECDHE-ECDSA-AES128-CCM8\"; };\n"
                 MINIMAL_FE MINIMAL_UP, 2,
                 "tls.ciphers: 'ECDHE-ECDSA-AES128-CCM8' is AES-CCM-8, whose 8-byte tag");
    expect_error("tls = { ciphers = \"ECDHE-ECDSA-AES256-CCM-8\"; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "'ECDHE-ECDSA-AES256-CCM-8' is AES-CCM-8");
    expect_error("tls = { ciphersuites = \"TLS_AES_128_CCM_8_SHA256\"; };\n" MINIMAL_FE MINIMAL_UP,
                 1, "tls.ciphersuites: 'TLS_AES_128_CCM_8_SHA256' is AES-CCM-8");
    expect_error("tls = { ciphersuites = \"TLS13-AES128-CCM-8-SHA256\"; };\n" MINIMAL_FE MINIMAL_UP,
                 1, "'TLS13-AES128-CCM-8-SHA256' is AES-CCM-8");
    expect_error("tls = { ciphersuites = \"ECDHE-RSA-AES128-GCM-SHA256\"; };\n" MINIMAL_FE MINIMAL_UP,
                 1, "is not a TLS 1.3 suite");
    expect_error("tls = { ciphers = \"\"; };\n" MINIMAL_FE MINIMAL_UP, 1, "must not be empty");
    expect_error("tls = { preset = \"old\"; };\n" MINIMAL_FE MINIMAL_UP, 1, "unknown preset");
    expect_error("tls = { groups = [ \"P-192\" ]; };\n" MINIMAL_FE MINIMAL_UP, 1,
                 "unknown group 'P-192'");
}
END_TEST

START_TEST(structure_errors)
{
    /* health.path is read before the keys after it: refused by one of
     * those, it is freed too (under SANITIZE=1, LeakSanitizer checks). */
    expect_error(MINIMAL_FE "upstreams = ( { name = \"web\";\n"
                 "  health = { path = \"/healthz\"; expect = \"two hundred\"; };\n"
                 "  servers = ( { address = \"127.0.0.1:8080\"; } ); } );\n", 4,
                 "expected a status or a range such as \"200-399\", got \"two hundred\"");
    expect_error(MINIMAL_UP, 0, "missing required key 'frontends'");
    expect_error(MINIMAL_FE, 0, "missing required key 'upstreams'");
    expect_error("frontends = ();\n" MINIMAL_UP, 1, "must have at least one entry");
    expect_error(MINIMAL_UP "frontends = ( { name = \"https\"; listen = \"127.0.0.1:1\";\n"
                 "  certificates = ( { cert = \"a.pem\"; } );\n  upstream = \"nope\"; } );\n",
                 4, "no upstream is named 'nope'");
    expect_error(MINIMAL_UP "frontends = ( { name = \"a\"; listen = \"127.0.0.1:1\";\n"
                 "  certificates = ( { cert = \"a\"; } ); upstream = \"web\"; },\n"
                 " { name = \"a\"; listen = \"127.0.0.1:2\";\n"
                 "  certificates = ( { cert = \"a\"; } ); upstream = \"web\"; } );\n",
                 4, "frontend name 'a' is already used");
    expect_error(MINIMAL_UP "frontends = ( { name = \"a\"; listen = [ \"127.0.0.1:1\",\n"
                 " \"127.0.0.1\" ];\n"
                 "  certificates = ( { cert = \"a\"; } ); upstream = \"web\"; } );\n",
                 3, "has no port");
    expect_error(MINIMAL_UP "frontends = ( { name = \"a\";\n listen = [ \"127.0.0.1:1\",\n \"127.0.0.1:1\" ];\n"
                 "  certificates = ( { cert = \"a\"; } ); upstream = \"web\"; } );\n",
                 4, "already listened on by frontend 'a'");
    expect_error(MINIMAL_UP "frontends = ( { name = \"a\"; listen = \"127.0.0.1:1\";\n"
                 "  certificates = ( { key = \"a\"; } ); upstream = \"web\"; } );\n",
                 3, "missing required key 'cert'");
    expect_error(MINIMAL_FE "upstreams = ( { name = \"web\";\n servers = ( { address = \"nohost.invalid:80\"; } ); } );\n",
                 4, "cannot resolve");
}
END_TEST

/* An upstream "web" with one server: address and its tls setting. */
#define TLS_UP(addr, tls) \
    "upstreams = ( { name = \"web\"; servers = ( { address = \"" addr "\";\n" \
    "  tls = " tls "; } ); } );\n"

/* The name a TLS backend's certificate must carry, from load(text). */
static void expect_verify_name(const char *text, const char *want)
{
    struct config *cfg = load(text);
    ck_assert_msg(cfg != NULL, "%s", err);
    const char *got = cfg->upstreams[0].servers[0].tls.verify_name;
    if (want)
        ck_assert_msg(got && strcmp(got, want) == 0, "want '%s', got '%s'", want, got);
    else
        ck_assert_msg(got == NULL, "want no name, got '%s'", got);
    config_free(cfg);
}

START_TEST(backend_tls_name)
{
    expect_verify_name(MINIMAL_FE TLS_UP("127.0.0.1:443", "true"), "127.0.0.1");
    expect_verify_name(MINIMAL_FE TLS_UP("[::1]:443", "{ ca_file = \"ca.pem\"; }"),
                       "0000:0000:0000:0000:0000:0000:0000:0001");
    expect_verify_name(MINIMAL_FE TLS_UP("localhost:443", "true"), "localhost");
    expect_verify_name(MINIMAL_FE TLS_UP("127.0.0.1:443", "{ sni = \"b.test\"; }"), "b.test");
    expect_verify_name(MINIMAL_FE TLS_UP("127.0.0.1:443",
                                         "{ sni = \"b.test\"; verify_name = \"c.test\"; }"),
                       "c.test");
    expect_verify_name(MINIMAL_FE TLS_UP("127.0.0.1:443", "{ verify = false; }"), NULL);
    expect_verify_name(MINIMAL_FE TLS_UP("127.0.0.1:443", "false"), NULL);
}
END_TEST

START_TEST(backend_tls_name_errors)
{
    expect_error(MINIMAL_FE TLS_UP("*:443", "true"), 4,
                 "cannot check the certificate of *:443 by its address");
    expect_error(MINIMAL_FE TLS_UP("*:443", "{ ca_file = \"ca.pem\"; }"), 4,
                 "set tls.verify_name (or sni), or verify = false");
    expect_verify_name(MINIMAL_FE TLS_UP("*:443", "{ verify_name = \"a.test\"; }"), "a.test");
    expect_verify_name(MINIMAL_FE TLS_UP("*:443", "{ verify = false; }"), NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("config");
    TCase *ok = tcase_create("valid");
    tcase_add_test(ok, minimal_defaults);
    tcase_add_test(ok, full_file);
    tcase_add_test(ok, protocols);
    tcase_add_test(ok, cipher_names);
    tcase_add_test(ok, resumption_keys);
    tcase_add_test(ok, include);
    tcase_add_test(ok, relative_paths);
    tcase_add_test(ok, limits_keys);
    tcase_add_test(ok, backend_tls_name);
    suite_add_tcase(s, ok);
    TCase *bad = tcase_create("errors");
    tcase_add_test(bad, missing_file);
    tcase_add_test(bad, syntax_error);
    tcase_add_test(bad, unknown_keys);
    tcase_add_test(bad, types_and_ranges);
    tcase_add_test(bad, tls_errors);
    tcase_add_test(bad, structure_errors);
    tcase_add_test(bad, limits_errors);
    tcase_add_test(bad, backend_tls_name_errors);
    suite_add_tcase(s, bad);
    return s;
}

UNIT_MAIN(suite)
