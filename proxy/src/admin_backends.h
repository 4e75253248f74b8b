/* Live backend changes through the admin API:
 *   POST   /backends              {"name":"api-4","address":"127.0.0.1:9004","weight":1}
 *   DELETE /backends/NAME         drain, then remove once nothing uses it
 *   POST   /backends/NAME/drain   no new requests; in-flight ones finish; idle connections closed
 *   POST   /backends/NAME/undrain back to up (or down, if its health checks are failing)
 * Authorization is checked by admin.c before any of this runs. */
#ifndef UPROXY_ADMIN_BACKENDS_H
#define UPROXY_ADMIN_BACKENDS_H

#include <stddef.h>

#include "admin_reply.h"

int admin_backends_route(const char *path, size_t len);
void admin_backends_handle(int method, const char *path, size_t len, const char *body, size_t body_len,
                           struct admin_reply *r);

#endif
