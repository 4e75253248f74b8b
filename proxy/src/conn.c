#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "auth.h"
#include "balance.h"
#include "buf.h"
#include "http.h"
#include "log.h"
#include "net.h"
#include "runtime.h"
#include "stats.h"

#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000
#define LINGER_MS 2000
#define LOG_PATH_MAX 256

enum conn_state {
    C_IDLE,    /* between requests, no buffer held */
    C_HEAD,    /* reading a request head */
    C_PROXY,   /* exchange with a backend in progress */
    C_LOCAL,   /* answering from the proxy itself (401, 503, ...) */
    C_LINGER,  /* response sent, write side shut: waiting for the client to close first */
};

enum step { STEP_IDLE = 0, STEP_PROGRESS = 1, STEP_CLOSED = -1 };

/* How an exchange with a backend failed decides whether the request may be sent elsewhere. */
enum failure {
    FAIL_CONNECT,      /* refused, unreachable or timed out: nothing reached the backend */
    FAIL_EARLY_CLOSE,  /* closed or reset before any response byte */
    FAIL_OTHER,        /* a bad response, a timeout waiting for it, ... */
};

struct conn {
    struct watcher w;
    struct timer timer;
    struct conn *prev, *next; /* all client connections, for shutdown */
    enum conn_state state;
    struct buf *in;
    struct http_msg req;
    struct upstream *up;
    struct backend *backend;
    char ip[48];
    struct auth_cache auth;
    int trusted;
    int client_eof;
    /* per exchange */
    int req_parsed_all, req_done;
    int resp_head_done, resp_parsed_all, resp_done;
    int resp_started; /* bytes of the response reached the client */
    int resp_seen;    /* bytes of a response arrived from the backend */
    int replayable;   /* the whole request forwarded so far still sits in `in` from offset 0 */
    int repeatable;   /* idempotent method without a body: safe to send twice */
    int retried;
    int close_after, upstream_reusable;
    int keep_alive_req, http10, method;
    int status, token_index;
    size_t resp_msg_start;
    uint64_t started_us, forwarded_us, bytes_to_client;
    uint64_t body_bytes, active_ms;
    char local[384];
    size_t local_len, local_sent;
    char path[LOG_PATH_MAX];
    size_t path_len;
};

static struct watcher listener;
static struct timer accept_backoff_timer;
static unsigned accept_backoff_ms;
static struct conn *all_conns;
static unsigned long nconns;

static void client_event(struct watcher *w, uint32_t events);
static void conn_timeout(struct timer *t);
static void advance(struct conn *c);
static int retry(struct conn *c);

unsigned long conn_count(void) { return nconns; }

/* --- lifecycle --- */

static struct conn *conn_of_watcher(struct watcher *w)
{
    return (struct conn *)((char *)w - offsetof(struct conn, w));
}

/* Ends the request's use of its upstream connection (pooled again when `reusable`). */
static void detach_upstream(struct conn *c, int reusable)
{
    c->backend->in_flight--;
    stats.requests_in_flight--;
    upstream_release(c->up, reusable);
    c->up = NULL;
}

static void conn_destroy(struct conn *c)
{
    loop_timer_clear(&c->timer);
    if (c->up)
        detach_upstream(c, 0);
    buf_put(c->in);
    c->in = NULL;
    loop_close(&c->w);
    if (c->prev)
        c->prev->next = c->next;
    else
        all_conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    nconns--;
    stats.conn_active--;
    loop_defer_free(c, free);
}

static void reset_exchange(struct conn *c)
{
    c->req_parsed_all = c->req_done = 0;
    c->resp_head_done = c->resp_parsed_all = c->resp_done = c->resp_started = c->resp_seen = 0;
    c->replayable = c->repeatable = c->retried = 0;
    c->body_bytes = 0;
    c->close_after = 0;
    c->upstream_reusable = 1;
    c->status = 0;
    c->token_index = -1;
    c->backend = NULL;
    c->local_len = c->local_sent = 0;
    c->bytes_to_client = 0;
    c->path_len = 0;
}

static void conn_new(int fd, const struct sockaddr_storage *peer)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        stats.conn_rejected++;
        return;
    }
    loop_watcher_init(&c->w, fd, client_event);
    loop_timer_init(&c->timer, conn_timeout);
    net_format_ip(peer, c->ip, sizeof c->ip);
    for (size_t i = 0; i < runtime.cfg->ntrusted; i++)
        if (cidr_contains(&runtime.cfg->trusted[i], peer))
            c->trusted = 1;
    http_msg_init(&c->req, HTTP_REQUEST, runtime.cfg->max_headers);
    c->req.parser.data = c;
    reset_exchange(c);
    c->state = C_IDLE;
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    nconns++;
    stats.conn_active++;
    stats.conn_accepted++;
    if (loop_watch(&c->w, EPOLLIN) < 0) {
        conn_destroy(c);
        return;
    }
    loop_timer_set(&c->timer, runtime.cfg->idle_timeout_ms);
}

/* --- access log --- */

static void write_access_log(struct conn *c)
{
    char line[1024];
    size_t n = 0;
    uint64_t now = loop_now_us();
    const char *token = c->token_index >= 0 ? auth_token((size_t)c->token_index)->name : "";
    int m = snprintf(line, sizeof line, "{\"ts_ms\":%llu,\"client\":\"%s\",\"method\":\"%s\",\"path\":\"",
                     (unsigned long long)(now / 1000), c->ip, llhttp_method_name((llhttp_method_t)c->method));
    if (m < 0 || (size_t)m >= sizeof line)
        return;
    n = json_escape(line, (size_t)m, sizeof line - 200, c->path, c->path_len);
    m = snprintf(line + n, sizeof line - n,
                 "\",\"status\":%d,\"backend\":\"%s\",\"token\":\"%s\",\"duration_ms\":%.3f,\"bytes_sent\":%llu}\n",
                 c->status, c->backend ? c->backend->name : "", token,
                 (double)(now - c->started_us) / 1000.0, (unsigned long long)c->bytes_to_client);
    if (m < 0 || (size_t)m >= sizeof line - n)
        return;
    access_log_write(line, n + (size_t)m);
}

/* --- sending --- */

/* Sends [start, upto) of b to fd. Returns bytes sent, 0 when the socket is full, -1 on error. */
static long send_pending(int fd, struct buf *b, size_t upto)
{
    if (upto <= b->start)
        return 0;
    ssize_t n = send(fd, b->data + b->start, upto - b->start, MSG_NOSIGNAL);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    b->start += (size_t)n;
    return n;
}

/* Drops consumed bytes so the buffer can take more: reset when empty, compact when full. */
static void tidy(struct buf *b)
{
    if (b->start == b->end)
        b->start = b->parsed = b->end = 0;
    else if (b->end == b->cap && b->start > 0)
        buf_compact(b);
}

/* --- local responses --- */

static const char *reason_of(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

/* A bounded text builder: local answers are composed per request, without printf's cost. */
struct text {
    char *p;
    size_t len, cap;
    int overflow;
};

static void text_put(struct text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n > t->cap) {
        t->overflow = 1;
        return;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void text_put_uint(struct text *t, unsigned v)
{
    char digits[12];
    size_t i = sizeof digits;
    digits[--i] = '\0';
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    text_put(t, digits + i);
}

/* Answers from the proxy itself. A request whose end is known keeps the connection open;
 * the rest of its body is read and dropped. `must_close` is for requests we cannot frame. */
static void local_response(struct conn *c, int status, const char *json, int must_close)
{
    c->status = status;
    c->close_after = must_close || !c->keep_alive_req || runtime.shutting_down || c->client_eof;
    const char *conn_hdr = c->close_after ? "Connection: close\r\n"
                           : c->http10    ? "Connection: keep-alive\r\n"
                                          : "";
    struct text t = {.p = c->local, .cap = sizeof c->local};
    text_put(&t, "HTTP/1.1 ");
    text_put_uint(&t, (unsigned)status);
    text_put(&t, " ");
    text_put(&t, reason_of(status));
    text_put(&t, "\r\nContent-Type: application/json\r\nContent-Length: ");
    text_put_uint(&t, (unsigned)strlen(json));
    text_put(&t, "\r\n");
    text_put(&t, conn_hdr);
    text_put(&t, "\r\n");
    text_put(&t, json);
    c->local_len = t.overflow ? 0 : t.len;
    c->local_sent = 0;
    c->state = C_LOCAL;
    /* Bounds how long we wait for the rest of a body we are only going to drop. */
    loop_timer_set(&c->timer, runtime.cfg->header_timeout_ms);
    if (must_close)
        c->req_parsed_all = c->req_done = 1;
}

/* A request may go to another backend only if no response byte was seen and the backend
 * cannot have acted on it: the connect failed, a reused pooled connection turned out to be
 * closed, or the request is idempotent, bodiless and still whole in our buffer. */
static int may_retry(const struct conn *c, enum failure kind)
{
    if (c->retried || c->resp_seen || c->resp_started || !c->replayable || runtime.shutting_down)
        return 0;
    if (kind == FAIL_CONNECT)
        return 1;
    return kind == FAIL_EARLY_CLOSE && (c->up->reused || c->repeatable);
}

static void fail_upstream(struct conn *c, int status, const char *json, enum failure kind)
{
    c->backend->errors++;
    c->upstream_reusable = 0;
    /* A fresh connection that fails is the backend's fault; a pooled one may just have aged. */
    if (kind == FAIL_CONNECT || (kind == FAIL_EARLY_CLOSE && !c->up->reused))
        health_passive_failure(c->backend, kind == FAIL_CONNECT ? "connect failed" : "closed before responding");
    if (may_retry(c, kind) && retry(c) == 0)
        return;
    if (c->resp_started) {
        /* Part of a response already went out: the only honest signal left is closing. */
        c->close_after = 1;
        c->resp_done = 1;
        c->req_done = 1;
        return;
    }
    if (c->up) /* gone already when a retry found no backend to go to */
        detach_upstream(c, 0);
    c->backend = NULL;
    local_response(c, status, json, 0);
}

/* --- request side --- */

static int start_linger(struct conn *c)
{
    if (c->up)
        detach_upstream(c, 0);
    if (c->client_eof) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    shutdown(c->w.fd, SHUT_WR);
    c->state = C_LINGER;
    loop_timer_set(&c->timer, LINGER_MS);
    return STEP_IDLE;
}

/* Checks llhttp leaves to us: HTTP/1.0 or 1.1 only, and origin-form targets (`*` for OPTIONS):
 * an absolute or authority form would ask us to act as a forward proxy, which we are not. */
static int request_shape_ok(const llhttp_t *p, const struct request_info *info)
{
    if (p->http_major != 1 || p->http_minor > 1)
        return 0;
    if (info->path_len == 1 && info->path[0] == '*')
        return p->method == HTTP_OPTIONS;
    return info->path_len > 0 && info->path[0] == '/';
}

static int is_idempotent(int method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS || method == HTTP_PUT ||
           method == HTTP_DELETE;
}

/* Hands the request (already rewritten in c->in) to backend `be`; `ub` becomes the response
 * buffer. Returns -1 when no connection could even be started. */
static int attach(struct conn *c, struct backend *be, struct buf *ub)
{
    struct upstream *u = upstream_acquire(be, c);
    if (!u)
        return -1;
    ub->start = ub->parsed = ub->end = 0;
    u->in = ub;
    u->hup_paused = 0;
    u->eof = 0;
    http_msg_init(&u->resp, HTTP_RESPONSE, runtime.cfg->max_headers);
    u->resp.skip_body = c->method == HTTP_HEAD;
    c->up = u;
    c->backend = be;
    c->resp_msg_start = 0;
    be->in_flight++;
    be->requests++;
    stats.requests_in_flight++;
    c->forwarded_us = loop_now_us();
    loop_timer_set(&u->timer, u->connecting ? runtime.cfg->connect_timeout_ms : runtime.cfg->response_timeout_ms);
    return 0;
}

/* Picks a backend (not `avoid`) and attaches to it; a backend whose connect fails at once
 * counts a passive failure and the next one is tried. Returns -1 when none could be used. */
static int pick_and_attach(struct conn *c, struct backend *avoid, struct buf *ub)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct backend *be = balance_pick_except(avoid);
        if (!be && avoid && avoid->state == BACKEND_UP)
            be = avoid; /* the only backend left: a fresh connection to it is still worth one try */
        if (!be)
            return -1;
        if (attach(c, be, ub) == 0)
            return 0;
        be->errors++;
        health_passive_failure(be, "connect failed");
        avoid = be;
    }
    return -1;
}

static int retry(struct conn *c)
{
    struct backend *failed = c->backend;
    struct buf *ub = c->up->in;
    c->up->in = NULL; /* the response buffer is empty: keep it for the next attempt */
    detach_upstream(c, 0);
    c->retried = 1;
    c->in->start = 0; /* send the whole request again */
    c->req_done = 0;
    if (pick_and_attach(c, failed, ub) < 0) {
        buf_put(ub);
        c->backend = failed; /* restored so the caller can account for the failure */
        return -1;
    }
    stats.retried++;
    return 0;
}

/* The body bytes that arrived with the head are validated before anything is forwarded, so a
 * malformed chunk or an oversized body sent in one piece never reaches a backend. */
static int check_early_body(struct conn *c, size_t head_len, size_t *body_n)
{
    struct buf *b = c->in;
    llhttp_t *p = &c->req.parser;
    unsigned max = runtime.cfg->max_body_bytes;
    if (max && !(p->flags & F_CHUNKED) && p->content_length > max) {
        local_response(c, 413, "{\"error\":\"request body too large\"}", 1);
        return -1;
    }
    enum http_progress r = http_execute(&c->req, b->data + head_len, b->end - head_len, body_n);
    if (r != HTTP_NEED_MORE && r != HTTP_MSG_DONE) {
        local_response(c, 400, "{\"error\":\"malformed request body\"}", 1);
        return -1;
    }
    c->req_parsed_all = r == HTTP_MSG_DONE;
    c->body_bytes = *body_n;
    if (max && c->body_bytes > max) {
        local_response(c, 413, "{\"error\":\"request body too large\"}", 1);
        return -1;
    }
    return 0;
}

static int dispatch(struct conn *c)
{
    struct buf *b = c->in;
    size_t head_len = b->parsed;
    struct request_info info;
    llhttp_t *p = &c->req.parser;

    c->started_us = loop_now_us(); /* every outcome below sets the connection's timer */
    c->http10 = p->http_major == 1 && p->http_minor == 0;
    c->keep_alive_req = llhttp_should_keep_alive(p);
    c->method = p->method;
    http_scan_request(b->data, head_len, &info);
    if (access_log_enabled()) {
        c->path_len = info.path_len < LOG_PATH_MAX ? info.path_len : LOG_PATH_MAX;
        memcpy(c->path, info.path, c->path_len);
    }
    if (p->method == HTTP_CONNECT) {
        local_response(c, 405, "{\"error\":\"CONNECT is not supported\"}", 1);
        return STEP_PROGRESS;
    }
    if (!request_shape_ok(p, &info)) {
        local_response(c, 400, "{\"error\":\"malformed request\"}", 1);
        return STEP_PROGRESS;
    }
    if (info.token_count == 0) {
        stats.denied_missing++;
        local_response(c, 401, "{\"error\":\"missing token\"}", 0);
        return STEP_PROGRESS;
    }
    c->token_index = info.token_count == 1 ? auth_check_cached(&c->auth, info.token, info.token_len) : -1;
    if (c->token_index < 0) {
        stats.denied_invalid++;
        local_response(c, 401, "{\"error\":\"invalid token\"}", 0);
        return STEP_PROGRESS;
    }
    stats.auth_accepted++;
    auth_token((size_t)c->token_index)->accepted++;

    c->repeatable = is_idempotent(p->method) && !(p->flags & F_CHUNKED) && p->content_length == 0;
    size_t body_n;
    if (check_early_body(c, head_len, &body_n) < 0)
        return STEP_PROGRESS;
    struct rewrite rw = {.client_ip = c->ip, .trusted = c->trusted, .add_keep_alive = c->http10, .add_close = 0};
    long new_len = http_rewrite_scanned_request(&info, b->data, head_len, b->end - head_len, b->cap, &rw);
    if (new_len < 0) {
        if (new_len == HTTP_REWRITE_MALFORMED)
            local_response(c, 400, "{\"error\":\"malformed request\"}", 1);
        else
            local_response(c, 431, "{\"error\":\"request head too large\"}", 1);
        return STEP_PROGRESS;
    }
    b->end = (size_t)new_len + (b->end - head_len);
    b->parsed = (size_t)new_len + body_n;
    c->replayable = 1;
    struct buf *ub = buf_get();
    if (!ub) {
        local_response(c, 503, "{\"error\":\"out of memory\"}", 1);
        return STEP_PROGRESS;
    }
    if (pick_and_attach(c, NULL, ub) < 0) {
        buf_put(ub);
        local_response(c, 503, "{\"error\":\"no backend available\"}", !c->req_parsed_all);
        return STEP_PROGRESS;
    }
    c->active_ms = loop_now_ms();
    loop_timer_set(&c->timer, runtime.cfg->stream_timeout_ms);
    c->state = C_PROXY;
    return STEP_PROGRESS;
}

static int parse_head(struct conn *c)
{
    struct buf *b = c->in;
    if (!b || b->parsed == b->end) {
        if (c->client_eof) {
            conn_destroy(c);
            return STEP_CLOSED;
        }
        return STEP_IDLE;
    }
    size_t n;
    enum http_progress r = http_execute(&c->req, b->data + b->parsed, b->end - b->parsed, &n);
    b->parsed += n;
    switch (r) {
    case HTTP_HEAD_DONE:
        return dispatch(c);
    case HTTP_NEED_MORE:
        if (b->end >= runtime.cfg->max_header_bytes) {
            local_response(c, 431, "{\"error\":\"request head too large\"}", 1);
            return STEP_PROGRESS;
        }
        if (c->client_eof) {
            conn_destroy(c);
            return STEP_CLOSED;
        }
        return STEP_IDLE;
    case HTTP_TOO_MANY_HEADERS:
        local_response(c, 431, "{\"error\":\"too many headers\"}", 1);
        return STEP_PROGRESS;
    default:
        local_response(c, 400, "{\"error\":\"malformed request\"}", 1);
        return STEP_PROGRESS;
    }
}

/* Parses request body bytes; they become sendable (or, for local answers, are dropped). */
static int parse_request_body(struct conn *c)
{
    struct buf *b = c->in;
    if (c->req_parsed_all)
        return STEP_IDLE;
    size_t n, before = b->parsed;
    enum http_progress r = http_execute(&c->req, b->data + b->parsed, b->end - b->parsed, &n);
    b->parsed += n;
    c->body_bytes += n;
    if (r == HTTP_MSG_DONE) {
        c->req_parsed_all = 1;
        return STEP_PROGRESS;
    }
    if (r != HTTP_NEED_MORE) {
        /* A malformed chunk after part of the body went out: the backend's connection is
         * closed with the client's, so the fragment can never be completed into a request. */
        conn_destroy(c);
        return STEP_CLOSED;
    }
    return b->parsed != before ? STEP_PROGRESS : STEP_IDLE;
}

/* A body that grows past --max-body-bytes while streaming: 413 if no response started. */
static int body_over_limit(struct conn *c)
{
    unsigned max = runtime.cfg->max_body_bytes;
    if (!max || c->body_bytes <= max)
        return 0;
    if (c->resp_started) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    c->backend->errors++;
    detach_upstream(c, 0);
    c->backend = NULL;
    local_response(c, 413, "{\"error\":\"request body too large\"}", 1);
    return STEP_PROGRESS;
}

/* Forwarded request bytes are kept (not compacted away) while the request may still be
 * replayed to another backend; a body too large for the buffer gives that up. */
static void tidy_request(struct conn *c)
{
    struct buf *b = c->in;
    if (c->replayable && b->end == b->cap && b->start > 0)
        c->replayable = 0;
    if (!c->replayable)
        tidy(b);
}

static int pump_request(struct conn *c)
{
    struct buf *b = c->in;
    int progress = STEP_IDLE;
    if (c->req_done || c->up->connecting)
        return STEP_IDLE;
    if (parse_request_body(c) == STEP_CLOSED)
        return STEP_CLOSED;
    int over = body_over_limit(c);
    if (over)
        return over;
    long n = send_pending(c->up->w.fd, b, b->parsed);
    if (n < 0) {
        fail_upstream(c, 502, "{\"error\":\"backend closed the connection\"}",
                      c->resp_seen ? FAIL_OTHER : FAIL_EARLY_CLOSE);
        return STEP_PROGRESS;
    }
    if (n > 0) {
        c->backend->bytes_out += (uint64_t)n;
        progress = STEP_PROGRESS;
    }
    if (c->req_parsed_all && b->start == b->parsed) {
        c->req_done = 1;
        progress = STEP_PROGRESS;
    }
    tidy_request(c);
    return progress;
}

/* --- response side --- */

static int on_response_head(struct conn *c)
{
    struct upstream *u = c->up;
    struct buf *r = u->in;
    int status = u->resp.parser.status_code;
    int interim = status >= 100 && status < 200;
    if (status == 101) {
        fail_upstream(c, 502, "{\"error\":\"backend switched protocols\"}", FAIL_OTHER);
        return STEP_PROGRESS;
    }
    if (!interim) {
        c->status = status;
        c->resp_head_done = 1;
        loop_timer_clear(&u->timer);
        backend_record_latency(c->backend, loop_now_us() - c->forwarded_us);
        c->backend->sm.fail_streak = 0; /* a served response counts as a passing check */
        c->close_after = !c->keep_alive_req || llhttp_message_needs_eof(&u->resp.parser) ||
                         runtime.shutting_down || c->client_eof;
    }
    struct rewrite rw = {.client_ip = c->ip, .trusted = 0,
                         .add_keep_alive = !interim && c->http10 && !c->close_after,
                         .add_close = !interim && c->close_after};
    size_t head_len = r->parsed - c->resp_msg_start;
    long new_len = http_rewrite_response(r->data + c->resp_msg_start, head_len, r->end - r->parsed,
                                         r->cap - c->resp_msg_start, &rw);
    if (new_len < 0) {
        fail_upstream(c, 502, new_len == HTTP_REWRITE_MALFORMED ? "{\"error\":\"malformed response from backend\"}"
                                                               : "{\"error\":\"backend response head too large\"}",
                      FAIL_OTHER);
        return STEP_PROGRESS;
    }
    r->end = c->resp_msg_start + (size_t)new_len + (r->end - r->parsed);
    r->parsed = c->resp_msg_start + (size_t)new_len;
    return STEP_PROGRESS;
}

/* Like tidy(), keeping the start of a not yet complete response head in step. */
static void tidy_response(struct conn *c)
{
    struct buf *r = c->up->in;
    size_t shift = r->start;
    if (r->start == r->end)
        shift = r->start;
    else if (!(r->end == r->cap && r->start > 0))
        return;
    tidy(r);
    c->resp_msg_start = c->resp_msg_start >= shift ? c->resp_msg_start - shift : 0;
}

static int parse_response(struct conn *c)
{
    struct upstream *u = c->up;
    struct buf *r = u->in;
    if (c->resp_parsed_all)
        return STEP_IDLE;
    if (!c->resp_head_done && r->start == r->parsed && r->start > 0) {
        buf_compact(r);
        c->resp_msg_start = 0;
    }
    size_t n, before = r->parsed;
    enum http_progress res = http_execute(&u->resp, r->data + r->parsed, r->end - r->parsed, &n);
    r->parsed += n;
    switch (res) {
    case HTTP_HEAD_DONE:
        return on_response_head(c);
    case HTTP_MSG_DONE:
        if (!c->resp_head_done) {
            c->resp_msg_start = r->parsed; /* an interim 1xx ended; the real response follows */
            return STEP_PROGRESS;
        }
        c->resp_parsed_all = 1;
        if (r->parsed != r->end)
            c->upstream_reusable = 0; /* bytes after the response: the stream is not clean */
        if (!c->req_parsed_all) {
            /* The backend answered before the request ended: forward, then close both. */
            c->upstream_reusable = 0;
            c->close_after = 1;
        }
        return STEP_PROGRESS;
    case HTTP_NEED_MORE:
        if (!c->resp_head_done && r->end - c->resp_msg_start >= runtime.cfg->max_header_bytes) {
            fail_upstream(c, 502, "{\"error\":\"backend response head too large\"}", FAIL_OTHER);
            return STEP_PROGRESS;
        }
        return r->parsed != before ? STEP_PROGRESS : STEP_IDLE;
    default:
        fail_upstream(c, 502, "{\"error\":\"malformed response from backend\"}", FAIL_OTHER);
        return STEP_PROGRESS;
    }
}

static int pump_response(struct conn *c)
{
    if (!c->up || c->up->connecting || c->resp_done)
        return STEP_IDLE;
    /* Parse all that arrived before sending any of it, so the body bytes that came with a head
     * are validated before that head reaches the client (a malformed one still gets a 502). */
    int progress = STEP_IDLE, p;
    while ((p = parse_response(c)) == STEP_PROGRESS) {
        progress = STEP_PROGRESS;
        if (!c->up || c->state != C_PROXY || c->resp_parsed_all)
            break;
    }
    if (p == STEP_CLOSED)
        return p;
    if (!c->up || c->state != C_PROXY || c->resp_done)
        return progress;
    struct buf *r = c->up->in;
    /* Only whole heads leave: a head still arriving may yet be rewritten or refused. */
    long n = send_pending(c->w.fd, r, c->resp_head_done ? r->parsed : c->resp_msg_start);
    if (n < 0) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    if (n > 0) {
        c->resp_started = 1;
        c->bytes_to_client += (uint64_t)n;
        progress = STEP_PROGRESS;
    }
    if (c->resp_parsed_all && r->start == r->parsed) {
        c->resp_done = 1;
        if (!c->req_done) {
            c->req_done = 1;
            c->req_parsed_all = 1;
        }
        progress = STEP_PROGRESS;
    }
    tidy_response(c);
    return progress;
}

static int pump_local(struct conn *c)
{
    int progress = STEP_IDLE;
    if (c->local_sent < c->local_len) {
        ssize_t n = send(c->w.fd, c->local + c->local_sent, c->local_len - c->local_sent, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_destroy(c);
            return STEP_CLOSED;
        }
        if (n > 0) {
            c->local_sent += (size_t)n;
            c->bytes_to_client += (uint64_t)n;
            progress = STEP_PROGRESS;
        }
    }
    if (c->local_sent == c->local_len)
        c->resp_done = 1;
    if (!c->req_parsed_all && c->in) {
        int r = parse_request_body(c);
        if (r == STEP_CLOSED)
            return r;
        c->in->start = c->in->parsed; /* dropped, never forwarded */
        tidy(c->in);
        progress |= r;
    }
    if (c->req_parsed_all)
        c->req_done = 1;
    return progress;
}

/* --- exchange boundaries --- */

static int finish_exchange(struct conn *c)
{
    stats_count_response(c->status);
    if (access_log_enabled())
        write_access_log(c);
    if (c->up) {
        c->backend->in_flight--;
        stats.requests_in_flight--;
        upstream_release(c->up, c->upstream_reusable);
        c->up = NULL;
    }
    if (c->close_after || runtime.shutting_down || c->client_eof)
        return start_linger(c);
    reset_exchange(c);
    c->state = C_IDLE;
    if (c->in && c->in->start == c->in->end) {
        buf_put(c->in);
        c->in = NULL;
    } else if (c->in) {
        buf_compact(c->in);
    }
    if (c->in && c->in->end > 0) {
        c->state = C_HEAD;
        loop_timer_set(&c->timer, runtime.cfg->header_timeout_ms);
    } else {
        loop_timer_set(&c->timer, runtime.cfg->idle_timeout_ms);
    }
    return STEP_PROGRESS;
}

static int step(struct conn *c)
{
    int r;
    switch (c->state) {
    case C_IDLE:
    case C_HEAD:
        return parse_head(c);
    case C_PROXY:
        r = pump_request(c);
        if (r == STEP_CLOSED)
            return r;
        if (c->state == C_PROXY) {
            int s = pump_response(c);
            if (s == STEP_CLOSED)
                return s;
            r |= s;
        }
        break;
    case C_LOCAL:
        r = pump_local(c);
        if (r == STEP_CLOSED)
            return r;
        break;
    default:
        return STEP_IDLE;
    }
    if (c->req_done && c->resp_done)
        return finish_exchange(c);
    return r;
}

static uint32_t client_interest(const struct conn *c)
{
    uint32_t ev = 0;
    int has_room = !c->in || c->in->end < c->in->cap;
    if (c->state == C_IDLE || c->state == C_HEAD)
        has_room = !c->in || c->in->end < runtime.cfg->max_header_bytes;
    if (c->state == C_LINGER || (!c->client_eof && has_room))
        ev |= EPOLLIN;
    if (c->state == C_LOCAL && c->local_sent < c->local_len)
        ev |= EPOLLOUT;
    if (c->state == C_PROXY && c->up && c->up->in &&
        c->up->in->start < (c->resp_head_done ? c->up->in->parsed : c->resp_msg_start))
        ev |= EPOLLOUT;
    return ev;
}

static uint32_t upstream_interest(const struct conn *c)
{
    struct upstream *u = c->up;
    if (u->connecting)
        return EPOLLOUT;
    if (u->eof)
        return 0;
    if (u->hup_paused) {
        if (u->in->end == u->in->cap)
            return 0;
        u->hup_paused = 0;
    }
    uint32_t ev = 0;
    if (!c->req_done && c->in && c->in->start < c->in->parsed)
        ev |= EPOLLOUT;
    if (u->in->end < u->in->cap)
        ev |= EPOLLIN;
    return ev;
}

static void advance(struct conn *c)
{
    c->active_ms = loop_now_ms();
    for (;;) {
        int r = step(c);
        if (r == STEP_CLOSED)
            return;
        if (r == STEP_IDLE)
            break;
    }
    if (loop_watch(&c->w, client_interest(c)) < 0) {
        conn_destroy(c);
        return;
    }
    if (c->up && c->state == C_PROXY && loop_watch(&c->up->w, upstream_interest(c)) < 0)
        fail_upstream(c, 502, "{\"error\":\"backend connection failed\"}", FAIL_OTHER);
}

/* --- events --- */

static int client_read(struct conn *c)
{
    if (!c->in && !(c->in = buf_get())) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    struct buf *b = c->in;
    size_t limit = (c->state == C_IDLE || c->state == C_HEAD) ? runtime.cfg->max_header_bytes : b->cap;
    if (b->end >= limit && b->start > 0 && c->state != C_IDLE && c->state != C_HEAD) {
        c->replayable = 0;
        buf_compact(b);
    }
    if (b->end >= limit)
        return STEP_IDLE;
    ssize_t n = recv(c->w.fd, b->data + b->end, limit - b->end, 0);
    if (n > 0) {
        b->end += (size_t)n;
        if (c->state == C_IDLE) {
            c->state = C_HEAD;
            loop_timer_set(&c->timer, runtime.cfg->header_timeout_ms);
        }
        if (c->state == C_LINGER)
            b->start = b->parsed = b->end = 0;
        return STEP_PROGRESS;
    }
    if (n == 0) {
        c->client_eof = 1;
        if (c->state == C_LINGER || c->state == C_IDLE ||
            (c->state == C_PROXY && !c->req_parsed_all)) {
            conn_destroy(c);
            return STEP_CLOSED;
        }
        if (c->state == C_LOCAL && !c->req_parsed_all) {
            /* The rest of the body will never come; answer, then close. */
            c->req_parsed_all = 1;
            c->close_after = 1;
        }
        return STEP_PROGRESS;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return STEP_IDLE;
    conn_destroy(c);
    return STEP_CLOSED;
}

static void client_event(struct watcher *w, uint32_t events)
{
    struct conn *c = conn_of_watcher(w);
    if (events & (EPOLLERR | EPOLLHUP)) {
        conn_destroy(c);
        return;
    }
    if ((events & EPOLLIN) && client_read(c) == STEP_CLOSED)
        return;
    advance(c);
}

static void upstream_read(struct conn *c, uint32_t events)
{
    struct upstream *u = c->up;
    struct buf *r = u->in;
    tidy_response(c);
    if (r->end == r->cap) {
        /* Full: cannot consume a hang-up now, so stop hearing about it until we can. */
        if (events & (EPOLLHUP | EPOLLERR))
            u->hup_paused = 1;
        return;
    }
    ssize_t n = recv(u->w.fd, r->data + r->end, r->cap - r->end, 0);
    if (n > 0) {
        r->end += (size_t)n;
        c->resp_seen = 1;
        c->backend->bytes_in += (uint64_t)n;
        if (c->resp_parsed_all)
            c->upstream_reusable = 0;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    /* EOF or error from the backend: consumed once, then the fd leaves epoll. */
    c->upstream_reusable = 0;
    u->eof = 1;
    if (c->resp_parsed_all)
        return;
    if (n == 0 && c->resp_head_done && r->parsed == r->end && llhttp_message_needs_eof(&u->resp.parser)) {
        if (http_finish(&u->resp) == HTTP_MSG_DONE) {
            c->resp_parsed_all = 1;
            return;
        }
    }
    fail_upstream(c, 502, "{\"error\":\"backend closed the connection\"}",
                  c->resp_seen ? FAIL_OTHER : FAIL_EARLY_CLOSE);
}

void conn_upstream_event(struct upstream *u, uint32_t events)
{
    struct conn *c = u->client;
    if (u->connecting) {
        if ((events & (EPOLLERR | EPOLLHUP)) || net_connect_result(u->w.fd) != 0) {
            fail_upstream(c, 502, "{\"error\":\"cannot connect to backend\"}", FAIL_CONNECT);
        } else {
            u->connecting = 0;
            loop_timer_set(&u->timer, runtime.cfg->response_timeout_ms);
        }
    } else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        upstream_read(c, events);
    }
    advance(c);
}

void conn_upstream_timeout(struct upstream *u)
{
    struct conn *c = u->client;
    if (u->connecting)
        fail_upstream(c, 502, "{\"error\":\"backend connect timed out\"}", FAIL_CONNECT);
    else
        fail_upstream(c, 504, "{\"error\":\"backend response timed out\"}", FAIL_OTHER);
    advance(c);
}

/* The exchange's inactivity timer. Activity only stamps c->active_ms (no timer work per
 * event); the timer re-arms itself for the remainder until a real stall has lasted long enough. */
static void stream_timeout(struct conn *c)
{
    uint64_t idle = loop_now_ms() - c->active_ms;
    if (idle < runtime.cfg->stream_timeout_ms) {
        loop_timer_set(&c->timer, runtime.cfg->stream_timeout_ms - idle);
        return;
    }
    if (c->resp_started || c->req_parsed_all) {
        /* A stalled response body (or a client not reading it): nothing honest left but closing.
         * Waiting for a response head is the response timeout's job. */
        if (c->resp_started) {
            conn_destroy(c);
            return;
        }
        loop_timer_set(&c->timer, runtime.cfg->stream_timeout_ms);
        return;
    }
    c->backend->errors++;
    detach_upstream(c, 0);
    c->backend = NULL;
    local_response(c, 408, "{\"error\":\"request body timed out\"}", 1);
    advance(c);
}

static void conn_timeout(struct timer *t)
{
    struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
    if (c->state == C_HEAD) {
        local_response(c, 408, "{\"error\":\"request head timed out\"}", 1);
        advance(c);
        return;
    }
    if (c->state == C_PROXY) {
        stream_timeout(c);
        return;
    }
    /* Idle keep-alive expired, or a lingering client never closed. */
    conn_destroy(c);
}

/* --- listener --- */

static void resume_accept(struct timer *t)
{
    (void)t;
    if (!runtime.shutting_down)
        loop_watch(&listener, EPOLLIN);
}

static void pause_accept(int err)
{
    accept_backoff_ms = accept_backoff_ms ? accept_backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
    if (accept_backoff_ms > ACCEPT_BACKOFF_MAX_MS)
        accept_backoff_ms = ACCEPT_BACKOFF_MAX_MS;
    log_error("accept_paused", "error=\"%s\" retry_ms=%u", strerror(err), accept_backoff_ms);
    loop_watch(&listener, 0);
    loop_timer_set(&accept_backoff_timer, accept_backoff_ms);
}

static void reject(int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                               "Content-Length: 32\r\nConnection: close\r\n\r\n{\"error\":\"too many connections\"}";
    stats.conn_rejected++;
    if (send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL) < 0) {
        /* Nothing more to tell a client we cannot serve. */
    }
    close(fd);
}

static void accept_event(struct watcher *w, uint32_t events)
{
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t len;
        int fd = net_accept(w->fd, &peer, &len);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            pause_accept(errno);
            return;
        }
        accept_backoff_ms = 0;
        if (nconns >= runtime.cfg->max_connections)
            reject(fd);
        else
            conn_new(fd, &peer);
    }
}

int conn_listen(void)
{
    int fd = net_listen(&runtime.cfg->listen, 1024);
    if (fd < 0)
        return -1;
    loop_watcher_init(&listener, fd, accept_event);
    loop_timer_init(&accept_backoff_timer, resume_accept);
    return loop_watch(&listener, EPOLLIN);
}

void conn_begin_shutdown(void)
{
    loop_timer_clear(&accept_backoff_timer);
    loop_close(&listener);
    for (struct conn *c = all_conns, *next; c; c = next) {
        next = c->next;
        if (c->state == C_IDLE)
            conn_destroy(c);
    }
}
