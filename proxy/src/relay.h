/* The exchange with a backend: picking one and attaching to it, forwarding the request's
 * bytes, parsing and rewriting the response as it streams back, and the failures on the way
 * (a retry on another backend when the request provably did not take effect, else 502/504). */
#ifndef UPROXY_RELAY_H
#define UPROXY_RELAY_H

#include <stdint.h>

#include "conn.h"

/* Sends c's request (already rewritten in c->in) to a backend; answers 503 itself when no
 * backend or no buffer is available. */
void relay_start(struct conn *c);
/* Moves request bytes to the backend and response bytes to the client. Returns an `enum step`. */
int relay_pump(struct conn *c);
/* Updates what epoll watches on c's upstream connection. */
void relay_watch(struct conn *c);
/* Ends the request's use of its upstream connection (pooled again when `reusable`). */
void relay_detach(struct conn *c, int reusable);
/* The exchange made no progress for a while (see --stream-timeout-ms). */
void relay_stream_timeout(struct conn *c);

#endif
