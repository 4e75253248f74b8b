/* ACME challenges through the admin API, for the CLI's ACME client (issue 17):
 *   PUT    /acme/http-01/TOKEN      body: the key authorization "TOKEN.THUMBPRINT"
 *   DELETE /acme/http-01/TOKEN
 *   PUT    /acme/tls-alpn-01/NAME   body: the PEM challenge certificate, then its key
 *   DELETE /acme/tls-alpn-01/NAME
 * GET /acme (the list) is rendered by admin.c beside /stats. Authorization is checked by
 * admin.c before any of this runs; the challenges themselves live in acme.c. */
#ifndef UPROXY_ADMIN_ACME_H
#define UPROXY_ADMIN_ACME_H

#include <stddef.h>

#include "admin_reply.h"

/* Whether path is /acme or below it. */
int admin_acme_route(const char *path, size_t len);
/* Handles PUT and DELETE of one challenge; r gets the answer. The body (a challenge key
 * included) is wiped once read. */
void admin_acme_handle(int method, const char *path, size_t len, char *body, size_t body_len, struct admin_reply *r);

#endif
