/* The plain-HTTP listener of a TLS proxy (--redirect-listen): every request is answered 308
 * with the same target on https://, and the connection closes. Nothing is forwarded and no
 * token is looked at: a client that sent one in clear text learns the right URL, nothing more.
 * The one exception is /.well-known/acme-challenge/, where an ACME CA fetches an http-01
 * challenge (acme.c): answered 200 or 404 here, never redirected. */
#ifndef UPROXY_REDIRECT_H
#define UPROXY_REDIRECT_H

#include <stddef.h>

int redirect_listen(void);
void redirect_close(void);

#endif
