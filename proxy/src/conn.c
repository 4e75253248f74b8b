#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "relay.h"
#include "reply.h"
#include "runtime.h"
#include "stats.h"
#include "tunnel.h"

#define LINGER_MS 2000

static struct conn *all_conns;
static unsigned long nconns;

static void client_event(struct watcher *w, uint32_t events);
static void conn_timeout(struct timer *t);
static int client_read(struct conn *c);

unsigned long conn_count(void) { return nconns; }

/* --- lifecycle --- */

static struct conn *conn_of_watcher(struct watcher *w)
{
    return (struct conn *)((char *)w - offsetof(struct conn, w));
}

void conn_destroy(struct conn *c)
{
    /* However a tunnel ends (both sides closed, a reset, the idle timeout), it is counted here,
     * exactly once. An ordinary exchange cut short is not: it never got its response. */
    if (c->state == C_TUNNEL)
        conn_count_exchange(c);
    loop_timer_release(&c->timer);
    if (c->up)
        relay_detach(c, 0);
    buf_put(c->in);
    c->in = NULL;
    if (c->tls)
        tls_free(c->tls);
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
    c->ex = (struct exchange){.upstream_reusable = 1, .token_index = -1};
}

void conn_accept(int fd, const struct sockaddr_storage *peer)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        stats.conn_rejected++;
        return;
    }
    if (loop_timer_init(&c->timer, conn_timeout) < 0) {
        free(c);
        close(fd);
        stats.conn_rejected++;
        return;
    }
    loop_watcher_init(&c->w, fd, client_event);
    net_format_ip(peer, c->ip, sizeof c->ip);
    for (size_t i = 0; i < runtime.cfg->ntrusted; i++)
        if (cidr_contains(&runtime.cfg->trusted[i], peer))
            c->trusted = 1;
    http_msg_init(&c->req, HTTP_REQUEST, runtime.cfg->max_headers);
    c->req.parser.data = c;
    reset_exchange(c);
    c->state = C_IDLE;
    if (tls_enabled()) {
        c->tls = tls_accept(fd);
        c->state = C_HANDSHAKE;
    }
    c->next = all_conns;
    if (all_conns)
        all_conns->prev = c;
    all_conns = c;
    nconns++;
    stats.conn_active++;
    stats.conn_accepted++;
    if ((tls_enabled() && !c->tls) || loop_watch(&c->w, EPOLLIN) < 0) {
        conn_destroy(c);
        return;
    }
    /* The handshake must be done within the time a request head has. */
    loop_timer_set(&c->timer, c->tls ? runtime.cfg->header_timeout_ms : runtime.cfg->idle_timeout_ms);
}

/* --- access log --- */

/* Appends `,"key":"value"` (escaped) or `,"key":null` for a missing value; returns a length of
 * at least `cap` when it did not fit, which later calls pass on. */
static size_t json_string_field(char *out, size_t len, size_t cap, const char *key, const char *v, size_t vlen)
{
    if (len >= cap)
        return len;
    int m = snprintf(out + len, cap - len, v ? ",\"%s\":\"" : ",\"%s\":null", key);
    if (m < 0 || (size_t)m >= cap - len)
        return cap;
    len += (size_t)m;
    if (!v)
        return len;
    len = json_escape(out, len, cap - 1, v, vlen);
    out[len++] = '"';
    return len;
}

/* One JSON line per exchange with the fields `uproxy logs` users read, time first. The token's
 * name, never its value; `token` and `backend` are null when the proxy answered itself. */
static void write_access_log(struct conn *c)
{
    char line[1024];
    char now[LOG_TIME_LEN + 1];
    log_format_time(now);
    const char *token = c->ex.token_index >= 0 ? auth_token((size_t)c->ex.token_index)->name : NULL;
    const char *method = llhttp_method_name((llhttp_method_t)c->ex.method);
    const char *backend = c->ex.backend ? c->ex.backend->name : NULL;
    /* The tail after the path is at most ~200 bytes: names are at most NAME_MAX_LEN - 1 bytes
     * of [A-Za-z0-9._-]; a long path is cut short to leave it room. */
    const size_t tail = 2 * NAME_MAX_LEN + 96;
    size_t n = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\"", now);
    n = json_string_field(line, n, sizeof line, "token", token, token ? strlen(token) : 0);
    n = json_string_field(line, n, sizeof line, "method", method, strlen(method));
    n = json_string_field(line, n, sizeof line - tail, "path", c->path, c->ex.path_len);
    if (n >= sizeof line - tail)
        return;
    int m = snprintf(line + n, sizeof line - n, ",\"status\":%d", c->ex.status);
    if (m < 0 || (size_t)m >= sizeof line - n)
        return;
    n = json_string_field(line, n + (size_t)m, sizeof line, "backend", backend, backend ? strlen(backend) : 0);
    if (n >= sizeof line)
        return;
    m = snprintf(line + n, sizeof line - n, ",\"bytes\":%llu,\"latency_ms\":%.3f}\n",
                 (unsigned long long)c->ex.bytes_to_client, (double)(loop_now_us() - c->ex.started_us) / 1000.0);
    if (m < 0 || (size_t)m >= sizeof line - n)
        return;
    access_log_write(line, n + (size_t)m);
}

/* --- request side --- */

/* Checks llhttp leaves to us: HTTP/1.0 or 1.1 only; a head ended by CRLF alone, without
 * obs-fold; one valid Host (required in 1.1, RFC 9112 3.2); no Transfer-Encoding in 1.0, where
 * it is faulty framing (RFC 9112 6.1); origin-form targets (`*` for OPTIONS): an absolute or
 * authority form would ask us to act as a forward proxy, which we are not. */
static int request_shape_ok(const llhttp_t *p, const struct request_info *info)
{
    const struct head_scan *h = &info->scan;
    if (p->http_major != 1 || p->http_minor > 1 || h->malformed)
        return 0;
    if (h->hosts > 1 || !h->host_valid || (p->http_minor == 1 && h->hosts == 0))
        return 0;
    if (p->http_minor == 0 && h->transfer_encoding)
        return 0;
    if (info->path_len == 1 && info->path[0] == '*')
        return p->method == HTTP_OPTIONS;
    return info->path_len > 0 && info->path[0] == '/';
}

/* A protocol switch is proxied for what WebSocket (RFC 6455) needs and no more: an HTTP/1.1
 * GET without a body, to a protocol --upgrade-protocols names (websocket by default: an h2c
 * upgrade would let the client speak HTTP/2 to the backend past every per-request check).
 * Other requests naming Upgrade are forwarded as ordinary ones, without it. */
static int may_upgrade(const llhttp_t *p, const struct request_info *info)
{
    return p->method == HTTP_GET && p->http_major == 1 && p->http_minor == 1 && !(p->flags & F_CHUNKED) &&
           p->content_length == 0 && http_upgrade_allowed(&info->scan, runtime.cfg->upgrade_protocols);
}

static int is_idempotent(int method)
{
    return method == HTTP_GET || method == HTTP_HEAD || method == HTTP_OPTIONS || method == HTTP_PUT ||
           method == HTTP_DELETE;
}

/* Trailer fields are never forwarded (a token, Host or framing header in one would reach the
 * backend unchecked): once the message ends, the trailer section held back after `parsed` is
 * replaced by the CRLF that ends a chunked body without trailers. */
static int drop_trailers(struct conn *c)
{
    struct buf *b = c->in;
    size_t held = c->ex.trailer_held;
    if (held < 2)
        return -1; /* a bare LF ending the body */
    memmove(b->data + b->parsed + 2, b->data + b->parsed + held, b->end - b->parsed - held);
    memcpy(b->data + b->parsed, "\r\n", 2);
    b->end -= held - 2;
    b->parsed += 2;
    c->ex.body_bytes += 2;
    c->ex.trailer_held = 0;
    c->ex.in_trailers = 0;
    return 0;
}

/* Parses the request body bytes in [parsed, end): they become forwardable up to `parsed`. */
static enum http_progress parse_body(struct conn *c)
{
    struct buf *b = c->in;
    for (;;) {
        size_t from = b->parsed + c->ex.trailer_held, n;
        enum http_progress r = http_execute(&c->req, b->data + from, b->end - from, &n);
        if (!c->ex.in_trailers) {
            b->parsed += n;
            c->ex.body_bytes += n;
            if (r != HTTP_LAST_CHUNK)
                return r;
            c->ex.in_trailers = 1;
            continue;
        }
        c->ex.trailer_held += n;
        if (r == HTTP_MSG_DONE)
            return drop_trailers(c) < 0 ? HTTP_ERROR : r;
        if (r == HTTP_NEED_MORE && c->ex.trailer_held > runtime.cfg->max_header_bytes)
            return HTTP_ERROR; /* held back whole, so bounded like a head */
        return r;
    }
}

/* The body bytes that arrived with the head are validated before anything is forwarded, so a
 * malformed chunk or an oversized body sent in one piece never reaches a backend. */
static int check_early_body(struct conn *c)
{
    llhttp_t *p = &c->req.parser;
    unsigned max = runtime.cfg->max_body_bytes;
    if (max && !(p->flags & F_CHUNKED) && p->content_length > max) {
        reply_start(c, 413, "{\"error\":\"request body too large\"}", 1);
        return -1;
    }
    enum http_progress r = parse_body(c);
    if (r != HTTP_NEED_MORE && r != HTTP_MSG_DONE) {
        reply_start(c, 400, "{\"error\":\"malformed request body\"}", 1);
        return -1;
    }
    c->ex.req_parsed_all = r == HTTP_MSG_DONE;
    if (max && c->ex.body_bytes > max) {
        reply_start(c, 413, "{\"error\":\"request body too large\"}", 1);
        return -1;
    }
    return 0;
}

/* Notes what the rest of the exchange (keep-alive, the framing of local answers, the access
 * log) needs from the request head; one scan finds the target and the tokens. */
static void note_request(struct conn *c, size_t head_len, struct request_info *info)
{
    const llhttp_t *p = &c->req.parser;
    c->ex.started_us = loop_now_us(); /* every outcome of dispatch() sets the connection's timer */
    c->ex.http10 = p->http_major == 1 && p->http_minor == 0;
    c->ex.keep_alive_req = llhttp_should_keep_alive(p);
    c->ex.method = p->method;
    http_scan_request(c->in->data, head_len, info);
    c->ex.upgrade = c->req.upgrade && may_upgrade(p, info);
    if (access_log_enabled()) {
        c->ex.path_len = info->path_len < LOG_PATH_MAX ? info->path_len : LOG_PATH_MAX;
        memcpy(c->path, info->path, c->ex.path_len);
    }
}

/* Requests answered here and never forwarded: CONNECT, targets we do not proxy, a missing or
 * invalid token. Returns -1 when the request was answered. */
static int admit(struct conn *c, const struct request_info *info)
{
    const llhttp_t *p = &c->req.parser;
    if (p->method == HTTP_CONNECT) {
        reply_start(c, 405, "{\"error\":\"CONNECT is not supported\"}", 1);
        return -1;
    }
    if (!request_shape_ok(p, info)) {
        reply_start(c, 400, "{\"error\":\"malformed request\"}", 1);
        return -1;
    }
    if (info->token_count == 0) {
        stats.denied_missing++;
        reply_start(c, 401, "{\"error\":\"missing token\"}", 0);
        return -1;
    }
    c->ex.token_index = info->token_count == 1 ? auth_check_cached(&c->auth, info->token, info->token_len) : AUTH_INVALID;
    if (c->ex.token_index == AUTH_EXPIRED) {
        stats.denied_expired++;
        reply_start(c, 401, "{\"error\":\"token expired\"}", 0);
        return -1;
    }
    if (c->ex.token_index < 0) {
        stats.denied_invalid++;
        reply_start(c, 401, "{\"error\":\"invalid token\"}", 0);
        return -1;
    }
    stats.auth_accepted++;
    auth_count_use((size_t)c->ex.token_index);
    return 0;
}

/* Rewrites the head in place for the backend; the body bytes after it move with it and are
 * left unparsed. Returns -1 when the request was answered instead. */
static int rewrite_head(struct conn *c, const struct request_info *info, size_t head_len)
{
    struct buf *b = c->in;
    struct rewrite rw = {.client_ip = c->ip, .trusted = c->trusted, .add_keep_alive = c->ex.http10, .add_close = 0,
                         .upgrade = c->ex.upgrade, .keep_underscores = runtime.cfg->keep_underscores,
                         .https = c->tls != NULL};
    long new_len = http_rewrite_scanned_request(info, b->data, head_len, b->end - head_len, b->cap, &rw);
    if (new_len < 0) {
        if (new_len == HTTP_REWRITE_MALFORMED)
            reply_start(c, 400, "{\"error\":\"malformed request\"}", 1);
        else
            reply_start(c, 431, "{\"error\":\"request head too large\"}", 1);
        return -1;
    }
    b->end = (size_t)new_len + (b->end - head_len);
    b->parsed = (size_t)new_len;
    return 0;
}

static int dispatch(struct conn *c)
{
    size_t head_len = c->in->parsed;
    struct request_info info;
    const llhttp_t *p = &c->req.parser;

    note_request(c, head_len, &info);
    if (admit(c, &info) < 0)
        return STEP_PROGRESS;
    c->ex.repeatable = is_idempotent(p->method) && !(p->flags & F_CHUNKED) && p->content_length == 0;
    /* A backend that frames requests by Content-Length alone would take a chunked body for
     * more requests, and answer the next client's request with theirs (a response desync):
     * the upstream connection that carried one is closed, never pooled (see proxy/README.md). */
    if (p->flags & F_CHUNKED)
        c->ex.upstream_reusable = 0;
    if (rewrite_head(c, &info, head_len) < 0 || check_early_body(c) < 0)
        return STEP_PROGRESS;
    c->ex.replayable = 1;
    relay_start(c);
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
            reply_start(c, 431, "{\"error\":\"request head too large\"}", 1);
            return STEP_PROGRESS;
        }
        if (c->client_eof) {
            conn_destroy(c);
            return STEP_CLOSED;
        }
        return STEP_IDLE;
    case HTTP_TOO_MANY_HEADERS:
        reply_start(c, 431, "{\"error\":\"too many headers\"}", 1);
        return STEP_PROGRESS;
    default:
        reply_start(c, 400, "{\"error\":\"malformed request\"}", 1);
        return STEP_PROGRESS;
    }
}

int conn_parse_request_body(struct conn *c)
{
    struct buf *b = c->in;
    if (c->ex.req_parsed_all)
        return STEP_IDLE;
    size_t before = b->parsed + c->ex.trailer_held;
    enum http_progress r = parse_body(c);
    if (r == HTTP_MSG_DONE) {
        c->ex.req_parsed_all = 1;
        return STEP_PROGRESS;
    }
    if (r != HTTP_NEED_MORE) {
        /* A malformed chunk after part of the body went out: the backend's connection is
         * closed with the client's, so the fragment can never be completed into a request. */
        conn_destroy(c);
        return STEP_CLOSED;
    }
    return b->parsed + c->ex.trailer_held != before ? STEP_PROGRESS : STEP_IDLE;
}

/* --- exchange boundaries --- */

static int start_linger(struct conn *c)
{
    if (c->up)
        relay_detach(c, 0);
    if (c->client_eof) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    conn_shutdown_write(c);
    c->state = C_LINGER;
    loop_timer_set(&c->timer, LINGER_MS);
    return STEP_IDLE;
}

void conn_count_exchange(struct conn *c)
{
    stats_count_response(c->ex.status);
    if (access_log_enabled())
        write_access_log(c);
}

static int finish_exchange(struct conn *c)
{
    conn_count_exchange(c);
    if (c->up)
        relay_detach(c, c->ex.upstream_reusable);
    if (c->ex.close_after || runtime.shutting_down || c->client_eof)
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

/* The TLS handshake goes on until it is done; the connection is then idle (or closes, after a
 * tls-alpn-01 challenge: RFC 8737 has no application data follow it). Whatever the
 * client sent with its last flight and OpenSSL already holds is read at once: no socket event
 * will announce it. */
static int continue_handshake(struct conn *c)
{
    int r = tls_handshake(c->tls);
    if (r < 0) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    if (r == 0)
        return STEP_IDLE;
    if (tls_answered_challenge(c->tls))
        return start_linger(c); /* a tls-alpn-01 validator: the certificate was all it came for */
    c->state = C_IDLE;
    loop_timer_set(&c->timer, runtime.cfg->idle_timeout_ms);
    if (tls_has_pending(c->tls) && client_read(c) == STEP_CLOSED)
        return STEP_CLOSED;
    return STEP_PROGRESS;
}

static int step(struct conn *c)
{
    int r;
    switch (c->state) {
    case C_HANDSHAKE:
        return continue_handshake(c);
    case C_IDLE:
    case C_HEAD:
        return parse_head(c);
    case C_PROXY:
        r = relay_pump(c);
        if (r == STEP_CLOSED)
            return r;
        break;
    case C_LOCAL:
        r = reply_pump(c);
        if (r == STEP_CLOSED)
            return r;
        break;
    case C_TUNNEL: /* just switched: from here on tunnel.c's own events drive it */
        tunnel_advance(c);
        return STEP_TUNNEL;
    default:
        return STEP_IDLE;
    }
    if (c->ex.req_done && c->ex.resp_done)
        return finish_exchange(c);
    return r;
}

static uint32_t client_interest(const struct conn *c)
{
    uint32_t ev = 0;
    /* OpenSSL may wait for the socket to take a record before it can go on, even to read. */
    if (c->tls && tls_wants_write(c->tls))
        ev |= EPOLLOUT;
    if (c->state == C_HANDSHAKE)
        return ev ? ev : EPOLLIN;
    int has_room = !c->in || c->in->end < c->in->cap;
    if (c->state == C_IDLE || c->state == C_HEAD)
        has_room = !c->in || c->in->end < runtime.cfg->max_header_bytes;
    if (c->state == C_LINGER || (!c->client_eof && has_room))
        ev |= EPOLLIN;
    if (c->state == C_LOCAL && c->ex.local_sent < c->ex.local_len)
        ev |= EPOLLOUT;
    if (c->state == C_PROXY && c->up && c->up->in &&
        c->up->in->start < (c->ex.resp_head_done ? c->up->in->parsed : c->ex.resp_msg_start))
        ev |= EPOLLOUT;
    return ev;
}

void conn_advance(struct conn *c)
{
    c->active_ms = loop_now_ms();
    for (;;) {
        int r = step(c);
        if (r < 0) /* STEP_CLOSED or STEP_TUNNEL: nothing left to do here */
            return;
        if (r != STEP_IDLE)
            continue;
        /* Bytes OpenSSL already holds are announced by no socket event: they are read now. */
        if (!c->tls || c->state == C_HANDSHAKE || c->client_eof || !tls_has_pending(c->tls))
            break;
        r = client_read(c);
        if (r == STEP_CLOSED)
            return;
        if (r == STEP_IDLE)
            break;
    }
    if (loop_watch(&c->w, client_interest(c)) < 0) {
        conn_destroy(c);
        return;
    }
    if (c->up && c->state == C_PROXY)
        relay_watch(c);
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
        c->ex.replayable = 0;
        buf_compact(b);
    }
    if (b->end >= limit)
        return STEP_IDLE;
    ssize_t n = conn_recv(c, b->data + b->end, limit - b->end);
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
            (c->state == C_PROXY && !c->ex.req_parsed_all)) {
            conn_destroy(c);
            return STEP_CLOSED;
        }
        if (c->state == C_LOCAL && !c->ex.req_parsed_all) {
            /* The rest of the body will never come; answer, then close. */
            c->ex.req_parsed_all = 1;
            c->ex.close_after = 1;
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
    int readable = (events & EPOLLIN) || (c->tls && (events & EPOLLOUT) && tls_wants_write(c->tls));
    if (readable && c->state != C_HANDSHAKE && client_read(c) == STEP_CLOSED)
        return;
    conn_advance(c);
}

static void conn_timeout(struct timer *t)
{
    struct conn *c = (struct conn *)((char *)t - offsetof(struct conn, timer));
    if (c->state == C_HEAD) {
        reply_start(c, 408, "{\"error\":\"request head timed out\"}", 1);
        conn_advance(c);
        return;
    }
    if (c->state == C_PROXY) {
        relay_stream_timeout(c);
        return;
    }
    if (c->state == C_TUNNEL) {
        tunnel_timeout(c);
        return;
    }
    if (c->state == C_HANDSHAKE)
        tls_stats.failed++; /* a client that stopped halfway through its handshake */
    /* Idle keep-alive expired, or a lingering client never closed. */
    conn_destroy(c);
}

void conn_close_idle(void)
{
    for (struct conn *c = all_conns, *next; c; c = next) {
        next = c->next;
        if (c->state == C_IDLE || c->state == C_HANDSHAKE)
            conn_destroy(c);
    }
}
