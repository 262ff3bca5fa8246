/*
 * config — reads a libconfig file into one validated, immutable struct.
 *
 * Owns: the key names, their types, ranges and defaults. Every error names
 * the file and line and what was expected; unknown keys are errors, so a
 * typo is never silently ignored. Nothing outside this module sees libconfig.
 */
#ifndef TLSOFFD_CONFIG_H
#define TLSOFFD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "addr.h"

#define CONFIG_ERR_MAX 1024

struct listen_conf {
    char *text;             /* as written, for messages */
    struct addr addr;
};

struct cert_conf {
    char *cert;             /* PEM chain: leaf first (then its issuer, for OCSP) */
    char *key;
    char *ocsp_file;        /* DER OCSP response to staple; NULL: none */
    char *key_password_file;    /* decrypts an encrypted PEM key, or a token's PIN */
    bool key_remote;        /* signed by the key processes (else loaded here) ... */
    int key_id;             /* ... as keys.list[key_id] */
    char *where;            /* "file:line" of this entry, for load errors */
};

enum verify_client { VERIFY_CLIENT_NONE, VERIFY_CLIENT_OPTIONAL, VERIFY_CLIENT_REQUIRED };

/* alpn_upstreams: a negotiated protocol sends the connection here. */
struct alpn_route {
    char *protocol;
    char *upstream;
    size_t upstream_index;
    char *where;
};

struct frontend_conf {
    char *name;
    size_t nlisten;
    struct listen_conf *listen;
    size_t ncerts;
    struct cert_conf *certs;    /* the list, then cert_dir's files; [0] is the default */
    char *cert_dir;
    bool strict_sni;        /* refuse a client whose SNI matches no certificate */
    size_t nalpn;
    char **alpn;            /* offered, in the server's order of preference */
    size_t nroutes;
    struct alpn_route *routes;
    enum verify_client verify_client;
    char *client_ca;        /* PEM CA certificates for client certificates */
    char *client_crl;       /* PEM CRLs; NULL: none */
    int verify_depth;
    char *upstream;         /* name, resolved below */
    size_t upstream_index;
    char *where;
};

enum proxy_protocol { PROXY_OFF, PROXY_V1, PROXY_V2 };
enum balance { BALANCE_ROUNDROBIN, BALANCE_LEASTCONN, BALANCE_SOURCE };
enum health_type { HEALTH_NONE, HEALTH_TCP, HEALTH_HTTP, HEALTH_TLS };

/* TLS from tlsoffd to a backend server (re-encryption). */
struct backend_tls_conf {
    bool enabled;
    bool verify;            /* check the chain (and the name, if any) */
    char *ca_file;          /* NULL: the system's CA store */
    char *sni;              /* server name to send; NULL: none */
    char *verify_name;      /* name the certificate must carry, if verify;
                             * default: sni, else the address's host */
    char *cert, *key;       /* client certificate for backends that demand one */
    char *key_password_file;
    bool key_remote;        /* as in struct cert_conf */
    int key_id;
};

struct server_conf {
    char *address;          /* as written */
    struct addr addr;
    int weight;             /* 1..1000 */
    bool backup;            /* only when no primary server is up */
    int max_conns;          /* 0: no limit */
    enum proxy_protocol proxy;
    struct backend_tls_conf tls;
    char *where;
};

struct health_conf {
    enum health_type type;
    char *path;             /* http */
    char *host;             /* http Host header; NULL: the server's address */
    int expect_lo, expect_hi;
    char *body;             /* http: substring the body must contain; NULL: any */
    double interval, timeout;
    int rise, fall;
    bool start_up;          /* state before the first verdict */
};

struct upstream_conf {
    char *name;
    size_t nservers;
    struct server_conf *servers;
    enum balance balance;
    int retries;
    enum proxy_protocol proxy;
    struct health_conf health;
    char *where;
};

enum tls_preset { TLS_PRESET_INTERMEDIATE, TLS_PRESET_MODERN };

struct tls_conf {
    enum tls_preset preset;
    int min_version;        /* wolfSSL TLS1_2_VERSION / TLS1_3_VERSION */
    int max_version;
    char *ciphers;          /* TLS 1.2 suites, ':'-separated */
    char *ciphersuites;     /* TLS 1.3 suites, ':'-separated */
    char *groups;           /* ':'-separated group names */
    struct {
        size_t size;        /* bytes of shared memory; 0 = no session-ID cache */
        double timeout;
    } session_cache;
    struct {
        bool enabled;
        double rotate;      /* a new key this often */
        double lifetime;    /* a retired key still decrypts this long */
        double max_age;     /* tickets resume this long after the chain's full handshake */
        size_t nkey_files;
        char **key_files;   /* instead of rotation: the first encrypts */
    } tickets;
    char *where;            /* "file:line" of the tls group */
    char *ciphers_where;    /* ... of the ciphers key (or of tls) */
    char *suites_where;     /* ... of the ciphersuites key (or of tls) */
};

/* One private key, as the key processes load it: a frontend certificate's
 * or a backend client certificate's (the strings belong to those). */
struct key_conf {
    const char *key;            /* a PEM file, or a "pkcs11:" URI (RFC 7512) */
    const char *password_file;  /* NULL: none */
    const char *cert;           /* the certificate it must match */
    const char *where;          /* "file:line" of the certificate entry */
};

/* The keys group: where private keys live. */
struct keys_conf {
    bool isolate;           /* only in the key processes (else in every worker) */
    int processes;          /* key processes; 0: one per CPU */
    double timeout;         /* a worker waits this long for a signature */
    char *pkcs11_module;    /* for URIs without module-path; NULL: the default */
    size_t n;
    struct key_conf *list;  /* every private key, in configuration order */
    char *where;
};

enum shed { SHED_IDLE, SHED_OFF };

/* The limits group: per-client limits (the client table) and shedding. */
struct limits_conf {
    int per_client;         /* connections open at once per client; 0: no limit */
    int handshake_rate;     /* full handshakes a second per client; 0: no limit */
    int handshake_burst;    /* the bucket; below handshake_rate (0): handshake_rate */
    int ipv6_prefix;        /* IPv6 clients are counted by network, 1..128 */
    size_t ndeny, nallow;
    struct addr_cidr *deny;     /* refused, whatever allow says */
    struct addr_cidr *allow;    /* when not empty, the only clients served */
    enum shed shed;         /* the pool is full: close the longest idle, or queue */
    double shed_idle_after; /* ... idle at least this long */
    int table_size;         /* entries of the client table */
};

struct config {
    char *path;
    bool daemon;
    char *pidfile;          /* "" = none */
    char *user;             /* workers run as this user; NULL: as started */
    char *group;            /* ... and group; NULL: the user's */
    uid_t uid;
    gid_t gid;
    char *chroot;           /* workers are confined here; NULL: not */
    struct {
        char *destination;  /* "stderr", "syslog" or a path */
        int facility;
        int level;
        char *access_log;   /* NULL: main log; "": off; else a path */
    } log;
    struct {
        int count;          /* > 0: a fixed pool of this many; 0: a dynamic pool */
        int min_spare, max_spare;
        int max;            /* CONFIG_WORKERS_AUTO: what the machine allows (capacity) */
        int max_connections;    /* a worker exits after this many; 0: never */
        double park_after;      /* an idle connection is parked after this; 0: never */
    } workers;
    struct {
        double handshake, connect, idle, shutdown;
    } timeouts;
    struct tls_conf tls;
    struct limits_conf limits;
    struct keys_conf keys;
    size_t nfrontends;
    struct frontend_conf *frontends;
    size_t nupstreams;
    struct upstream_conf *upstreams;
};

/* Defaults, also used by the man page and tests. */
#define CONFIG_DEFAULT_WORKERS          0       /* dynamic */
#define CONFIG_DEFAULT_MIN_SPARE        4
#define CONFIG_DEFAULT_MAX_SPARE        16
#define CONFIG_WORKERS_AUTO             0       /* workers.max = "auto" */
#define CONFIG_DEFAULT_MAX_WORKERS      CONFIG_WORKERS_AUTO
#define CONFIG_MAX_WORKERS              32768
#define CONFIG_DEFAULT_PARK_AFTER       2.0
#define CONFIG_DEFAULT_HANDSHAKE        10.0
#define CONFIG_DEFAULT_CONNECT          3.0
#define CONFIG_DEFAULT_IDLE             300.0
#define CONFIG_DEFAULT_SHUTDOWN         30.0
#define CONFIG_DEFAULT_PIDFILE          "/run/tlsoffd/tlsoffd.pid"
/* The default suites and groups: TLS_POLICY_* in tls_policy.h. */
#define CONFIG_DEFAULT_CACHE_SIZE       (32u << 20)
#define CONFIG_DEFAULT_CACHE_TIMEOUT    300.0
#define CONFIG_DEFAULT_TICKET_ROTATE    3600.0
#define CONFIG_DEFAULT_TICKET_LIFETIME  43200.0
#define CONFIG_MAX_TICKET_AGE           604800.0    /* 7 days: RFC 8446 section 4.6.1 */
#define CONFIG_MAX_TICKET_KEYS          32      /* keys that decrypt at once */
#define CONFIG_DEFAULT_RETRIES          2
#define CONFIG_DEFAULT_VERIFY_DEPTH     4
#define CONFIG_MAX_ALPN                 16      /* protocols per frontend */
#define CONFIG_MAX_CERTS                4096    /* per frontend, with cert_dir */
#define CONFIG_DEFAULT_HEALTH_INTERVAL  2.0
#define CONFIG_DEFAULT_HEALTH_TIMEOUT   1.0
#define CONFIG_DEFAULT_RISE             2
#define CONFIG_DEFAULT_FALL             3
#define CONFIG_MAX_SERVERS              256     /* per upstream */
/* Generous for clients behind NAT: see tlsoffd.conf(5). */
#define CONFIG_DEFAULT_PER_CLIENT       256
#define CONFIG_DEFAULT_HANDSHAKE_RATE   50
#define CONFIG_MAX_NETWORKS             1024    /* per allow or deny list */
#define CONFIG_DEFAULT_SHED_IDLE_AFTER  5.0
#define CONFIG_DEFAULT_KEY_TIMEOUT      5.0
#define CONFIG_MAX_KEY_PROCESSES        64
#define CONFIG_MAX_KEYS                 65536   /* private keys in one configuration */
/* Entries of the client table: 4 per worker of the largest pool, so that
 * counted clients (each holds a worker) fill at most a quarter of it. */
#define CONFIG_DEFAULT_CLIENT_TABLE     (4 * CONFIG_MAX_WORKERS)

/*
 * Reads and validates path. Returns a config (free with config_free), or
 * NULL with "file:line: what is wrong" in err. Only syntax and values are
 * checked here; certificates are loaded by tls.c.
 */
struct config *config_load(const char *path, char *err, size_t errlen);
void config_free(struct config *cfg);

/* The frontend's upstream. */
const struct upstream_conf *config_frontend_upstream(const struct config *cfg,
                                                     const struct frontend_conf *fe);
/* The upstream for a negotiated ALPN protocol (NULL: none): an
 * alpn_upstreams entry, else the frontend's upstream. */
size_t config_frontend_route(const struct frontend_conf *fe, const char *alpn);

#endif
