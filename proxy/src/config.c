#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_ROOM 1024 /* bytes a rewritten head may grow by (X-Forwarded-* added) */
#define MAX_CONFIG_FILE (1 << 20)
#define MAX_CONFIG_DEPTH 4

struct ctx {
    struct config *cfg;
    char *err;
    size_t errcap;
    int depth; /* --config nesting */
};

struct option;
typedef int (*setter)(struct ctx *c, const char *key, const char *value);

/* Numeric options name their field and bounds instead of having a setter each. */
struct option {
    const char *name;
    setter set;
    const char *help;
    size_t field; /* offsetof(struct config, ...) for numeric options */
    unsigned min, max;
};

static int fail(struct ctx *c, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct ctx *c, const char *key, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(c->err, c->errcap, "--%s: ", key);
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < c->errcap)
        vsnprintf(c->err + n, c->errcap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int parse_uint(const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = (unsigned)v;
    return 0;
}

static int set_addr(struct ctx *c, const char *key, const char *v, struct net_addr *addr, char *text)
{
    const char *why;
    if (strlen(v) >= 80 || net_parse_addr(v, addr, &why) < 0)
        return fail(c, key, "'%s' is not a listen address: %s (example: 127.0.0.1:8080)", v,
                    strlen(v) >= 80 ? "too long" : why);
    strcpy(text, v);
    return 0;
}

static int set_listen(struct ctx *c, const char *key, const char *v)
{
    return set_addr(c, key, v, &c->cfg->listen, c->cfg->listen_text);
}

static int set_admin(struct ctx *c, const char *key, const char *v)
{
    c->cfg->has_admin = 1;
    return set_addr(c, key, v, &c->cfg->admin, c->cfg->admin_text);
}

static int set_redirect(struct ctx *c, const char *key, const char *v)
{
    c->cfg->has_redirect = 1;
    return set_addr(c, key, v, &c->cfg->redirect, c->cfg->redirect_text);
}

static int valid_name(const char *s, size_t len)
{
    if (len == 0 || len >= NAME_MAX_LEN)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '-' || ch == '_' || ch == '.'))
            return 0;
    }
    return 1;
}

static int set_admin_hash(struct ctx *c, const char *key, const char *v)
{
    if (sha256_from_hex(v, strlen(v), c->cfg->admin_hash) < 0)
        return fail(c, key, "expected the SHA-256 of the admin token as 64 hex digits");
    c->cfg->has_admin_hash = 1;
    return 0;
}

static int set_backend(struct ctx *c, const char *key, const char *v)
{
    struct config *cfg = c->cfg;
    const char *eq = strchr(v, '=');
    const char *usage = "expected NAME=HOST:PORT[,weight=N] (example: api-1=127.0.0.1:9001,weight=2)";
    if (!eq)
        return fail(c, key, "'%s': %s", v, usage);
    if (!valid_name(v, (size_t)(eq - v)))
        return fail(c, key, "'%s': name must be 1-63 characters of [A-Za-z0-9._-]", v);
    if (cfg->nbackends == MAX_BACKENDS)
        return fail(c, key, "at most %d backends", MAX_BACKENDS);
    struct backend_spec *b = &cfg->backends[cfg->nbackends];
    memset(b, 0, sizeof *b);
    memcpy(b->name, v, (size_t)(eq - v));
    for (size_t i = 0; i < cfg->nbackends; i++)
        if (strcmp(cfg->backends[i].name, b->name) == 0)
            return fail(c, key, "backend name '%s' is used twice; names must be unique", b->name);
    const char *addr = eq + 1, *comma = strchr(addr, ',');
    size_t alen = comma ? (size_t)(comma - addr) : strlen(addr);
    if (alen >= sizeof b->address)
        return fail(c, key, "'%s': address too long", v);
    memcpy(b->address, addr, alen);
    const char *why;
    if (net_parse_addr(b->address, &b->addr, &why) < 0)
        return fail(c, key, "'%s': bad address '%s': %s; %s", v, b->address, why, usage);
    if (net_addr_port(&b->addr) == 0)
        return fail(c, key, "'%s': port 0 is no backend's port; use the port it listens on (1-65535)", v);
    if (net_addr_unspecified(&b->addr))
        return fail(c, key, "'%s': %s is the unspecified address, not a backend's; use the address it listens on", v,
                    b->address);
    b->weight = 1;
    if (comma) {
        if (strncmp(comma + 1, "weight=", 7) != 0 || parse_uint(comma + 8, 1, 1000, &b->weight) < 0)
            return fail(c, key, "'%s': weight must be written weight=N with N from 1 to 1000", v);
    }
    cfg->nbackends++;
    return 0;
}

/* Unix seconds, 1 up to TOKEN_EXPIRES_MAX: the moment a token stops being accepted. */
static int parse_expiry(const char *s, size_t len, int64_t *out)
{
    char digits[16];
    if (len == 0 || len >= sizeof digits)
        return -1;
    memcpy(digits, s, len);
    digits[len] = '\0';
    char *end;
    errno = 0;
    if (digits[0] < '1' || digits[0] > '9')
        return -1;
    unsigned long long v = strtoull(digits, &end, 10);
    if (errno || *end != '\0' || v > (unsigned long long)TOKEN_EXPIRES_MAX)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* NAME:SHA256HEX[:EXPIRES] into t; returns NULL or what is wrong. */
static const char *read_token(const char *line, size_t len, struct token_spec *t)
{
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return "expected NAME:SHA256HEX[:EXPIRES] (hash the token, never pass it in plain text)";
    if (!valid_name(line, (size_t)(colon - line)))
        return "token name must be 1-63 characters of [A-Za-z0-9._-]";
    memset(t, 0, sizeof *t);
    memcpy(t->name, line, (size_t)(colon - line));
    const char *hash = colon + 1, *end = line + len;
    const char *second = memchr(hash, ':', (size_t)(end - hash));
    if (sha256_from_hex(hash, (size_t)((second ? second : end) - hash), t->hash) < 0)
        return "the part after the name must be a SHA-256 as 64 hex digits";
    if (second && parse_expiry(second + 1, (size_t)(end - second - 1), &t->expires) < 0)
        return "the expiry after the hash must be Unix seconds (1 to 253402300799), e.g. :1767225600";
    return NULL;
}

static int add_token(struct ctx *c, const char *key, const char *line, size_t len, const char *where)
{
    struct config *cfg = c->cfg;
    struct token_spec t;
    const char *why = read_token(line, len, &t);
    if (why)
        return fail(c, key, "%s: %s", where, why);
    for (size_t i = 0; i < cfg->ntokens; i++)
        if (strcmp(cfg->tokens[i].name, t.name) == 0)
            return fail(c, key, "%s: token name '%s' is used twice; names must be unique", where, t.name);
    if (cfg->ntokens == MAX_TOKENS)
        return fail(c, key, "%s: at most %d tokens", where, MAX_TOKENS);
    if (cfg->ntokens == cfg->tokens_cap) {
        size_t ncap = cfg->tokens_cap ? cfg->tokens_cap * 2 : 8;
        struct token_spec *p = realloc(cfg->tokens, ncap * sizeof *p);
        if (!p)
            return fail(c, key, "out of memory");
        cfg->tokens = p;
        cfg->tokens_cap = ncap;
    }
    cfg->tokens[cfg->ntokens++] = t;
    return 0;
}

static int set_token(struct ctx *c, const char *key, const char *v)
{
    return add_token(c, key, v, strlen(v), "value");
}

static char *read_file(const char *path, size_t *len, char *why, size_t whycap)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(why, whycap, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    char *data = malloc(MAX_CONFIG_FILE + 1);
    size_t n = data ? fread(data, 1, MAX_CONFIG_FILE + 1, f) : 0;
    fclose(f);
    if (!data || n > MAX_CONFIG_FILE) {
        snprintf(why, whycap, "'%s' is larger than %d bytes", path, MAX_CONFIG_FILE);
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

static int set_tokens_file(struct ctx *c, const char *key, const char *v)
{
    char why[300];
    size_t len;
    char *data = read_file(v, &len, why, sizeof why);
    if (!data)
        return fail(c, key, "%s", why);
    int rc = 0, lineno = 0;
    for (char *line = data; rc == 0 && line < data + len;) {
        char *nl = memchr(line, '\n', (size_t)(data + len - line));
        char *end = nl ? nl : data + len;
        lineno++;
        while (end > line && (end[-1] == '\r' || end[-1] == ' ' || end[-1] == '\t'))
            end--;
        while (line < end && (*line == ' ' || *line == '\t'))
            line++;
        if (line < end && *line != '#') {
            char where[300];
            snprintf(where, sizeof where, "%s line %d", v, lineno);
            rc = add_token(c, key, line, (size_t)(end - line), where);
        }
        line = nl ? nl + 1 : data + len;
    }
    free(data);
    return rc;
}

static int set_algorithm(struct ctx *c, const char *key, const char *v)
{
    if (strcmp(v, "round-robin") == 0)
        c->cfg->algorithm = ALG_ROUND_ROBIN;
    else if (strcmp(v, "least-conn") == 0)
        c->cfg->algorithm = ALG_LEAST_CONN;
    else if (strcmp(v, "p2c") == 0)
        c->cfg->algorithm = ALG_P2C;
    else
        return fail(c, key, "'%s' is not an algorithm; use round-robin, least-conn or p2c", v);
    return 0;
}

static int set_health_path(struct ctx *c, const char *key, const char *v)
{
    if (v[0] != '/' || strlen(v) >= sizeof c->cfg->health_path || strpbrk(v, " \r\n\t"))
        return fail(c, key, "'%s' must be an absolute path like /health, without spaces", v);
    strcpy(c->cfg->health_path, v);
    return 0;
}

static int parse_cidr(struct ctx *c, const char *key, const char *v, struct cidr *r)
{
    char ip[64];
    const char *slash = strchr(v, '/');
    size_t iplen = slash ? (size_t)(slash - v) : strlen(v);
    if (iplen == 0 || iplen >= sizeof ip)
        return fail(c, key, "'%s' is not a CIDR like 10.0.0.0/8", v);
    memcpy(ip, v, iplen);
    ip[iplen] = '\0';
    unsigned maxp;
    if (inet_pton(AF_INET, ip, r->addr) == 1) {
        r->family = AF_INET;
        maxp = 32;
    } else if (inet_pton(AF_INET6, ip, r->addr) == 1) {
        r->family = AF_INET6;
        maxp = 128;
    } else {
        return fail(c, key, "'%s' is not a CIDR like 10.0.0.0/8 (numeric address required)", v);
    }
    r->prefix = maxp;
    if (slash && parse_uint(slash + 1, 0, maxp, &r->prefix) < 0)
        return fail(c, key, "'%s': prefix length must be 0-%u", v, maxp);
    return 0;
}

/* Appends a CIDR to one of the config's fixed-size range lists. */
static int add_cidr(struct ctx *c, const char *key, const char *v, struct cidr *list, size_t *n, size_t max)
{
    if (*n == max)
        return fail(c, key, "at most %zu ranges", max);
    if (parse_cidr(c, key, v, &list[*n]) < 0)
        return -1;
    (*n)++;
    return 0;
}

static int set_trusted(struct ctx *c, const char *key, const char *v)
{
    return add_cidr(c, key, v, c->cfg->trusted, &c->cfg->ntrusted, MAX_TRUSTED);
}

static int set_backend_network(struct ctx *c, const char *key, const char *v)
{
    return add_cidr(c, key, v, c->cfg->backend_networks, &c->cfg->nbackend_networks, MAX_BACKEND_NETWORKS);
}

/* A comma-separated list of protocol names (RFC 9110 token characters), stored lowercase. */
static int set_upgrade_protocols(struct ctx *c, const char *key, const char *v)
{
    char *out = c->cfg->upgrade_protocols;
    size_t n = strlen(v);
    if (n >= UPGRADE_PROTOCOLS_MAX)
        return fail(c, key, "list too long");
    for (size_t i = 0; i < n; i++) {
        char ch = v[i];
        int token = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                    (ch && strchr("!#$%&'*+-.^_`|~", ch));
        if (!token && !(ch == ',' && i > 0 && i + 1 < n && v[i + 1] != ','))
            return fail(c, key, "'%s' must be protocol names separated by commas, like websocket or websocket,h2c", v);
        out[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    out[n] = '\0';
    return 0;
}

static int set_tls_cert(struct ctx *c, const char *key, const char *v)
{
    struct config *cfg = c->cfg;
    if (cfg->ntls_certs == MAX_TLS_CERTS)
        return fail(c, key, "at most %d certificates", MAX_TLS_CERTS);
    if (strlen(v) == 0 || strlen(v) >= sizeof cfg->tls_certs[0])
        return fail(c, key, "path is empty or too long");
    strcpy(cfg->tls_certs[cfg->ntls_certs++], v);
    return 0;
}

static int set_underscore_headers(struct ctx *c, const char *key, const char *v)
{
    if (strcmp(v, "drop") == 0)
        c->cfg->keep_underscores = 0;
    else if (strcmp(v, "keep") == 0)
        c->cfg->keep_underscores = 1;
    else
        return fail(c, key, "'%s' must be drop or keep", v);
    return 0;
}

static int set_access_log(struct ctx *c, const char *key, const char *v)
{
    if (strlen(v) == 0 || strlen(v) >= sizeof c->cfg->access_log)
        return fail(c, key, "path is empty or too long");
    strcpy(c->cfg->access_log, v);
    return 0;
}

static int set_config_file(struct ctx *c, const char *key, const char *v);

static const struct option options[] = {
    {"listen", set_listen, "HOST:PORT  client listener (default 127.0.0.1:8080)", 0, 0, 0},
    {"admin", set_admin, "HOST:PORT  admin listener (needs --admin-token-sha256)", 0, 0, 0},
    {"admin-token-sha256", set_admin_hash, "HEX  SHA-256 of the admin bearer token", 0, 0, 0},
    {"backend", set_backend, "NAME=HOST:PORT[,weight=N]  a backend (repeatable)", 0, 0, 0},
    {"token", set_token, "NAME:SHA256HEX[:EXPIRES]  a client token's name, hash and optional expiry in Unix seconds (repeatable)", 0, 0, 0},
    {"tokens-file", set_tokens_file, "PATH  lines of NAME:SHA256HEX[:EXPIRES], # comments", 0, 0, 0},
    {"algorithm", set_algorithm, "round-robin|least-conn|p2c (default round-robin)", 0, 0, 0},
    {"health-path", set_health_path, "PATH  health check path (default /health)", 0, 0, 0},
    {"trusted-proxy", set_trusted, "CIDR  peers whose X-Forwarded-*, Forwarded and X-Real-IP are kept (repeatable)", 0, 0, 0},
    {"backend-network", set_backend_network, "CIDR  where POST /backends may point (repeatable; default anywhere)", 0, 0, 0},
    {"upgrade-protocols", set_upgrade_protocols, "LIST  protocols an Upgrade may switch to (default websocket; '' for none)", 0, 0, 0},
    {"redirect-listen", set_redirect, "HOST:PORT  plain HTTP listener answering 308 to https:// (needs --tls-cert)", 0, 0, 0},
    {"tls-cert", set_tls_cert, "PEM  certificate chain and key: the client listener speaks TLS (repeatable; SNI picks)", 0, 0, 0},
    {"underscore-headers", set_underscore_headers, "drop|keep  request header names with '_' (default drop)", 0, 0, 0},
    {"access-log", set_access_log, "PATH  JSON-lines access log (- for stdout)", 0, 0, 0},
    {"config", set_config_file, "FILE  JSON object with the same keys (repeatables as arrays)", 0, 0, 0},
    {"health-interval-ms", NULL, "N  time between checks (default 1000)", offsetof(struct config, health_interval_ms), 10, 3600000},
    {"health-timeout-ms", NULL, "N  check timeout (default 1000)", offsetof(struct config, health_timeout_ms), 10, 3600000},
    {"health-fall", NULL, "N  failures to mark down (default 2)", offsetof(struct config, health_fall), 1, 100},
    {"health-rise", NULL, "N  successes to mark up (default 2)", offsetof(struct config, health_rise), 1, 100},
    {"connect-timeout-ms", NULL, "N  upstream connect (default 2000)", offsetof(struct config, connect_timeout_ms), 1, 3600000},
    {"response-timeout-ms", NULL, "N  upstream response head (default 30000)", offsetof(struct config, response_timeout_ms), 1, 86400000},
    {"header-timeout-ms", NULL, "N  client request head (default 10000)", offsetof(struct config, header_timeout_ms), 1, 3600000},
    {"idle-timeout-ms", NULL, "N  idle client keep-alive (default 60000)", offsetof(struct config, idle_timeout_ms), 1, 86400000},
    {"upstream-idle-timeout-ms", NULL, "N  idle pooled upstream connection (default 4000)", offsetof(struct config, upstream_idle_timeout_ms), 1, 86400000},
    {"shutdown-timeout-ms", NULL, "N  drain deadline on SIGTERM (default 10000)", offsetof(struct config, shutdown_timeout_ms), 0, 3600000},
    {"max-connections", NULL, "N  client connections (default 10000)", offsetof(struct config, max_connections), 1, 1000000},
    {"max-header-bytes", NULL, "N  request/response head size (default 16384)", offsetof(struct config, max_header_bytes), 1024, 1048576},
    {"max-headers", NULL, "N  header count (default 100)", offsetof(struct config, max_headers), 1, 1000},
    {"max-body-bytes", NULL, "N  request body size, 0 for no limit (default 0)", offsetof(struct config, max_body_bytes), 0, 4294967295u},
    {"stream-timeout-ms", NULL, "N  an exchange with no progress either way (default 60000)", offsetof(struct config, stream_timeout_ms), 1, 86400000},
    {"body-timeout-ms", NULL, "N  a request body's time before --min-body-rate applies (default 20000)", offsetof(struct config, body_timeout_ms), 1, 86400000},
    {"min-body-rate", NULL, "N  bytes/s a request body must keep up after that, 0 for none (default 500)", offsetof(struct config, min_body_rate), 0, 1000000000},
    {"max-handshakes", NULL, "N  TLS handshakes in progress at once (default 1000)", offsetof(struct config, max_handshakes), 1, 1000000},
    {"backend-max-connections", NULL, "N  connections to one backend, 0 for no limit (default 0)", offsetof(struct config, backend_max_connections), 0, 1000000},
};

static int set_option(struct ctx *c, const struct option *o, const char *value)
{
    if (o->set)
        return o->set(c, o->name, value);
    unsigned *field = (unsigned *)((char *)c->cfg + o->field);
    if (parse_uint(value, o->min, o->max, field) < 0)
        return fail(c, o->name, "'%s' must be a whole number from %u to %u", value, o->min, o->max);
    return 0;
}

static const struct option *find_option(const char *name)
{
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        if (strcmp(options[i].name, name) == 0)
            return &options[i];
    return NULL;
}

void config_usage(void)
{
    printf("usage: uproxy-proxy [options]\n"
           "       uproxy-proxy --hash-stdin   (print the SHA-256 hex of stdin, for tokens)\n\n");
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++)
        printf("  --%-26s %s\n", options[i].name, options[i].help);
}

/* --- a small JSON reader for the config file: one object of strings, numbers, booleans and
 * arrays of those. Nothing else is configuration, so nothing else is accepted. --- */

struct json {
    const char *start, *p, *end, *path;
    struct ctx *c;
};

static int json_fail(struct json *j, const char *what)
{
    snprintf(j->c->err, j->c->errcap, "--config: %s: %s at byte %ld", j->path, what,
             (long)(j->p - j->start));
    return -1;
}

static void json_ws(struct json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static int json_string(struct json *j, char *out, size_t cap)
{
    size_t n = 0;
    if (*j->p != '"')
        return json_fail(j, "expected a string");
    j->p++;
    while (j->p < j->end && *j->p != '"') {
        char ch = *j->p++;
        if ((unsigned char)ch < 0x20)
            return json_fail(j, "control character in string");
        if (ch == '\\') {
            char e = j->p < j->end ? *j->p++ : '\0';
            switch (e) {
            case '"': case '\\': case '/': ch = e; break;
            case 'n': ch = '\n'; break;
            case 't': ch = '\t'; break;
            case 'r': ch = '\r'; break;
            default: return json_fail(j, "unsupported escape in string");
            }
        }
        if (n + 1 >= cap)
            return json_fail(j, "string too long");
        out[n++] = ch;
    }
    if (j->p >= j->end)
        return json_fail(j, "unterminated string");
    j->p++;
    out[n] = '\0';
    return 0;
}

/* Reads a scalar (string, number, true/false) as text. */
static int json_scalar(struct json *j, char *out, size_t cap)
{
    if (*j->p == '"')
        return json_string(j, out, cap);
    size_t n = 0;
    while (j->p < j->end && ((*j->p >= '0' && *j->p <= '9') || (*j->p >= 'a' && *j->p <= 'z') ||
                             *j->p == '-' || *j->p == '.')) {
        if (n + 1 >= cap)
            return json_fail(j, "value too long");
        out[n++] = *j->p++;
    }
    out[n] = '\0';
    if (n == 0)
        return json_fail(j, "expected a string, number or array");
    return 0;
}

static int json_apply(struct json *j, const struct option *o, const char *value)
{
    return set_option(j->c, o, value);
}

static int json_member(struct json *j)
{
    char key[64], value[4096];
    if (json_string(j, key, sizeof key) < 0)
        return -1;
    json_ws(j);
    if (*j->p != ':')
        return json_fail(j, "expected ':'");
    j->p++;
    json_ws(j);
    const struct option *o = find_option(key);
    if (!o) {
        snprintf(j->c->err, j->c->errcap, "--config: %s: unknown key \"%s\" (keys are the flag names without --)",
                 j->path, key);
        return -1;
    }
    if (*j->p != '[') {
        if (json_scalar(j, value, sizeof value) < 0)
            return -1;
        return json_apply(j, o, value);
    }
    j->p++;
    json_ws(j);
    while (*j->p != ']') {
        if (json_scalar(j, value, sizeof value) < 0 || json_apply(j, o, value) < 0)
            return -1;
        json_ws(j);
        if (*j->p == ',') {
            j->p++;
            json_ws(j);
        } else if (*j->p != ']') {
            return json_fail(j, "expected ',' or ']'");
        }
    }
    j->p++;
    return 0;
}

static int parse_json_config(struct ctx *c, const char *path, const char *text, size_t len)
{
    struct json j = {.start = text, .p = text, .end = text + len, .path = path, .c = c};
    json_ws(&j);
    if (*j.p != '{')
        return json_fail(&j, "expected a JSON object");
    j.p++;
    json_ws(&j);
    while (*j.p != '}') {
        if (json_member(&j) < 0)
            return -1;
        json_ws(&j);
        if (*j.p == ',') {
            j.p++;
            json_ws(&j);
        } else if (*j.p != '}') {
            return json_fail(&j, "expected ',' or '}'");
        }
    }
    j.p++;
    json_ws(&j);
    if (j.p != j.end)
        return json_fail(&j, "trailing data after the object");
    return 0;
}

static int set_config_file(struct ctx *c, const char *key, const char *v)
{
    char why[300];
    size_t len;
    if (c->depth >= MAX_CONFIG_DEPTH)
        return fail(c, key, "config files nest deeper than %d levels", MAX_CONFIG_DEPTH);
    char *data = read_file(v, &len, why, sizeof why);
    if (!data)
        return fail(c, key, "%s", why);
    c->depth++;
    int rc = parse_json_config(c, v, data, len);
    c->depth--;
    free(data);
    return rc;
}

static void set_defaults(struct config *cfg)
{
    const char *why;
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen_text, "127.0.0.1:8080");
    net_parse_addr(cfg->listen_text, &cfg->listen, &why);
    cfg->algorithm = ALG_ROUND_ROBIN;
    strcpy(cfg->health_path, "/health");
    cfg->health_interval_ms = 1000;
    cfg->health_timeout_ms = 1000;
    cfg->health_fall = 2;
    cfg->health_rise = 2;
    cfg->connect_timeout_ms = 2000;
    cfg->response_timeout_ms = 30000;
    cfg->header_timeout_ms = 10000;
    cfg->idle_timeout_ms = 60000;
    cfg->upstream_idle_timeout_ms = 4000;
    cfg->shutdown_timeout_ms = 10000;
    cfg->max_connections = 10000;
    cfg->max_header_bytes = 16384;
    cfg->max_headers = 100;
    cfg->max_body_bytes = 0;
    cfg->stream_timeout_ms = 60000;
    cfg->body_timeout_ms = 20000;
    cfg->min_body_rate = 500;
    cfg->max_handshakes = 1000;
    strcpy(cfg->upgrade_protocols, "websocket");
}

static int check_complete(struct ctx *c)
{
    struct config *cfg = c->cfg;
    if (cfg->has_admin && !cfg->has_admin_hash) {
        snprintf(c->err, c->errcap, "--admin: an admin listener needs --admin-token-sha256 (the SHA-256 of its bearer token)");
        return -1;
    }
    if (cfg->has_redirect && cfg->ntls_certs == 0) {
        snprintf(c->err, c->errcap, "--redirect-listen: redirects to https:// need the client listener to speak TLS (--tls-cert)");
        return -1;
    }
    /* With an admin listener the backends may all come later, through POST /backends (a
     * Kubernetes fleet's sync controller adds the pods it finds); without one there is no way to get any. */
    if (cfg->nbackends == 0 && !cfg->has_admin) {
        snprintf(c->err, c->errcap, "--backend: at least one backend is required (NAME=HOST:PORT), or an admin listener (--admin) to add them through");
        return -1;
    }
    if (cfg->ntokens == 0) {
        snprintf(c->err, c->errcap, "--token: at least one client token is required (--token NAME:SHA256HEX or --tokens-file)");
        return -1;
    }
    cfg->buffer_bytes = cfg->max_header_bytes + HEAD_ROOM;
    return 0;
}

int config_parse_argv(struct config *cfg, int argc, char **argv, enum config_action *action,
                      char *err, size_t errcap)
{
    struct ctx c = {.cfg = cfg, .err = err, .errcap = errcap, .depth = 0};
    set_defaults(cfg);
    *action = CONFIG_RUN;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            *action = CONFIG_HELP;
            return 0;
        }
        if (strcmp(arg, "--version") == 0) {
            *action = CONFIG_VERSION;
            return 0;
        }
        if (strcmp(arg, "--hash-stdin") == 0) {
            *action = CONFIG_HASH_STDIN;
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            snprintf(err, errcap, "%s: unexpected argument; options start with -- (see --help)", arg);
            return -1;
        }
        char name[64];
        const char *eq = strchr(arg + 2, '=');
        size_t nlen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (nlen >= sizeof name) {
            snprintf(err, errcap, "%.80s: unknown option (see --help)", arg);
            return -1;
        }
        memcpy(name, arg + 2, nlen);
        name[nlen] = '\0';
        const struct option *o = find_option(name);
        if (!o) {
            snprintf(err, errcap, "--%s: unknown option (see --help)", name);
            return -1;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc) {
                snprintf(err, errcap, "--%s: missing value (%s)", name, o->help);
                return -1;
            }
            value = argv[++i];
        }
        if (set_option(&c, o, value) < 0)
            return -1;
    }
    return check_complete(&c);
}

int config_parse_backend(const char *text, struct backend_spec *out, char *err, size_t errcap)
{
    /* A scratch config, so the rules (and messages) are exactly those of --backend. */
    static struct config scratch;
    struct ctx c = {.cfg = &scratch, .err = err, .errcap = errcap, .depth = 0};
    scratch.nbackends = 0;
    if (set_backend(&c, "backend", text) < 0)
        return -1;
    *out = scratch.backends[0];
    return 0;
}

int config_parse_token(const char *text, struct token_spec *out, char *err, size_t errcap)
{
    const char *why = read_token(text, strlen(text), out);
    if (why)
        snprintf(err, errcap, "%s", why);
    return why ? -1 : 0;
}

const char *config_backend_refused(const struct config *cfg, const struct net_addr *a)
{
    unsigned port = net_addr_port(a);
    const struct net_addr *own[] = {&cfg->listen, cfg->has_admin ? &cfg->admin : NULL};
    for (size_t i = 0; i < 2; i++) {
        if (!own[i] || net_addr_port(own[i]) != port)
            continue;
        /* A listener on 0.0.0.0 says nothing of which addresses are this machine's (in a VM
         * fleet every backend listens on the proxy's port number too): same address or loopback. */
        if (net_addr_same_ip(own[i], a) || net_addr_loopback(a))
            return "that is the proxy's own listener; a backend must be another server";
    }
    if (cfg->nbackend_networks == 0)
        return NULL;
    for (size_t i = 0; i < cfg->nbackend_networks; i++)
        if (cidr_contains(&cfg->backend_networks[i], &a->sa))
            return NULL;
    return "the address is outside the fleet's network (--backend-network); add backends there only";
}

const char *algorithm_name(enum algorithm a)
{
    switch (a) {
    case ALG_LEAST_CONN: return "least-conn";
    case ALG_P2C: return "p2c";
    default: return "round-robin";
    }
}

int cidr_contains(const struct cidr *c, const struct sockaddr_storage *sa)
{
    const uint8_t *addr;
    if (sa->ss_family != c->family)
        return 0;
    if (c->family == AF_INET)
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    else
        addr = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    unsigned full = c->prefix / 8, rest = c->prefix % 8;
    if (memcmp(addr, c->addr, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (addr[full] & mask) == (c->addr[full] & mask);
}
