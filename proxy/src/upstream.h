/* Backends and the connections to them. Each backend keeps a LIFO stack of idle keep-alive
 * connections: the most recently used one is reused first (warm in every cache, and the least
 * likely to have been closed by the backend's idle timeout), and the others age out. */
#ifndef UPROXY_UPSTREAM_H
#define UPROXY_UPSTREAM_H

#include <llhttp.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"
#include "health.h"
#include "http.h"
#include "loop.h"
#include "stats.h"

struct conn;
struct upstream;

/* What the owner of an upstream connection in use does with its events and its deadline: the
 * relay while the connection carries an exchange, the tunnel after a protocol switch. */
struct upstream_ops {
    void (*on_event)(struct upstream *u, uint32_t events);
    void (*on_timeout)(struct upstream *u);
};

struct upstream {
    struct watcher w;
    struct timer timer; /* connect/response deadline while in use; idle expiry in the pool */
    struct backend *backend;
    struct conn *client; /* owner while in use, NULL when idle */
    const struct upstream_ops *ops; /* the owner's handlers while in use */
    struct upstream *next_idle;
    struct http_msg resp;
    struct buf *in;
    int connecting;
    int reused;
    int hup_paused; /* peer hung up while our buffer was full: unregistered until it drains */
    int eof;        /* the backend closed or failed: nothing more to read */
};

struct backend {
    char name[NAME_MAX_LEN];
    char address[80];
    struct net_addr addr;
    unsigned weight;
    long current_weight; /* smooth weighted round-robin */
    enum backend_state state;
    unsigned active_connections, idle_connections, in_flight;
    struct upstream *idle; /* LIFO */
    double ewma_latency_ms;
    uint64_t ewma_at_ms; /* when ewma_latency_ms last took a sample */
    uint64_t requests, errors, bytes_in, bytes_out;
    struct histogram latency;
    struct health_sm sm;
    uint64_t checks, check_failures, last_change_ms;
    struct health_check hc;
    int removing; /* DELETE /backends/NAME: draining, freed once nothing uses it */
};

/* Live backends in configuration order. Pointers stay valid while a backend is listed (and
 * until the end of the loop iteration that removes it), so array changes never move one. */
extern struct backend *backends[MAX_BACKENDS];
extern size_t nbackends;

int backends_init(const struct config *cfg);
/* Adds a backend at run time (state down, probed at once). NULL when the table is full. */
struct backend *backend_add(const struct backend_spec *spec);
struct backend *backend_find(const char *name, size_t len);
/* Drains the backend, then removes it once no request or connection uses it. */
void backend_remove(struct backend *b);
void backend_set_state(struct backend *b, enum backend_state s, const char *why);
/* Closes every pooled idle connection (with a FIN): at shutdown, so no backend keeps a
 * connection from a proxy that is gone. */
void backends_close_idle(void);
void backend_record_latency(struct backend *b, uint64_t micros);

/* Hands out an idle connection (LIFO) or starts a new connect, its events and deadline going to
 * `ops` (an owner hands it on by setting u->ops). NULL if no socket. */
struct upstream *upstream_acquire(struct backend *b, struct conn *client, const struct upstream_ops *ops);
/* Returns a connection to its backend's pool, or closes it when not reusable. */
void upstream_release(struct upstream *u, int reusable);

#endif
