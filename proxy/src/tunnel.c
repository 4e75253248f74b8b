#include "tunnel.h"

#include <errno.h>
#include <stddef.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "runtime.h"

/* --- moving bytes --- */

/* Room for what a side sends next: none once it ended or while the buffer is full. */
static size_t room(struct buf *b, int eof)
{
    buf_tidy(b);
    return eof ? 0 : b->cap - b->end;
}

/* Takes the result of a read into b (recv semantics). Returns -1 when the connection failed.
 * The peer's end of data sets *eof; it is read once, after which that side is no longer read. */
static int took(ssize_t n, struct buf *b, int *eof, uint64_t *counted)
{
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

static int read_client(struct conn *c)
{
    size_t n = room(c->in, c->client_eof);
    return n ? took(conn_recv(c, c->in->data + c->in->end, n), c->in, &c->client_eof, NULL) : 0;
}

static int read_upstream(struct conn *c)
{
    struct upstream *u = c->up;
    size_t n = room(u->in, u->eof);
    return n ? took(recv(u->w.fd, u->in->data + u->in->end, n, 0), u->in, &u->eof, &c->ex.backend->bytes_in) : 0;
}

/* What a send of b's bytes returned; a drained buffer is tidied. */
static long sent(long n, struct buf *b)
{
    if (n > 0)
        buf_tidy(b);
    return n;
}

/* Once a peer ended its data and all of it went to the other peer, the other peer is told
 * the same (a half-close), so either side may still finish what it was sending. */
static int ended(int eof, const struct buf *from, int *shut)
{
    if (!eof || *shut || from->start != from->end)
        return 0;
    *shut = 1;
    return 1;
}

static int pump(struct conn *c)
{
    struct upstream *u = c->up;
    long up = sent(buf_send(c->in, u->w.fd, c->in->end), c->in);
    long down = sent(conn_buf_send(c, u->in, u->in->end), u->in);
    if (up < 0 || down < 0) {
        conn_destroy(c);
        return STEP_CLOSED;
    }
    c->ex.backend->bytes_out += (uint64_t)up;
    c->ex.bytes_to_client += (uint64_t)down;
    int shut = 0;
    if (ended(c->client_eof, c->in, &c->shut_to_backend)) {
        shutdown(u->w.fd, SHUT_WR);
        shut = 1;
    }
    if (ended(u->eof, u->in, &c->shut_to_client)) {
        conn_shutdown_write(c);
        shut = 1;
    }
    if (c->shut_to_backend && c->shut_to_client) {
        conn_destroy(c); /* both directions ended: the tunnel is done */
        return STEP_CLOSED;
    }
    /* Bytes OpenSSL already holds are announced by no socket event: they are read now. */
    int got = 0;
    if (c->tls && tls_has_pending(c->tls)) {
        size_t before = c->in->end;
        if (read_client(c) < 0) {
            conn_destroy(c);
            return STEP_CLOSED;
        }
        got = c->in->end != before;
    }
    return (up || down || shut || got) ? STEP_PROGRESS : STEP_IDLE;
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
    uint32_t client = side_interest(c->client_eof, c->in, u->in);
    if (c->tls && tls_wants_write(c->tls))
        client |= EPOLLOUT; /* a TLS read that waits for the socket to take a record first */
    if (loop_watch(&c->w, client) < 0 ||
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
    int readable = events & (EPOLLIN | EPOLLHUP | EPOLLERR);
    if ((readable || (c->tls && (events & EPOLLOUT) && tls_wants_write(c->tls))) && read_client(c) < 0) {
        conn_destroy(c);
        return;
    }
    tunnel_advance(c);
}

static void upstream_event(struct upstream *u, uint32_t events)
{
    struct conn *c = u->client;
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && read_upstream(c) < 0) {
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
