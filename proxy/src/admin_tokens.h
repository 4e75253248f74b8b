/* Live client token changes through the admin API:
 *   PUT    /tokens/NAME   {"sha256":"<64 hex>","expires":UNIX_SECONDS}  add, or replace its hash
 *   DELETE /tokens/NAME   revoke: the next request with it gets 401
 * GET /tokens (the list, never a hash) is rendered by admin.c beside /stats. Authorization is checked by
 * admin.c before any of this runs. */
#ifndef UPROXY_ADMIN_TOKENS_H
#define UPROXY_ADMIN_TOKENS_H

#include <stddef.h>

#include "admin_reply.h"

/* Whether path is /tokens or below it. */
int admin_tokens_route(const char *path, size_t len);
/* Handles PUT and DELETE /tokens/NAME; r gets the answer. */
void admin_tokens_handle(int method, const char *path, size_t len, const char *body, size_t body_len,
                         struct admin_reply *r);

#endif
