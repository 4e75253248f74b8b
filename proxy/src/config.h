/* The proxy's configuration: command-line flags, the same keys in a JSON file (--config), and
 * a tokens file. Every option goes through one setter, so argv and JSON accept exactly the
 * same values and report errors the same way. */
#ifndef UPROXY_CONFIG_H
#define UPROXY_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "net.h"
#include "sha256.h"

#define NAME_MAX_LEN 64
#define MAX_BACKENDS 256
#define MAX_TRUSTED 32
#define MAX_BACKEND_NETWORKS 32
#define UPGRADE_PROTOCOLS_MAX 256
#define MAX_TLS_CERTS 16
#define MAX_TOKENS 1024 /* client tokens, from the command line and the admin API together */
#define TOKEN_EXPIRES_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

enum algorithm { ALG_ROUND_ROBIN, ALG_LEAST_CONN, ALG_P2C };

struct backend_spec {
    char name[NAME_MAX_LEN];
    char address[80];
    struct net_addr addr;
    unsigned weight;
};

struct token_spec {
    char name[NAME_MAX_LEN];
    uint8_t hash[SHA256_LEN];
    int64_t expires; /* Unix seconds from which the token is refused; 0: never */
};

struct cidr {
    int family;
    uint8_t addr[16];
    unsigned prefix;
};

struct config {
    struct net_addr listen;
    char listen_text[80];
    int has_admin;
    struct net_addr admin;
    char admin_text[80];
    int has_redirect;
    struct net_addr redirect; /* plain-HTTP listener answering 308 to https:// (with TLS only) */
    char redirect_text[80];
    int has_admin_hash;
    uint8_t admin_hash[SHA256_LEN];

    struct backend_spec backends[MAX_BACKENDS];
    size_t nbackends;
    struct token_spec *tokens;
    size_t ntokens, tokens_cap;

    enum algorithm algorithm;
    char health_path[256];
    unsigned health_interval_ms, health_timeout_ms, health_fall, health_rise;
    unsigned connect_timeout_ms, response_timeout_ms, header_timeout_ms, idle_timeout_ms;
    unsigned upstream_idle_timeout_ms, shutdown_timeout_ms;
    unsigned max_connections, max_header_bytes, max_headers;
    unsigned max_body_bytes; /* 0: no limit */
    unsigned stream_timeout_ms;
    unsigned body_timeout_ms, min_body_rate; /* a request body must arrive by body_timeout + bytes / rate */
    unsigned backend_max_connections;        /* 0: no limit */
    char upgrade_protocols[UPGRADE_PROTOCOLS_MAX]; /* comma-separated, lowercase */
    int keep_underscores;
    char tls_certs[MAX_TLS_CERTS][256]; /* PEM files: chain and key; SNI picks among them */
    size_t ntls_certs;
    unsigned max_handshakes; /* TLS handshakes in progress at once; more connections are closed */
    size_t buffer_bytes; /* derived: max_header_bytes + room for the rewritten head */

    struct cidr trusted[MAX_TRUSTED];
    size_t ntrusted;
    struct cidr backend_networks[MAX_BACKEND_NETWORKS]; /* where POST /backends may point; none: anywhere */
    size_t nbackend_networks;
    char access_log[256];
};

/* What main should do after parsing. */
enum config_action { CONFIG_RUN, CONFIG_HELP, CONFIG_VERSION, CONFIG_HASH_STDIN };

/* Parses argv into cfg. On error writes one line into err and returns -1. */
/* Parses one backend as written for --backend (NAME=HOST:PORT[,weight=N]) into out. */
int config_parse_backend(const char *text, struct backend_spec *out, char *err, size_t errcap);
/* Parses one token as written for --token (NAME:SHA256HEX[:EXPIRES]) into out. */
int config_parse_token(const char *text, struct token_spec *out, char *err, size_t errcap);
int config_parse_argv(struct config *cfg, int argc, char **argv, enum config_action *action,
                      char *err, size_t errcap);
const char *algorithm_name(enum algorithm a);
int cidr_contains(const struct cidr *c, const struct sockaddr_storage *sa);
/* Why `a` cannot be a backend of this proxy (its own listener, ...), or NULL. */
const char *config_backend_refused(const struct config *cfg, const struct net_addr *a);
void config_usage(void);

#endif
