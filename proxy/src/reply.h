/* The proxy's own answers (400, 401, 405, 408, 413, 431, 502, 503, 504): a small JSON body,
 * composed into the connection's `local` array, so no buffer is needed to send it. */
#ifndef UPROXY_REPLY_H
#define UPROXY_REPLY_H

#include "conn.h"

/* Switches c to answering `status` itself. A request whose end is known keeps the connection
 * open; the rest of its body is read and dropped. `must_close` is for requests we cannot frame. */
void reply_start(struct conn *c, int status, const char *json, int must_close);
/* Sends the answer and drops request body bytes. Returns an `enum step`. */
int reply_pump(struct conn *c);

#endif
