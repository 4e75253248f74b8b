/* Client connections: the request/response state machine of the proxy.
 *
 * One exchange at a time per connection: a request head is parsed, authenticated and
 * dispatched, its body streamed to the backend while the response streams back, and only
 * when both are complete does the next (possibly already pipelined) request start, so
 * responses always leave in request order. Each direction moves through one buffer with
 * backpressure: a full buffer stops reading from that side until the other side drains it.
 *
 * conn.c owns the connection and its request side; relay.c the exchange with a backend;
 * reply.c the proxy's own answers; tunnel.c the connection after a backend switched protocols.
 * struct conn is shared by those four files only. */
#ifndef UPROXY_CONN_H
#define UPROXY_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth.h"
#include "buf.h"
#include "http.h"
#include "loop.h"
#include "tls.h"
#include "upstream.h"

#define LOG_PATH_MAX 256

enum conn_state {
    C_HANDSHAKE, /* TLS: the handshake is under way */
    C_IDLE,    /* between requests, no buffer held */
    C_HEAD,    /* reading a request head */
    C_PROXY,   /* exchange with a backend in progress */
    C_LOCAL,   /* answering from the proxy itself (401, 503, ...) */
    C_LINGER,  /* response sent, write side shut: waiting for the client to close first */
    C_TUNNEL,  /* the backend switched protocols (101): bytes relayed both ways unparsed */
};

/* What one step of the state machine did; STEP_CLOSED means the connection is gone,
 * STEP_TUNNEL that tunnel.c drives it from now on (it may be gone too). */
enum step { STEP_IDLE = 0, STEP_PROGRESS = 1, STEP_CLOSED = -1, STEP_TUNNEL = -2 };

/* One request and its response, from the request head to the end of the response (or of the
 * tunnel it became). Reset whole between requests (exchange_reset), so no field is right only
 * because it happens to be set again before use. */
struct exchange {
    struct backend *backend;
    int req_parsed_all, req_done;
    int resp_head_done, resp_parsed_all, resp_done;
    int resp_started; /* bytes of the response reached the client */
    int resp_seen;    /* bytes of a response arrived from the backend */
    int replayable;   /* the whole request forwarded so far still sits in `in` from offset 0 */
    int repeatable;   /* idempotent method without a body: safe to send twice */
    int retried;
    int in_trailers;     /* the request body's last chunk ended: what follows is its trailer section */
    size_t trailer_held; /* trailer bytes parsed and held after in->parsed, never forwarded */
    int close_after;
    int upstream_reusable;
    int keep_alive_req, http10, method;
    int upgrade;      /* the request may switch protocols: forwarded with Upgrade */
    int status, token_index;
    size_t resp_msg_start;
    uint64_t started_us, forwarded_us, bytes_to_client, body_bytes;
    size_t local_len, local_sent; /* the proxy's own answer in conn.local */
    size_t path_len;              /* the target for the access log in conn.path */
};

struct conn {
    struct watcher w;
    struct timer timer;
    struct conn *prev, *next; /* all client connections, for shutdown */
    enum conn_state state;
    struct buf *in;
    struct http_msg req;
    struct upstream *up;
    char ip[48];
    struct auth_cache auth;
    struct ssl_st *tls; /* NULL for plain HTTP */
    int trusted;
    int client_eof;
    int shut_to_client, shut_to_backend; /* tunnel: our write side to that peer is shut */
    uint64_t active_ms;
    struct exchange ex;
    /* Storage the exchange's lengths describe: kept out of it so a reset stays small. */
    char local[384];
    char path[LOG_PATH_MAX];
};

/* The client's bytes, over TLS or not; recv/send semantics (-1 with EAGAIN: try again later). */
static inline ssize_t conn_recv(struct conn *c, void *p, size_t n)
{
    return c->tls ? tls_recv(c->tls, p, n) : recv(c->w.fd, p, n, 0);
}

static inline ssize_t conn_send(struct conn *c, const void *p, size_t n)
{
    return c->tls ? tls_send(c->tls, p, n) : send(c->w.fd, p, n, MSG_NOSIGNAL);
}

/* Sends [start, upto) of b to the client, like buf_send. */
static inline long conn_buf_send(struct conn *c, struct buf *b, size_t upto)
{
    if (!c->tls)
        return buf_send(b, c->w.fd, upto);
    if (upto <= b->start)
        return 0;
    ssize_t n = conn_send(c, b->data + b->start, upto - b->start);
    if (n < 0)
        return errno == EAGAIN ? 0 : -1;
    b->start += (size_t)n;
    return n;
}

/* Ends what the proxy sends the client (close_notify first over TLS); its reads go on. */
static inline void conn_shutdown_write(struct conn *c)
{
    if (c->tls)
        tls_close_notify(c->tls);
    shutdown(c->w.fd, SHUT_WR);
}

/* For the listener and main.c. */
void conn_accept(int fd, const struct sockaddr_storage *peer);
unsigned long conn_count(void);
/* At shutdown: closes idle connections; busy ones close after their response. */
void conn_close_idle(void);

/* For relay.c and reply.c. */
void conn_destroy(struct conn *c);
/* Runs the state machine until it waits for I/O, then updates what epoll watches. */
void conn_advance(struct conn *c);
/* Parses request body bytes; they become sendable (or, for local answers, are dropped). */
int conn_parse_request_body(struct conn *c);
/* Counts the exchange's response in the stats and writes its access log line. */
void conn_count_exchange(struct conn *c);

#endif
