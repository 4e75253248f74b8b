#include "tunnel.h"

#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "runtime.h"

/* --- moving bytes --- */

/* Reads what fd has into b (after making room). Returns -1 when the connection failed. The
 * peer's end of data sets *eof; it is read once, after which that side is no longer read. */
static int read_side(int fd, struct buf *b, int *eof, uint64_t *counted)
{
    buf_tidy(b);
    if (*eof || b->end == b->cap)
        return 0;
    ssize_t n = recv(fd, b->data + b->end, b->cap - b->end, 0);
    if (n > 0) {
        b->end += (size_t)n;
        b->parsed = b->end; /* nothing is parsed in a tunnel: all of it may be sent */
        if (counted)
            *counted += (uint64_t)n;
        return 0;
    }
    if (n == 0) {
        *eof = 1;
        return 0;
    }
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
}

/* Sends what b holds to fd. Returns the bytes sent, or -1 when the connection failed. */
static long write_side(int fd, struct buf *b)
{
    long n = buf_send(b, fd, b->end);
    if (n > 0)
        buf_tidy(b);
    return n;
}

/* Once a peer ended its data and all of it went to the other peer, the other peer is told
 * the same (a half-close), so either side may still finish what it was sending. */
static int propagate_eof(int eof, const struct buf *from, int to_fd, int *shut)
{
    if (!eof || *shut || from->start != from->end)
        return 0;
    shutdown(to_fd, SHUT_WR);
    *shut = 1;
    return 1;
}

static int pump(struct conn *c)
{
    struct upstream *u = c->up;
    long up = write_side(u->w.fd, c->in);
    long down = write_side(c->w.fd, u->in);
    if (up < 0 || down < 0) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    c->ex.backend->bytes_out += (uint64_t)up;
    c->ex.bytes_to_client += (uint64_t)down;
    int shut = propagate_eof(c->client_eof, c->in, u->w.fd, &c->shut_to_backend);
    shut |= propagate_eof(u->eof, u->in, c->w.fd, &c->shut_to_client);
    if (c->shut_to_backend && c->shut_to_client) {
        conn_destroy(c); /* both directions ended: the tunnel is done */
        return STEP_CLOSED;
    }
    return (up || down || shut) ? STEP_PROGRESS : STEP_IDLE;
}

/* --- events --- */

/* A side is read while its buffer has room and it has not ended, and written while the other
 * side's bytes wait for it. A full buffer or an ended side is not watched for input, so an
 * unconsumable hang-up is never reported over and over (see loop.h): with nothing to watch the
 * socket leaves epoll; with output pending, a hang-up makes that send fail and ends the tunnel. */
static uint32_t side_interest(int eof, const struct buf *in, const struct buf *out)
{
    uint32_t ev = 0;
    if (!eof && in->end < in->cap)
        ev |= EPOLLIN;
    if (out->start < out->end)
        ev |= EPOLLOUT;
    return ev;
}

static void watch(struct conn *c)
{
    struct upstream *u = c->up;
    if (loop_watch(&c->w, side_interest(c->client_eof, c->in, u->in)) < 0 ||
        loop_watch(&u->w, side_interest(u->eof, u->in, c->in)) < 0)
        conn_destroy(c);
}

void tunnel_advance(struct conn *c)
{
    int r;
    c->active_ms = loop_now_ms(); /* any event is activity for the idle timeout */
    while ((r = pump(c)) == STEP_PROGRESS)
        ;
    if (r != STEP_CLOSED)
        watch(c);
}

static void client_event(struct watcher *w, uint32_t events)
{
    struct conn *c = (struct conn *)((char *)w - offsetof(struct conn, w));
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && read_side(c->w.fd, c->in, &c->client_eof, NULL) < 0) {
        conn_destroy(c);
        return;
    }
    tunnel_advance(c);
}

static void upstream_event(struct upstream *u, uint32_t events)
{
    struct conn *c = u->client;
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && read_side(u->w.fd, u->in, &u->eof, &c->ex.backend->bytes_in) < 0) {
        conn_destroy(c);
        return;
    }
    tunnel_advance(c);
}

/* The tunnel clears the upstream deadline when it starts; the client side's idle timer rules. */
static void upstream_timeout(struct upstream *u)
{
    conn_destroy(u->client);
}

static const struct upstream_ops tunnel_ops = {.on_event = upstream_event, .on_timeout = upstream_timeout};

void tunnel_start(struct conn *c)
{
    struct upstream *u = c->up;
    c->state = C_TUNNEL;
    c->ex.upstream_reusable = 0;
    c->shut_to_client = c->shut_to_backend = 0;
    /* Bytes the client sent after its request head were held back, not parsed: they belong to
     * the new protocol, as do the backend's bytes after the 101 head. */
    c->in->parsed = c->in->end;
    u->in->parsed = u->in->end;
    loop_timer_clear(&u->timer); /* no response deadline any more: the idle timeout rules */
    c->w.on_event = client_event;
    u->ops = &tunnel_ops;
    c->active_ms = loop_now_ms();
    loop_timer_set(&c->timer, runtime.cfg->stream_timeout_ms);
}

/* Activity only stamps c->active_ms (tunnel_advance); the timer re-arms for the remainder until
 * the tunnel has really been idle that long. */
void tunnel_timeout(struct conn *c)
{
    uint64_t idle = loop_now_ms() - c->active_ms;
    if (idle < runtime.cfg->stream_timeout_ms) {
        loop_timer_set(&c->timer, runtime.cfg->stream_timeout_ms - idle);
        return;
    }
    conn_destroy(c);
}
