#include "admin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "acme.h"
#include "admin_acme.h"
#include "admin_backends.h"
#include "admin_request.h"
#include "admin_tokens.h"
#include "auth.h"
#include "conn.h"
#include "http.h"
#include "log.h"
#include "net.h"
#include "runtime.h"
#include "stats.h"
#include "tls.h"
#include "upstream.h"

/* Room for a request and its body: a certificate chain and key (PUT /tls/certificates/N) is
 * the largest (an RSA 4096 chain of three is about 7 KiB). */
#define ADMIN_IN 32768
#define ADMIN_IDLE_MS 30000
#define VERSION UPROXY_VERSION /* -DUPROXY_VERSION: the Makefile reads it from proxy/VERSION */

struct sbuf {
    char *p;
    size_t len, cap;
    int failed;
};

struct admin_conn {
    struct watcher w;
    struct timer timer;
    struct http_msg req;
    char in[ADMIN_IN];
    size_t in_len, parsed;
    size_t head_len, body_len; /* head_len is 0 until a whole head is in */
    int keep_alive;
    struct sbuf out;
    size_t out_sent;
    int responding, close_after;
    int head_only; /* answering HEAD: the head says the body's length, the body is not sent */
};

static struct acceptor admin_listener;

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2 && !b->failed; attempt++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->failed = 1;
            return;
        }
        if (b->p && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        size_t ncap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(b->p, ncap);
        if (!p) {
            b->failed = 1;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
}

/* Names are validated to [A-Za-z0-9._-] at startup, so they need no escaping in JSON or labels. */

static void render_backend_json(struct sbuf *o, struct backend *b, uint64_t now)
{
    sb_printf(o,
              "{\"name\":\"%s\",\"address\":\"%s\",\"state\":\"%s\",\"weight\":%u,"
              "\"active_connections\":%u,\"idle_connections\":%u,\"in_flight\":%u,"
              "\"requests\":%llu,\"errors\":%llu,\"bytes_in\":%llu,\"bytes_out\":%llu,"
              "\"latency_ms\":{\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f},"
              "\"health\":{\"checks\":%llu,\"failures\":%llu,\"last_change_ms\":%llu}}",
              b->name, b->address, backend_state_name(b->state), b->weight, b->active_connections,
              b->idle_connections, b->in_flight, (unsigned long long)b->requests,
              (unsigned long long)b->errors, (unsigned long long)b->bytes_in,
              (unsigned long long)b->bytes_out, histogram_percentile(&b->latency, now, 0.50),
              histogram_percentile(&b->latency, now, 0.90), histogram_percentile(&b->latency, now, 0.99),
              (unsigned long long)b->checks, (unsigned long long)b->check_failures,
              (unsigned long long)b->last_change_ms);
}

/* {"index":0,"names":["a","b"],"not_after":UNIX_SECONDS,"issuer":"R10","serial":"04A1…"} */
static void render_certificate(struct sbuf *o, size_t index)
{
    struct tls_description d;
    if (tls_describe(index, &d) == 0)
        sb_printf(o, "{\"index\":%zu,\"names\":[%s],\"not_after\":%lld,\"issuer\":\"%s\",\"serial\":\"%s\"}", index,
                  d.names, d.not_after, d.issuer, d.serial);
}

static void render_certificates(struct sbuf *o)
{
    sb_printf(o, "[");
    for (size_t i = 0; i < tls_certificates(); i++) {
        sb_printf(o, "%s", i ? "," : "");
        render_certificate(o, i);
    }
    sb_printf(o, "]");
}

/* {"http01":["token",...],"tls_alpn01":["name",...]}: both validated, so nothing to escape. */
static void render_acme(struct sbuf *o)
{
    const char *sep = "";
    sb_printf(o, "{\"http01\":[");
    for (size_t i = 0; i < ACME_HTTP01_MAX; i++) {
        if (acme_http01_token(i)) {
            sb_printf(o, "%s\"%s\"", sep, acme_http01_token(i));
            sep = ",";
        }
    }
    sep = "";
    sb_printf(o, "],\"tls_alpn01\":[");
    for (size_t i = 0; i < ACME_TLS_ALPN01_MAX; i++) {
        if (acme_tls_alpn01_name(i)) {
            sb_printf(o, "%s\"%s\"", sep, acme_tls_alpn01_name(i));
            sep = ",";
        }
    }
    sb_printf(o, "]}\n");
}

/* [{"name":"default","expires":null,"requests":12,"last_used":UNIX_SECONDS}, ...]: never the hash. */
static void render_tokens(struct sbuf *o)
{
    sb_printf(o, "[");
    const char *sep = "";
    for (size_t i = 0; i < auth_slots(); i++) {
        const struct auth_token *t = auth_token(i);
        if (!t->live)
            continue;
        sb_printf(o, "%s{\"name\":\"%s\",\"expires\":", sep, t->name);
        sb_printf(o, t->expires ? "%lld" : "null", (long long)t->expires);
        sb_printf(o, ",\"requests\":%llu,\"last_used\":", (unsigned long long)t->accepted);
        sb_printf(o, t->last_used ? "%lld}" : "null}", (long long)t->last_used);
        sep = ",";
    }
    sb_printf(o, "]\n");
}

static void render_stats(struct sbuf *o)
{
    uint64_t now = loop_now_ms();
    sb_printf(o,
              "{\"version\":\"%s\",\"pid\":%d,\"uptime_ms\":%llu,\"algorithm\":\"%s\","
              "\"connections\":{\"active\":%llu,\"accepted\":%llu,\"rejected\":%llu},"
              "\"requests\":{\"total\":%llu,\"in_flight\":%llu,\"retried\":%llu,\"by_class\":{\"1xx\":%llu,\"2xx\":%llu,"
              "\"3xx\":%llu,\"4xx\":%llu,\"5xx\":%llu}},"
              "\"auth\":{\"accepted\":%llu,\"denied\":{\"missing\":%llu,\"invalid\":%llu,\"expired\":%llu},\"by_token\":{",
              VERSION, (int)getpid(), (unsigned long long)(now - loop_start_ms()),
              algorithm_name(runtime.cfg->algorithm), (unsigned long long)stats.conn_active,
              (unsigned long long)stats.conn_accepted, (unsigned long long)stats.conn_rejected,
              (unsigned long long)stats.requests_total, (unsigned long long)stats.requests_in_flight,
              (unsigned long long)stats.retried, (unsigned long long)stats.by_class[0], (unsigned long long)stats.by_class[1],
              (unsigned long long)stats.by_class[2], (unsigned long long)stats.by_class[3],
              (unsigned long long)stats.by_class[4], (unsigned long long)stats.auth_accepted,
              (unsigned long long)stats.denied_missing, (unsigned long long)stats.denied_invalid,
              (unsigned long long)stats.denied_expired);
    const char *sep = "";
    for (size_t i = 0; i < auth_slots(); i++) {
        const struct auth_token *t = auth_token(i);
        if (t->live) {
            sb_printf(o, "%s\"%s\":%llu", sep, t->name, (unsigned long long)t->accepted);
            sep = ",";
        }
    }
    sb_printf(o, "}},\"tls\":{\"enabled\":%s,\"handshakes\":%llu,\"resumed\":%llu,\"failed\":%llu,\"in_progress\":%llu,"
              "\"certificates\":",
              tls_enabled() ? "true" : "false", (unsigned long long)tls_stats.handshakes,
              (unsigned long long)tls_stats.resumed, (unsigned long long)tls_stats.failed,
              (unsigned long long)tls_stats.in_progress);
    render_certificates(o);
    sb_printf(o, "},\"backends\":[");
    for (size_t i = 0; i < nbackends; i++) {
        if (i)
            sb_printf(o, ",");
        render_backend_json(o, backends[i], now);
    }
    sb_printf(o, "]}\n");
}

static void metric_head(struct sbuf *o, const char *name, const char *type, const char *help)
{
    sb_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric(struct sbuf *o, const char *name, const char *type, const char *help, unsigned long long v)
{
    metric_head(o, name, type, help);
    sb_printf(o, "%s %llu\n", name, v);
}

/* One family with a sample per backend, read through `get`. */
static void backend_family(struct sbuf *o, const char *name, const char *type, const char *help,
                           unsigned long long (*get)(const struct backend *))
{
    metric_head(o, name, type, help);
    for (size_t i = 0; i < nbackends; i++)
        sb_printf(o, "%s{backend=\"%s\"} %llu\n", name, backends[i]->name, get(backends[i]));
}

static unsigned long long get_up(const struct backend *b) { return b->state == BACKEND_UP; }
static unsigned long long get_active(const struct backend *b) { return b->active_connections; }
static unsigned long long get_idle(const struct backend *b) { return b->idle_connections; }
static unsigned long long get_in_flight(const struct backend *b) { return b->in_flight; }
static unsigned long long get_requests(const struct backend *b) { return b->requests; }
static unsigned long long get_errors(const struct backend *b) { return b->errors; }
static unsigned long long get_bytes_in(const struct backend *b) { return b->bytes_in; }
static unsigned long long get_bytes_out(const struct backend *b) { return b->bytes_out; }
static unsigned long long get_checks(const struct backend *b) { return b->checks; }
static unsigned long long get_check_failures(const struct backend *b) { return b->check_failures; }

static void render_metrics(struct sbuf *o)
{
    static const char *const classes[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    uint64_t now = loop_now_ms();
    metric_head(o, "uproxy_uptime_seconds", "gauge", "Seconds since the proxy started.");
    sb_printf(o, "uproxy_uptime_seconds %.3f\n", (double)(now - loop_start_ms()) / 1000.0);
    metric(o, "uproxy_connections_active", "gauge", "Open client connections.", stats.conn_active);
    metric(o, "uproxy_connections_accepted_total", "counter", "Client connections accepted.", stats.conn_accepted);
    metric(o, "uproxy_connections_rejected_total", "counter", "Client connections refused over the limit.", stats.conn_rejected);
    metric(o, "uproxy_requests_in_flight", "gauge", "Requests being proxied now.", stats.requests_in_flight);
    metric(o, "uproxy_requests_retried_total", "counter", "Requests sent again to another backend after a failure.", stats.retried);
    metric_head(o, "uproxy_requests_total", "counter", "Responses sent to clients, by status class.");
    for (int i = 0; i < 5; i++)
        sb_printf(o, "uproxy_requests_total{class=\"%s\"} %llu\n", classes[i], (unsigned long long)stats.by_class[i]);
    metric_head(o, "uproxy_auth_accepted_total", "counter", "Requests with a valid token, by token name.");
    for (size_t i = 0; i < auth_slots(); i++)
        if (auth_token(i)->live)
            sb_printf(o, "uproxy_auth_accepted_total{token=\"%s\"} %llu\n", auth_token(i)->name,
                      (unsigned long long)auth_token(i)->accepted);
    metric_head(o, "uproxy_auth_token_last_used_seconds", "gauge",
                "Unix time of the token's last accepted request; 0: none since the proxy started.");
    for (size_t i = 0; i < auth_slots(); i++)
        if (auth_token(i)->live)
            sb_printf(o, "uproxy_auth_token_last_used_seconds{token=\"%s\"} %lld\n", auth_token(i)->name,
                      (long long)auth_token(i)->last_used);
    metric_head(o, "uproxy_auth_denied_total", "counter", "Requests refused with 401, by reason.");
    sb_printf(o, "uproxy_auth_denied_total{reason=\"missing\"} %llu\n", (unsigned long long)stats.denied_missing);
    sb_printf(o, "uproxy_auth_denied_total{reason=\"invalid\"} %llu\n", (unsigned long long)stats.denied_invalid);
    sb_printf(o, "uproxy_auth_denied_total{reason=\"expired\"} %llu\n", (unsigned long long)stats.denied_expired);
    backend_family(o, "uproxy_backend_up", "gauge", "1 when the backend is up.", get_up);
    backend_family(o, "uproxy_backend_active_connections", "gauge", "Upstream connections in use.", get_active);
    backend_family(o, "uproxy_backend_idle_connections", "gauge", "Pooled idle upstream connections.", get_idle);
    backend_family(o, "uproxy_backend_in_flight", "gauge", "Requests in flight to the backend.", get_in_flight);
    backend_family(o, "uproxy_backend_requests_total", "counter", "Requests forwarded.", get_requests);
    backend_family(o, "uproxy_backend_errors_total", "counter", "Failed exchanges.", get_errors);
    backend_family(o, "uproxy_backend_received_bytes_total", "counter", "Bytes received from the backend.", get_bytes_in);
    backend_family(o, "uproxy_backend_sent_bytes_total", "counter", "Bytes sent to the backend.", get_bytes_out);
    backend_family(o, "uproxy_backend_health_checks_total", "counter", "Active health checks run.", get_checks);
    backend_family(o, "uproxy_backend_health_failures_total", "counter", "Active health checks failed.", get_check_failures);
    metric(o, "uproxy_tls_handshakes_total", "counter", "TLS handshakes completed.", tls_stats.handshakes);
    metric(o, "uproxy_tls_resumed_total", "counter", "TLS handshakes that resumed a session.", tls_stats.resumed);
    metric(o, "uproxy_tls_failed_total", "counter", "TLS handshakes failed or abandoned.", tls_stats.failed);
    metric(o, "uproxy_tls_handshakes_in_progress", "gauge", "TLS handshakes under way.", tls_stats.in_progress);
    metric_head(o, "uproxy_tls_certificate_expiry_seconds", "gauge", "Unix time at which the certificate expires.");
    for (size_t i = 0; i < tls_certificates(); i++) {
        struct tls_description d;
        if (tls_describe(i, &d) == 0)
            sb_printf(o, "uproxy_tls_certificate_expiry_seconds{index=\"%zu\"} %lld\n", i, d.not_after);
    }
    metric_head(o, "uproxy_acme_challenges_answered_total", "counter", "ACME challenges answered, by type.");
    sb_printf(o, "uproxy_acme_challenges_answered_total{type=\"http-01\"} %llu\n", (unsigned long long)stats.acme_http01);
    sb_printf(o, "uproxy_acme_challenges_answered_total{type=\"tls-alpn-01\"} %llu\n",
              (unsigned long long)stats.acme_tls_alpn01);
    metric_head(o, "uproxy_backend_latency_seconds", "gauge",
                "Time to response head over the recent window, by quantile.");
    static const double qs[] = {0.5, 0.9, 0.99};
    for (size_t i = 0; i < nbackends; i++)
        for (int q = 0; q < 3; q++)
            sb_printf(o, "uproxy_backend_latency_seconds{backend=\"%s\",quantile=\"%g\"} %.6f\n", backends[i]->name,
                      qs[q], histogram_percentile(&backends[i]->latency, now, qs[q]) / 1000.0);
}

/* --- request handling --- */

static void respond(struct admin_conn *a, int status, const char *reason, const char *type, struct sbuf *body)
{
    a->out.len = 0;
    sb_printf(&a->out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n%s\r\n",
              status, reason, type, body->len, a->close_after ? "Connection: close\r\n" : "");
    if (body->len && !a->head_only)
        sb_printf(&a->out, "%.*s", (int)body->len, body->p);
    a->out_sent = 0;
    a->responding = 1;
}

static void respond_json(struct admin_conn *a, int status, const char *reason, const char *json)
{
    struct sbuf body = {0};
    sb_printf(&body, "%s\n", json);
    respond(a, status, reason, "application/json", &body);
    free(body.p);
}

/* 0 when authorized; otherwise the 400 or 401 has been queued. */
static int check_bearer(struct admin_conn *a, const char *head, size_t len)
{
    switch (admin_authorize(head, len, runtime.cfg->admin_hash)) {
    case ADMIN_AUTH_OK:
        return 0;
    case ADMIN_AUTH_DUPLICATE:
        a->close_after = 1;
        respond_json(a, 400, "Bad Request", "{\"error\":\"more than one Authorization header\"}");
        return -1;
    case ADMIN_AUTH_MISSING:
        respond_json(a, 401, "Unauthorized", "{\"error\":\"missing admin token\"}");
        return -1;
    default:
        respond_json(a, 401, "Unauthorized", "{\"error\":\"invalid admin token\"}");
        return -1;
    }
}

static int path_is(const char *path, size_t len, const char *want)
{
    size_t n = strlen(want);
    return len >= n && memcmp(path, want, n) == 0 && (len == n || path[n] == '?');
}

/* POST /shutdown: the drain SIGTERM starts, for a proxy that gets no signal (a VM guest, a
 * unikernel). It begins before the loop next waits; this answer goes out first. */
static void shutdown_requested(struct admin_conn *a, int method)
{
    if (method != HTTP_POST) {
        respond_json(a, 405, "Method Not Allowed", "{\"error\":\"use POST /shutdown\"}");
        return;
    }
    log_event("shutdown_requested", "via=admin open_connections=%lu", conn_count());
    runtime.shutdown_requested = 1;
    a->close_after = 1;
    respond_json(a, 202, "Accepted", "{\"status\":\"draining\"}");
}

/* GET /tls/certificates lists them; PUT /tls/certificates/N with a PEM chain and key replaces
 * certificate N for new connections (N = the count adds one). The key is wiped from the
 * request buffer once read, and no answer ever quotes the body. */
static void certificates(struct admin_conn *a, int method, const char *rest, size_t rest_len, const char *body,
                         size_t body_len)
{
    if (rest_len == 0 && (method == HTTP_GET || method == HTTP_HEAD)) {
        struct sbuf out = {0};
        render_certificates(&out);
        sb_printf(&out, "\n");
        respond(a, 200, "OK", "application/json", &out);
        free(out.p);
        return;
    }
    char digits[8] = "";
    unsigned long index = 0;
    char *end = NULL;
    if (rest_len > 1 && rest_len < sizeof digits + 1 && rest[0] == '/') {
        memcpy(digits, rest + 1, rest_len - 1);
        digits[rest_len - 1] = '\0';
        index = strtoul(digits, &end, 10);
    }
    if (!end || *end != '\0' || digits[0] < '0' || digits[0] > '9') {
        respond_json(a, 404, "Not Found", "{\"error\":\"use GET /tls/certificates or PUT /tls/certificates/N\"}");
        return;
    }
    if (method != HTTP_PUT) {
        respond_json(a, 405, "Method Not Allowed", "{\"error\":\"use PUT with the PEM chain and key as the body\"}");
        return;
    }
    char err[512], json[700];
    int rc = tls_replace(index, body, body_len, err, sizeof err);
    explicit_bzero((char *)body, body_len);
    if (rc < 0) {
        char escaped[600];
        size_t n = json_escape(escaped, 0, sizeof escaped - 1, err, strlen(err));
        escaped[n] = '\0';
        snprintf(json, sizeof json, "{\"error\":\"%s\"}", escaped);
        respond_json(a, 400, "Bad Request", json);
        return;
    }
    log_event("certificate_replaced", "index=%lu", index);
    struct sbuf out = {0};
    render_certificate(&out, index);
    sb_printf(&out, "\n");
    respond(a, 200, "OK", "application/json", &out);
    free(out.p);
}

static void route(struct admin_conn *a, const char *head, size_t head_len, const char *body, size_t body_len)
{
    struct request_info info;
    http_scan_request(head, head_len, &info);
    int method = a->req.parser.method;
    int get = method == HTTP_GET || method == HTTP_HEAD;
    a->head_only = method == HTTP_HEAD;
    if (path_is(info.path, info.path_len, "/healthz")) {
        respond_json(a, 200, "OK", runtime.shutting_down ? "{\"status\":\"draining\"}" : "{\"status\":\"ok\"}");
        return;
    }
    int stats_route = path_is(info.path, info.path_len, "/stats");
    int metrics_route = path_is(info.path, info.path_len, "/metrics");
    int backends_route = admin_backends_route(info.path, info.path_len);
    int shutdown_route = path_is(info.path, info.path_len, "/shutdown");
    int certificates_route = info.path_len >= 17 && memcmp(info.path, "/tls/certificates", 17) == 0;
    int tokens_route = admin_tokens_route(info.path, info.path_len);
    int acme_route = admin_acme_route(info.path, info.path_len);
    if (!stats_route && !metrics_route && !backends_route && !shutdown_route && !certificates_route && !tokens_route &&
        !acme_route) {
        respond_json(a, 404, "Not Found",
                     "{\"error\":\"no such admin route; try /healthz, /stats, /metrics, /backends, /tokens, /tls/certificates, "
                     "/acme or /shutdown\"}");
        return;
    }
    if (check_bearer(a, head, head_len) < 0)
        return;
    if (certificates_route) {
        certificates(a, method, info.path + 17, info.path_len - 17, body, body_len);
        return;
    }
    if (shutdown_route) {
        shutdown_requested(a, method);
        return;
    }
    if (backends_route) {
        struct admin_reply r;
        admin_backends_handle(method, info.path, info.path_len, body, body_len, &r);
        respond_json(a, r.status, r.reason, r.json);
        return;
    }
    if (tokens_route && !(get && path_is(info.path, info.path_len, "/tokens"))) {
        struct admin_reply r;
        admin_tokens_handle(method, info.path, info.path_len, body, body_len, &r);
        respond_json(a, r.status, r.reason, r.json);
        return;
    }
    if (acme_route && !(get && path_is(info.path, info.path_len, "/acme"))) {
        struct admin_reply r;
        admin_acme_handle(method, info.path, info.path_len, (char *)body, body_len, &r);
        respond_json(a, r.status, r.reason, r.json);
        return;
    }
    if (!get) {
        respond_json(a, 405, "Method Not Allowed", "{\"error\":\"use GET\"}");
        return;
    }
    struct sbuf out = {0};
    if (stats_route)
        render_stats(&out);
    else if (tokens_route)
        render_tokens(&out);
    else if (acme_route)
        render_acme(&out);
    else
        render_metrics(&out);
    if (out.failed)
        respond_json(a, 500, "Internal Server Error", "{\"error\":\"out of memory\"}");
    else
        respond(a, 200, "OK", metrics_route ? "text/plain; version=0.0.4; charset=utf-8" : "application/json", &out);
    free(out.p);
}

static void admin_destroy(struct admin_conn *a)
{
    loop_timer_release(&a->timer);
    loop_close(&a->w);
    free(a->out.p);
    a->out.p = NULL;
    loop_defer_free(a, free);
}

/* Parses what is buffered; queues a response once a whole request (head and body) is in.
 * Bodies (POST /backends) must have a Content-Length and fit in the connection's buffer. */
static int admin_parse(struct admin_conn *a)
{
    size_t n;
    if (!a->head_len) {
        enum http_progress r = http_execute(&a->req, a->in + a->parsed, a->in_len - a->parsed, &n);
        a->parsed += n;
        if (r == HTTP_NEED_MORE) {
            if (a->in_len == ADMIN_IN) {
                a->close_after = 1;
                respond_json(a, 431, "Request Header Fields Too Large", "{\"error\":\"request too large\"}");
            }
            return 0;
        }
        if (r != HTTP_HEAD_DONE) {
            a->close_after = 1;
            respond_json(a, 400, "Bad Request", "{\"error\":\"malformed request\"}");
            return 0;
        }
        llhttp_t *p = &a->req.parser;
        if ((p->flags & F_CHUNKED) || p->content_length > ADMIN_IN - a->parsed) {
            a->close_after = 1;
            respond_json(a, 413, "Content Too Large",
                         "{\"error\":\"admin request bodies need a Content-Length and at most a few KiB\"}");
            return 0;
        }
        a->head_len = a->parsed;
        a->body_len = (size_t)p->content_length;
        a->keep_alive = llhttp_should_keep_alive(p);
    }
    if (a->in_len - a->head_len < a->body_len)
        return 0; /* the rest of the body is on its way */
    enum http_progress r = http_execute(&a->req, a->in + a->parsed, a->body_len, &n);
    a->parsed += n;
    a->close_after = !a->keep_alive || r != HTTP_MSG_DONE;
    route(a, a->in, a->head_len, a->in + a->head_len, a->body_len);
    return 0;
}

static void admin_update(struct admin_conn *a)
{
    uint32_t ev = a->responding ? EPOLLOUT : EPOLLIN;
    if (loop_watch(&a->w, ev) < 0)
        admin_destroy(a);
}

static void admin_flush(struct admin_conn *a)
{
    while (a->out_sent < a->out.len) {
        ssize_t n = send(a->w.fd, a->out.p + a->out_sent, a->out.len - a->out_sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            admin_destroy(a);
            return;
        }
        a->out_sent += (size_t)n;
    }
    if (a->close_after) {
        admin_destroy(a);
        return;
    }
    a->responding = 0;
    memmove(a->in, a->in + a->parsed, a->in_len - a->parsed);
    a->in_len -= a->parsed;
    a->parsed = 0;
    a->head_len = a->body_len = 0;
    a->head_only = 0;
    http_msg_init(&a->req, HTTP_REQUEST, runtime.cfg->max_headers);
    if (a->in_len)
        admin_parse(a);
}

static void admin_event(struct watcher *w, uint32_t events)
{
    struct admin_conn *a = (struct admin_conn *)((char *)w - offsetof(struct admin_conn, w));
    if (events & (EPOLLERR | EPOLLHUP)) {
        admin_destroy(a);
        return;
    }
    loop_timer_set(&a->timer, ADMIN_IDLE_MS);
    if (!a->responding && (events & EPOLLIN)) {
        ssize_t n = recv(w->fd, a->in + a->in_len, ADMIN_IN - a->in_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            admin_destroy(a);
            return;
        }
        if (n > 0) {
            a->in_len += (size_t)n;
            admin_parse(a);
        }
    }
    /* Responses are flushed eagerly (and again on EPOLLOUT), then the next request parsed. */
    for (int i = 0; a->responding && i < 4; i++) {
        admin_flush(a);
        if (a->w.fd < 0)
            return;
        if (a->responding)
            break;
    }
    admin_update(a);
}

static void admin_timeout(struct timer *t)
{
    admin_destroy((struct admin_conn *)((char *)t - offsetof(struct admin_conn, timer)));
}

static void admin_accepted(int fd, const struct sockaddr_storage *peer)
{
    (void)peer;
    struct admin_conn *a = calloc(1, sizeof *a);
    if (!a || loop_timer_init(&a->timer, admin_timeout) < 0) {
        free(a);
        close(fd);
        return;
    }
    loop_watcher_init(&a->w, fd, admin_event);
    http_msg_init(&a->req, HTTP_REQUEST, runtime.cfg->max_headers);
    if (loop_watch(&a->w, EPOLLIN) < 0) {
        admin_destroy(a);
        return;
    }
    loop_timer_set(&a->timer, ADMIN_IDLE_MS);
}

int admin_listen(void)
{
    return acceptor_open(&admin_listener, &runtime.cfg->admin, 64, 16, "admin", admin_accepted);
}

void admin_close(void)
{
    acceptor_close(&admin_listener);
}
