/* A connection after its backend switched protocols (HTTP/1.1 Upgrade answered 101, e.g. a
 * WebSocket): from then on the proxy relays bytes both ways without parsing them, until both
 * directions have ended. It stays one in-flight request of its backend for its whole life
 * (least-conn sees it), its upstream connection is never pooled, and it is counted once, with
 * status 101, when it ends. */
#ifndef UPROXY_TUNNEL_H
#define UPROXY_TUNNEL_H

#include "conn.h"

/* Switches c to a tunnel; the 101 head (already rewritten) and any bytes after it sit in the
 * response buffer, bytes the client sent after its request head in c->in. */
void tunnel_start(struct conn *c);
/* Moves bytes both ways and propagates half-closes until it must wait, then updates what epoll
 * watches on both sockets. c may be gone afterwards. */
void tunnel_advance(struct conn *c);
/* c's timer fired: ends the tunnel once nothing moved for --stream-timeout-ms. */
void tunnel_timeout(struct conn *c);

#endif
