/* Client connections: the request/response state machine of the proxy.
 *
 * One exchange at a time per connection: a request head is parsed, authenticated and
 * dispatched, its body streamed to the backend while the response streams back, and only
 * when both are complete does the next (possibly already pipelined) request start, so
 * responses always leave in request order. Each direction moves through one buffer with
 * backpressure: a full buffer stops reading from that side until the other side drains it. */
#ifndef UPROXY_CONN_H
#define UPROXY_CONN_H

#include <stdint.h>

#include "upstream.h"

int conn_listen(void);
void conn_upstream_event(struct upstream *u, uint32_t events);
void conn_upstream_timeout(struct upstream *u);
/* Stops accepting and closes idle connections; busy ones close after their response. */
void conn_begin_shutdown(void);
unsigned long conn_count(void);

#endif
