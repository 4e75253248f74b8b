#include "relay.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "balance.h"
#include "net.h"
#include "reply.h"
#include "runtime.h"
#include "stats.h"
#include "tunnel.h"

/* How an exchange with a backend failed decides whether the request may be sent elsewhere. */
enum failure {
    FAIL_CONNECT,      /* refused, unreachable or timed out: nothing reached the backend */
    FAIL_EARLY_CLOSE,  /* closed or reset before any response byte */
    FAIL_OTHER,        /* a bad response, a timeout waiting for it, ... */
};

static void upstream_event(struct upstream *u, uint32_t events);
static void upstream_timeout(struct upstream *u);
static const struct upstream_ops relay_ops = {.on_event = upstream_event, .on_timeout = upstream_timeout};

/* --- attaching, retrying, failing --- */

/* Ends the request's use of its upstream connection (pooled again when `reusable`). */
void relay_detach(struct conn *c, int reusable)
{
    c->ex.backend->in_flight--;
    stats.requests_in_flight--;
    upstream_release(c->up, reusable);
    c->up = NULL;
}

/* Hands the request (already rewritten in c->in) to backend `be`; `ub` becomes the response
 * buffer. Returns -1 when no connection could even be started. */
static int attach(struct conn *c, struct backend *be, struct buf *ub)
{
    struct upstream *u = upstream_acquire(be, c, &relay_ops);
    if (!u)
        return -1;
    ub->start = ub->parsed = ub->end = 0;
    u->in = ub;
    u->hup_paused = 0;
    u->eof = 0;
    http_msg_init(&u->resp, HTTP_RESPONSE, runtime.cfg->max_headers);
    u->resp.skip_body = c->ex.method == HTTP_HEAD;
    c->up = u;
    c->ex.backend = be;
    c->ex.resp_msg_start = 0;
    be->in_flight++;
    be->requests++;
    stats.requests_in_flight++;
    c->ex.forwarded_us = loop_now_us();
    /* The response timer starts once the whole request is out (pump_request): a slow upload
     * is the stream timeout's business, not a backend failing to answer. A pooled connection
     * still carries its idle deadline, which must not fire as a response timeout meanwhile. */
    if (u->connecting)
        loop_timer_set(&u->timer, runtime.cfg->connect_timeout_ms);
    else if (!c->ex.req_parsed_all)
        loop_timer_clear(&u->timer);
    else
        loop_timer_set(&u->timer, runtime.cfg->response_timeout_ms);
    return 0;
}

/* Picks a backend (not `avoid`) and attaches to it; a backend whose connect fails at once
 * counts a passive failure and the next one is tried. Returns -1 when none could be used. */
static int pick_and_attach(struct conn *c, struct backend *avoid, struct buf *ub)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        struct backend *be = balance_pick(avoid);
        if (!be && avoid && avoid->state == BACKEND_UP && balance_has_room(avoid))
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
    struct backend *failed = c->ex.backend;
    struct buf *ub = c->up->in;
    c->up->in = NULL; /* the response buffer is empty: keep it for the next attempt */
    relay_detach(c, 0);
    c->ex.retried = 1;
    c->in->start = 0; /* send the whole request again */
    c->ex.req_done = 0;
    if (pick_and_attach(c, failed, ub) < 0) {
        buf_put(ub);
        c->ex.backend = failed; /* restored so the caller can account for the failure */
        return -1;
    }
    stats.retried++;
    return 0;
}

/* A request may go to another backend only if no response byte was seen and the backend
 * cannot have acted on it: the connect failed, a reused pooled connection turned out to be
 * closed, or the request is idempotent, bodiless and still whole in our buffer. */
static int may_retry(const struct conn *c, enum failure kind)
{
    if (c->ex.retried || c->ex.resp_seen || c->ex.resp_started || !c->ex.replayable || runtime.shutting_down)
        return 0;
    if (kind == FAIL_CONNECT)
        return 1;
    return kind == FAIL_EARLY_CLOSE && (c->up->reused || c->ex.repeatable);
}

static void fail_upstream(struct conn *c, int status, const char *json, enum failure kind)
{
    c->ex.backend->errors++;
    c->ex.upstream_reusable = 0;
    /* A fresh connection that fails is the backend's fault; a pooled one may just have aged. */
    if (kind == FAIL_CONNECT || (kind == FAIL_EARLY_CLOSE && !c->up->reused))
        health_passive_failure(c->ex.backend, kind == FAIL_CONNECT ? "connect failed" : "closed before responding");
    if (may_retry(c, kind) && retry(c) == 0)
        return;
    if (c->ex.resp_started) {
        /* Part of a response already went out: the only honest signal left is closing. */
        c->ex.close_after = 1;
        c->ex.resp_done = 1;
        c->ex.req_done = 1;
        return;
    }
    if (c->up) /* gone already when a retry found no backend to go to */
        relay_detach(c, 0);
    c->ex.backend = NULL;
    reply_start(c, status, json, 0);
}

static int any_backend_up(void)
{
    for (size_t i = 0; i < nbackends; i++)
        if (backends[i]->state == BACKEND_UP)
            return 1;
    return 0;
}

/* When the request body must have arrived, at --min-body-rate from --body-timeout-ms on (as
 * Apache's mod_reqtimeout does), so a body trickling in cannot hold a backend connection for
 * as long as it likes; 0 when no body is awaited. */
static uint64_t body_deadline_ms(const struct conn *c)
{
    const struct config *cfg = runtime.cfg;
    if (c->ex.req_parsed_all || !cfg->min_body_rate)
        return 0;
    return c->ex.started_us / 1000 + cfg->body_timeout_ms + c->ex.body_bytes * 1000 / cfg->min_body_rate;
}

/* The exchange's timer: the stream timeout after the last activity, or the body deadline. */
static void arm_stream_timer(struct conn *c)
{
    uint64_t now = loop_now_ms(), due = c->active_ms + runtime.cfg->stream_timeout_ms;
    uint64_t body = body_deadline_ms(c);
    if (body && body < due)
        due = body;
    loop_timer_set(&c->timer, due > now ? due - now : 0);
}

void relay_start(struct conn *c)
{
    struct buf *ub = buf_get();
    if (!ub) {
        reply_start(c, 503, "{\"error\":\"out of memory\"}", 1);
        return;
    }
    if (pick_and_attach(c, NULL, ub) < 0) {
        buf_put(ub);
        reply_start(c, 503, any_backend_up() ? "{\"error\":\"every backend is at its connection limit\"}"
                                             : "{\"error\":\"no backend available\"}", !c->ex.req_parsed_all);
        return;
    }
    c->active_ms = loop_now_ms();
    arm_stream_timer(c);
    c->state = C_PROXY;
}

/* --- request side --- */

/* A body that grows past --max-body-bytes while streaming: 413 if no response started. */
static int body_over_limit(struct conn *c)
{
    unsigned max = runtime.cfg->max_body_bytes;
    if (!max || c->ex.body_bytes <= max)
        return 0;
    if (c->ex.resp_started) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    c->ex.backend->errors++;
    relay_detach(c, 0);
    c->ex.backend = NULL;
    reply_start(c, 413, "{\"error\":\"request body too large\"}", 1);
    return STEP_PROGRESS;
}

/* Forwarded request bytes are kept (not compacted away) while the request may still be
 * replayed to another backend; a body too large for the buffer gives that up. */
static void tidy_request(struct conn *c)
{
    struct buf *b = c->in;
    if (c->ex.replayable && b->end == b->cap && b->start > 0)
        c->ex.replayable = 0;
    if (!c->ex.replayable)
        buf_tidy(b);
}

static int pump_request(struct conn *c)
{
    struct buf *b = c->in;
    int progress = STEP_IDLE;
    if (c->ex.req_done || c->up->connecting)
        return STEP_IDLE;
    if (conn_parse_request_body(c) == STEP_CLOSED)
        return STEP_CLOSED;
    int over = body_over_limit(c);
    if (over)
        return over;
    long n = buf_send(b, c->up->w.fd, b->parsed);
    if (n < 0) {
        fail_upstream(c, 502, "{\"error\":\"backend closed the connection\"}",
                      c->ex.resp_seen ? FAIL_OTHER : FAIL_EARLY_CLOSE);
        return STEP_PROGRESS;
    }
    if (n > 0) {
        c->ex.backend->bytes_out += (uint64_t)n;
        progress = STEP_PROGRESS;
    }
    if (c->ex.req_parsed_all && b->start == b->parsed) {
        c->ex.req_done = 1;
        if (!c->ex.resp_head_done)
            loop_timer_set(&c->up->timer, runtime.cfg->response_timeout_ms);
        progress = STEP_PROGRESS;
    }
    tidy_request(c);
    return progress;
}

/* --- response side --- */

/* Like buf_tidy(), keeping the start of a not yet complete response head in step. */
static void tidy_response(struct conn *c)
{
    struct buf *r = c->up->in;
    size_t shift = r->start;
    if (r->start != r->end && !(r->end == r->cap && r->start > 0))
        return; /* buf_tidy would leave it as it is */
    buf_tidy(r);
    c->ex.resp_msg_start = c->ex.resp_msg_start >= shift ? c->ex.resp_msg_start - shift : 0;
}

/* The backend answered an upgrade request without switching: after this response the client
 * may send anything (the protocol it hoped for), so its connection ends; and a backend may have
 * handed the connection over to its protocol handler, so the upstream is not pooled either. */
static void refused_upgrade(struct conn *c)
{
    c->ex.close_after = 1;
    c->ex.upstream_reusable = 0;
}

static int on_response_head(struct conn *c)
{
    struct upstream *u = c->up;
    struct buf *r = u->in;
    int status = u->resp.parser.status_code;
    int switching = 0, interim = 0;
    if ((unsigned)(status - 100) < 100) { /* 1xx; one comparison on every response's path */
        if (status == 101 && !c->ex.upgrade) {
            fail_upstream(c, 502, "{\"error\":\"backend switched protocols\"}", FAIL_OTHER);
            return STEP_PROGRESS;
        }
        switching = status == 101;
        interim = !switching;
    }
    if (!interim) {
        c->ex.status = status;
        c->ex.resp_head_done = 1;
        loop_timer_clear(&u->timer);
        backend_record_latency(c->ex.backend, loop_now_us() - c->ex.forwarded_us);
        c->ex.backend->sm.fail_streak = 0; /* a served response counts as a passing check */
        c->ex.close_after = !c->ex.keep_alive_req || llhttp_message_needs_eof(&u->resp.parser) ||
                         runtime.shutting_down || c->client_eof;
        if (c->ex.upgrade && !switching)
            refused_upgrade(c);
    }
    struct rewrite rw = {.client_ip = c->ip, .trusted = 0,
                         .add_keep_alive = !interim && c->ex.http10 && !c->ex.close_after,
                         .add_close = !interim && c->ex.close_after, .upgrade = switching};
    size_t head_len = r->parsed - c->ex.resp_msg_start;
    long new_len = http_rewrite_response(r->data + c->ex.resp_msg_start, head_len, r->end - r->parsed,
                                         r->cap - c->ex.resp_msg_start, &rw);
    if (new_len < 0) {
        fail_upstream(c, 502, new_len == HTTP_REWRITE_MALFORMED ? "{\"error\":\"malformed response from backend\"}"
                                                               : "{\"error\":\"backend response head too large\"}",
                      FAIL_OTHER);
        return STEP_PROGRESS;
    }
    r->end = c->ex.resp_msg_start + (size_t)new_len + (r->end - r->parsed);
    r->parsed = c->ex.resp_msg_start + (size_t)new_len;
    if (switching)
        tunnel_start(c);
    return STEP_PROGRESS;
}

static int parse_response(struct conn *c)
{
    struct upstream *u = c->up;
    struct buf *r = u->in;
    if (c->ex.resp_parsed_all)
        return STEP_IDLE;
    if (!c->ex.resp_head_done && r->start == r->parsed && r->start > 0) {
        buf_compact(r);
        c->ex.resp_msg_start = 0;
    }
    size_t n, before = r->parsed;
    enum http_progress res = http_execute(&u->resp, r->data + r->parsed, r->end - r->parsed, &n);
    r->parsed += n;
    switch (res) {
    case HTTP_HEAD_DONE:
        return on_response_head(c);
    case HTTP_MSG_DONE:
        if (!c->ex.resp_head_done) {
            c->ex.resp_msg_start = r->parsed; /* an interim 1xx ended; the real response follows */
            return STEP_PROGRESS;
        }
        c->ex.resp_parsed_all = 1;
        if (r->parsed != r->end)
            c->ex.upstream_reusable = 0; /* bytes after the response: the stream is not clean */
        if (!c->ex.req_parsed_all) {
            /* The backend answered before the request ended: forward, then close both. */
            c->ex.upstream_reusable = 0;
            c->ex.close_after = 1;
        }
        return STEP_PROGRESS;
    case HTTP_NEED_MORE:
        if (!c->ex.resp_head_done && r->end - c->ex.resp_msg_start >= runtime.cfg->max_header_bytes) {
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
    if (!c->up || c->up->connecting || c->ex.resp_done)
        return STEP_IDLE;
    /* Parse all that arrived before sending any of it, so the body bytes that came with a head
     * are validated before that head reaches the client (a malformed one still gets a 502). */
    int progress = STEP_IDLE, p;
    while ((p = parse_response(c)) == STEP_PROGRESS) {
        progress = STEP_PROGRESS;
        if (!c->up || c->state != C_PROXY || c->ex.resp_parsed_all)
            break;
    }
    if (p == STEP_CLOSED)
        return p;
    if (!c->up || c->state != C_PROXY || c->ex.resp_done)
        return progress;
    struct buf *r = c->up->in;
    /* Only whole heads leave: a head still arriving may yet be rewritten or refused. */
    long n = conn_buf_send(c, r, c->ex.resp_head_done ? r->parsed : c->ex.resp_msg_start);
    if (n < 0) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    if (n > 0) {
        c->ex.resp_started = 1;
        c->ex.bytes_to_client += (uint64_t)n;
        progress = STEP_PROGRESS;
    }
    if (c->ex.resp_parsed_all && r->start == r->parsed) {
        c->ex.resp_done = 1;
        if (!c->ex.req_done) {
            c->ex.req_done = 1;
            c->ex.req_parsed_all = 1;
        }
        progress = STEP_PROGRESS;
    }
    tidy_response(c);
    return progress;
}

/* --- events and timers --- */

int relay_pump(struct conn *c)
{
    int r = pump_request(c);
    if (r == STEP_CLOSED)
        return r;
    if (c->state == C_PROXY) {
        int s = pump_response(c);
        if (s == STEP_CLOSED)
            return s;
        r |= s;
    }
    return r;
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
    if (!c->ex.req_done && c->in && c->in->start < c->in->parsed)
        ev |= EPOLLOUT;
    if (u->in->end < u->in->cap)
        ev |= EPOLLIN;
    return ev;
}

void relay_watch(struct conn *c)
{
    if (loop_watch(&c->up->w, upstream_interest(c)) < 0)
        fail_upstream(c, 502, "{\"error\":\"backend connection failed\"}", FAIL_OTHER);
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
        c->ex.resp_seen = 1;
        c->ex.backend->bytes_in += (uint64_t)n;
        if (c->ex.resp_parsed_all)
            c->ex.upstream_reusable = 0;
        return;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    /* EOF or error from the backend: consumed once, then the fd leaves epoll. */
    c->ex.upstream_reusable = 0;
    u->eof = 1;
    if (c->ex.resp_parsed_all)
        return;
    if (n == 0 && c->ex.resp_head_done && r->parsed == r->end && llhttp_message_needs_eof(&u->resp.parser)) {
        if (http_finish(&u->resp) == HTTP_MSG_DONE) {
            c->ex.resp_parsed_all = 1;
            return;
        }
    }
    fail_upstream(c, 502, "{\"error\":\"backend closed the connection\"}",
                  c->ex.resp_seen ? FAIL_OTHER : FAIL_EARLY_CLOSE);
}

static void upstream_event(struct upstream *u, uint32_t events)
{
    struct conn *c = u->client;
    if (u->connecting) {
        if ((events & (EPOLLERR | EPOLLHUP)) || net_connect_result(u->w.fd) != 0) {
            fail_upstream(c, 502, "{\"error\":\"cannot connect to backend\"}", FAIL_CONNECT);
        } else {
            u->connecting = 0;
            loop_timer_clear(&u->timer);
        }
    } else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        upstream_read(c, events);
    }
    conn_advance(c);
}

static void upstream_timeout(struct upstream *u)
{
    struct conn *c = u->client;
    if (u->connecting)
        fail_upstream(c, 502, "{\"error\":\"backend connect timed out\"}", FAIL_CONNECT);
    else
        fail_upstream(c, 504, "{\"error\":\"backend response timed out\"}", FAIL_OTHER);
    conn_advance(c);
}

/* Ends an exchange whose request body stopped or slowed: 408 while no response started,
 * else nothing honest is left but closing. */
static void request_body_timed_out(struct conn *c, const char *json)
{
    if (c->ex.resp_started) {
        conn_destroy(c);
        return;
    }
    c->ex.backend->errors++;
    relay_detach(c, 0);
    c->ex.backend = NULL;
    reply_start(c, 408, json, 1);
    conn_advance(c);
}

/* The exchange's timer. Activity only stamps c->active_ms (no timer work per event); the
 * timer re-arms itself for the remainder until a real stall, or a body too slow, has lasted
 * long enough. */
void relay_stream_timeout(struct conn *c)
{
    uint64_t now = loop_now_ms(), body = body_deadline_ms(c);
    if (body && now >= body) {
        request_body_timed_out(c, "{\"error\":\"request body too slow\"}");
        return;
    }
    if (now - c->active_ms < runtime.cfg->stream_timeout_ms) {
        arm_stream_timer(c);
        return;
    }
    if (c->ex.resp_started) {
        /* A stalled response body (or a client not reading it). */
        conn_destroy(c);
        return;
    }
    if (c->ex.req_parsed_all) {
        /* Waiting for a response head is the response timeout's job. */
        loop_timer_set(&c->timer, runtime.cfg->stream_timeout_ms);
        return;
    }
    request_body_timed_out(c, "{\"error\":\"request body timed out\"}");
}
