/* TLS on the client listener, through OpenSSL (the API subset 1.1.1 and 3.x share).
 *
 * A client connection over TLS carries an SSL object; every read and write of its bytes goes
 * through the functions below, which behave like recv/send (-1 with errno EAGAIN when OpenSSL
 * must wait for the socket), so the connection state machine is the same over TLS and plain
 * TCP. The handshake runs in the event loop like everything else: non-blocking, resumed on the
 * socket event OpenSSL waits for (tls_wants_write), bounded by the header timeout. */
#ifndef UPROXY_TLS_H
#define UPROXY_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

struct ssl_st;
struct ssl_ctx_st;

struct tls_stats {
    uint64_t handshakes, resumed, failed, in_progress;
};

extern struct tls_stats tls_stats;

/* Loads every --tls-cert. 0, or -1 with one line saying what is wrong in err. */
int tls_init(const struct config *cfg, char *err, size_t errcap);
/* 1 when the client listener speaks TLS. */
int tls_enabled(void);
/* How many certificates are loaded. */
size_t tls_certificates(void);
/* Replaces certificate `index` (or adds one, with index = tls_certificates()) with the chain
 * and key in `pem`, for new connections; open ones keep theirs. A `pem` without a key keeps the
 * replaced certificate's key (the chain must match it). 0, or -1 with why in err (which never
 * quotes the PEM). */
int tls_replace(size_t index, const char *pem, size_t len, char *err, size_t errcap);
#define TLS_SERIAL_MAX_BYTES 64

/* What the admin API says of a certificate; the strings are ready to go inside JSON. */
struct tls_description {
    char names[1024];  /* "a","b": its subjectAltName DNS names and IPv4 addresses */
    char issuer[256];  /* the issuer's commonName, or its one-line name when it has none */
    char serial[2 * TLS_SERIAL_MAX_BYTES + 2]; /* upper-case hex, as `openssl x509 -serial` */
    long long not_after; /* Unix seconds */
};

/* Certificate `index`: 0, or -1 when there is none. */
int tls_describe(size_t index, struct tls_description *d);
/* A context that answers the tls-alpn-01 challenge for `name` (RFC 8737) with the certificate
 * and key in `pem`: the certificate must carry the critical acmeIdentifier extension and name
 * `name` in its subjectAltName. NULL with why in err (never quoting the PEM). */
struct ssl_ctx_st *tls_challenge_context(const char *pem, size_t len, const char *name, size_t name_len, char *err,
                                         size_t errcap);
/* A server-side TLS session on an accepted socket, or NULL (no memory). */
struct ssl_st *tls_accept(int fd);
/* Advances the handshake: 1 done, 0 waiting for the socket, -1 failed (counted). */
int tls_handshake(struct ssl_st *ssl);
ssize_t tls_recv(struct ssl_st *ssl, void *buf, size_t len);
ssize_t tls_send(struct ssl_st *ssl, const void *buf, size_t len);
/* The handshake just completed answered a tls-alpn-01 challenge (it served a challenge
 * certificate, with ALPN acme-tls/1): the validator only wanted the certificate, and the
 * connection is closed. */
int tls_answered_challenge(const struct ssl_st *ssl);
/* The last operation waits for the socket to be writable (a read can, while keys change). */
int tls_wants_write(const struct ssl_st *ssl);
/* Decrypted or received bytes OpenSSL holds that the socket will not announce again. */
int tls_has_pending(const struct ssl_st *ssl);
/* Sends close_notify (best effort, never waiting) right before the write side is shut: the
 * alert is held back (at most 200 ms) to leave with the FIN. */
void tls_close_notify(struct ssl_st *ssl);
void tls_free(struct ssl_st *ssl);

#endif
