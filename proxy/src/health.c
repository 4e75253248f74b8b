#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "runtime.h"
#include "upstream.h"

#define MAX_CHECK_RESPONSE (64 * 1024)

enum backend_state health_next(struct health_sm *sm, enum backend_state current, int ok,
                               unsigned fall, unsigned rise)
{
    if (ok) {
        sm->ok_streak++;
        sm->fail_streak = 0;
    } else {
        sm->fail_streak++;
        sm->ok_streak = 0;
    }
    if (current == BACKEND_DRAINING)
        return current;
    if (!sm->seen_success) {
        if (!ok)
            return current;
        sm->seen_success = 1;
        return BACKEND_UP;
    }
    if (current == BACKEND_UP && sm->fail_streak >= fall)
        return BACKEND_DOWN;
    if (current == BACKEND_DOWN && sm->ok_streak >= rise)
        return BACKEND_UP;
    return current;
}

const char *backend_state_name(enum backend_state s)
{
    switch (s) {
    case BACKEND_UP: return "up";
    case BACKEND_DRAINING: return "draining";
    default: return "down";
    }
}

static void check_event(struct watcher *w, uint32_t events);

static struct health_check *check_of_timer(struct timer *t)
{
    return (struct health_check *)((char *)t - offsetof(struct health_check, timer));
}

static void finish(struct health_check *hc, int ok)
{
    struct backend *b = hc->backend;
    loop_close(&hc->w);
    hc->running = 0;
    b->checks++;
    if (!ok)
        b->check_failures++;
    enum backend_state next = health_next(&b->sm, b->state, ok, runtime.cfg->health_fall,
                                          runtime.cfg->health_rise);
    if (next != b->state)
        backend_set_state(b, next, ok ? "health check passed" : "health check failed");
    if (!runtime.shutting_down)
        loop_timer_set(&hc->timer, runtime.cfg->health_interval_ms);
}

static void start_check(struct health_check *hc)
{
    hc->running = 1;
    hc->sent = 0;
    hc->status_len = 0;
    hc->read_total = 0;
    int fd = net_connect(&hc->backend->addr);
    if (fd < 0) {
        loop_watcher_init(&hc->w, -1, check_event);
        finish(hc, 0);
        return;
    }
    loop_watcher_init(&hc->w, fd, check_event);
    if (loop_watch(&hc->w, EPOLLOUT) < 0) {
        finish(hc, 0);
        return;
    }
    loop_timer_set(&hc->timer, runtime.cfg->health_timeout_ms);
}

static void on_timer(struct timer *t)
{
    struct health_check *hc = check_of_timer(t);
    if (hc->running)
        finish(hc, 0);
    else if (!runtime.shutting_down)
        start_check(hc);
}

static int send_request(struct health_check *hc)
{
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: uproxy-health\r\nConnection: close\r\n\r\n",
                     runtime.cfg->health_path, hc->backend->address);
    if (n < 0 || (size_t)n >= sizeof req)
        return -1;
    /* A fresh socket's send buffer takes a few hundred bytes whole; a short write is a failure. */
    ssize_t w = send(hc->w.fd, req, (size_t)n, MSG_NOSIGNAL);
    if (w != n)
        return -1;
    hc->sent = 1;
    return loop_watch(&hc->w, EPOLLIN);
}

/* 2xx and 3xx count as healthy. */
static int status_ok(const struct health_check *hc)
{
    if (hc->status_len < 12 || memcmp(hc->status, "HTTP/1.", 7) != 0 || hc->status[8] != ' ')
        return 0;
    return hc->status[9] == '2' || hc->status[9] == '3';
}

static void read_response(struct health_check *hc)
{
    char chunk[4096];
    for (;;) {
        ssize_t n = recv(hc->w.fd, chunk, sizeof chunk, 0);
        if (n > 0) {
            size_t room = sizeof hc->status - hc->status_len;
            size_t take = (size_t)n < room ? (size_t)n : room;
            memcpy(hc->status + hc->status_len, chunk, take);
            hc->status_len += (unsigned)take;
            hc->read_total += (unsigned long)n;
            if (hc->read_total > MAX_CHECK_RESPONSE) {
                finish(hc, status_ok(hc));
                return;
            }
            continue;
        }
        if (n == 0) {
            finish(hc, status_ok(hc));
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno != EINTR) {
            finish(hc, 0);
            return;
        }
    }
}

static void check_event(struct watcher *w, uint32_t events)
{
    struct health_check *hc = (struct health_check *)((char *)w - offsetof(struct health_check, w));
    if (!hc->sent) {
        if ((events & (EPOLLERR | EPOLLHUP)) || net_connect_result(w->fd) != 0 || send_request(hc) < 0)
            finish(hc, 0);
        return;
    }
    /* Data, EOF, HUP and ERR are all consumed by reading: recv reports each of them. */
    read_response(hc);
}

void health_passive_failure(struct backend *b, const char *why)
{
    enum backend_state next = health_next(&b->sm, b->state, 0, runtime.cfg->health_fall,
                                          runtime.cfg->health_rise);
    if (next != b->state)
        backend_set_state(b, next, why);
}

int health_init(struct backend *b)
{
    struct health_check *hc = &b->hc;
    memset(hc, 0, sizeof *hc);
    hc->backend = b;
    loop_watcher_init(&hc->w, -1, check_event);
    return loop_timer_init(&hc->timer, on_timer);
}

void health_start(struct backend *b)
{
    start_check(&b->hc);
}

void health_release(struct backend *b)
{
    health_stop(b);
    loop_timer_release(&b->hc.timer);
}

void health_stop(struct backend *b)
{
    struct health_check *hc = &b->hc;
    loop_timer_clear(&hc->timer);
    if (hc->running) {
        loop_close(&hc->w);
        hc->running = 0;
    }
}
