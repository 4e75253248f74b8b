#include "upstream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "net.h"
#include "runtime.h"

#define EWMA_ALPHA 0.2

struct backend *backends[MAX_BACKENDS];
size_t nbackends;

static struct backend *backend_new(const struct backend_spec *s)
{
    if (nbackends == MAX_BACKENDS)
        return NULL;
    struct backend *b = calloc(1, sizeof *b);
    if (!b || health_init(b) < 0) {
        free(b);
        return NULL;
    }
    memcpy(b->name, s->name, sizeof b->name);
    memcpy(b->address, s->address, sizeof b->address);
    b->addr = s->addr;
    b->weight = s->weight;
    b->state = BACKEND_DOWN;
    backends[nbackends++] = b;
    log_event("backend_added", "backend=%s address=%s weight=%u state=down", b->name, b->address,
              b->weight);
    return b;
}

int backends_init(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->nbackends; i++)
        if (!backend_new(&cfg->backends[i]))
            return -1;
    return 0;
}

struct backend *backend_add(const struct backend_spec *spec)
{
    struct backend *b = backend_new(spec);
    if (b)
        health_start(b);
    return b;
}

struct backend *backend_find(const char *name, size_t len)
{
    for (size_t i = 0; i < nbackends; i++)
        if (strlen(backends[i]->name) == len && memcmp(backends[i]->name, name, len) == 0)
            return backends[i];
    return NULL;
}

static void destroy(struct upstream *u)
{
    loop_timer_release(&u->timer);
    buf_put(u->in);
    u->in = NULL;
    loop_close(&u->w);
    loop_defer_free(u, free);
}

static void close_idle(struct backend *b)
{
    while (b->idle) {
        struct upstream *u = b->idle;
        b->idle = u->next_idle;
        b->idle_connections--;
        destroy(u);
    }
}

/* A removed backend leaves the table once its last request and connection are gone; the
 * memory itself waits for the end of the loop iteration, like every other freed object. */
static void reap_if_unused(struct backend *b)
{
    if (!b->removing || b->in_flight || b->active_connections)
        return;
    close_idle(b);
    health_release(b);
    for (size_t i = 0; i < nbackends; i++) {
        if (backends[i] != b)
            continue;
        memmove(&backends[i], &backends[i + 1], (nbackends - i - 1) * sizeof backends[0]);
        nbackends--;
        break;
    }
    log_event("backend_removed", "backend=%s address=%s", b->name, b->address);
    loop_defer_free(b, free);
}

void backend_remove(struct backend *b)
{
    if (b->removing)
        return;
    if (b->state != BACKEND_DRAINING)
        backend_set_state(b, BACKEND_DRAINING, "removal requested");
    b->removing = 1;
    health_stop(b);
    reap_if_unused(b);
}

void backends_close_idle(void)
{
    for (size_t i = 0; i < nbackends; i++)
        close_idle(backends[i]);
}

void backend_set_state(struct backend *b, enum backend_state s, const char *why)
{
    log_event("backend_state", "backend=%s address=%s from=%s to=%s reason=\"%s\"", b->name,
              b->address, backend_state_name(b->state), backend_state_name(s), why);
    b->state = s;
    b->last_change_ms = loop_now_ms() - loop_start_ms();
    if (s != BACKEND_UP)
        close_idle(b);
}

void backend_record_latency(struct backend *b, uint64_t micros)
{
    double ms = (double)micros / 1000.0;
    histogram_record(&b->latency, loop_now_ms(), micros);
    if (b->ewma_latency_ms == 0)
        b->ewma_latency_ms = ms;
    else
        b->ewma_latency_ms += EWMA_ALPHA * (ms - b->ewma_latency_ms);
    b->ewma_at_ms = loop_now_ms();
}

static struct upstream *upstream_of_watcher(struct watcher *w)
{
    return (struct upstream *)((char *)w - offsetof(struct upstream, w));
}

static struct upstream *upstream_of_timer(struct timer *t)
{
    return (struct upstream *)((char *)t - offsetof(struct upstream, timer));
}

static void unlink_idle(struct upstream *u)
{
    struct backend *b = u->backend;
    for (struct upstream **p = &b->idle; *p; p = &(*p)->next_idle) {
        if (*p == u) {
            *p = u->next_idle;
            b->idle_connections--;
            return;
        }
    }
}

/* Any event on an idle connection (data, EOF, error) means it can no longer be reused. */
static void idle_event(struct watcher *w, uint32_t events)
{
    (void)events;
    struct upstream *u = upstream_of_watcher(w);
    unlink_idle(u);
    destroy(u);
}

static void idle_expired(struct timer *t)
{
    struct upstream *u = upstream_of_timer(t);
    unlink_idle(u);
    destroy(u);
}

static void busy_event(struct watcher *w, uint32_t events)
{
    struct upstream *u = upstream_of_watcher(w);
    u->ops->on_event(u, events);
}

static void busy_timeout(struct timer *t)
{
    struct upstream *u = upstream_of_timer(t);
    u->ops->on_timeout(u);
}

static struct upstream *pop_idle(struct backend *b)
{
    struct upstream *u = b->idle;
    if (!u)
        return NULL;
    b->idle = u->next_idle;
    b->idle_connections--;
    u->next_idle = NULL;
    u->reused = 1; /* its idle timer stays armed: the caller sets the new deadline */
    b->active_connections++;
    return u;
}

static struct upstream *connect_new(struct backend *b)
{
    int fd = net_connect(&b->addr);
    if (fd < 0)
        return NULL;
    struct upstream *u = calloc(1, sizeof *u);
    if (!u || loop_timer_init(&u->timer, busy_timeout) < 0) {
        free(u);
        close(fd);
        return NULL;
    }
    net_set_keepalive(fd);
    loop_watcher_init(&u->w, fd, busy_event);
    u->backend = b;
    u->connecting = 1;
    b->active_connections++;
    return u;
}

struct upstream *upstream_acquire(struct backend *b, struct conn *client, const struct upstream_ops *ops)
{
    struct upstream *u = pop_idle(b);
    if (!u)
        u = connect_new(b);
    if (!u)
        return NULL;
    u->client = client;
    u->ops = ops;
    u->w.on_event = busy_event;
    u->timer.on_fire = busy_timeout;
    return u;
}

void upstream_release(struct upstream *u, int reusable)
{
    struct backend *b = u->backend;
    loop_timer_clear(&u->timer);
    u->client = NULL;
    b->active_connections--;
    if (reusable && b->state == BACKEND_UP && !runtime.shutting_down &&
        (!u->in || u->in->start == u->in->end)) {
        buf_put(u->in);
        u->in = NULL;
        u->w.on_event = idle_event;
        u->timer.on_fire = idle_expired;
        if (loop_watch(&u->w, EPOLLIN) == 0) {
            u->next_idle = b->idle;
            b->idle = u;
            b->idle_connections++;
            loop_timer_set(&u->timer, runtime.cfg->upstream_idle_timeout_ms);
            return;
        }
    }
    destroy(u);
    reap_if_unused(b);
}
