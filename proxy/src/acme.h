/* ACME challenges the proxy answers itself (issue 17): http-01 (RFC 8555 8.3) on the plain
 * listener and tls-alpn-01 (RFC 8737) on the TLS listener. The uproxy CLI runs the ACME
 * client and puts each challenge here through the admin API (admin_acme.c) until the CA has
 * checked it, so the tables are small and fixed: an order has a handful of names.
 *
 * Also here, so the admin API, both listeners and the fuzzer read them alike: the syntax of
 * what names a challenge (a token, a DNS name) and the two ClientHello extensions that ask
 * for a tls-alpn-01 one (ALPN and server_name), read strictly from untrusted bytes. */
#ifndef UPROXY_ACME_H
#define UPROXY_ACME_H

#include <stddef.h>

#define ACME_HTTP01_MAX 16
#define ACME_TLS_ALPN01_MAX 8
/* A token and an account key thumbprint are base64url; RFC 8555 tokens carry 128 bits of
 * entropy (22 characters) and a SHA-256 thumbprint is 43: 128 leaves room for any CA. */
#define ACME_TOKEN_MAX 128
#define ACME_KEY_AUTH_MAX (2 * ACME_TOKEN_MAX + 1)
#define ACME_NAME_MAX 253
/* The ALPN protocol of tls-alpn-01 (RFC 8737 6.2). */
#define ACME_TLS_PROTOCOL "acme-tls/1"
#define ACME_TLS_PROTOCOL_LEN (sizeof ACME_TLS_PROTOCOL - 1)

struct ssl_ctx_st;

/* 1 when s is 1-128 characters of [A-Za-z0-9_-]: a token or a thumbprint. */
int acme_token_valid(const char *s, size_t len);
/* 1 when s is a DNS name: at most 253 characters of [A-Za-z0-9.-] in labels of 1-63. */
int acme_name_valid(const char *s, size_t len);
/* The key authorization for `token` in `body` ("<token>.<thumbprint>", trailing white space
 * dropped): its length, or 0 with what is wrong in *why. */
size_t acme_key_authorization(const char *token, size_t token_len, const char *body, size_t len, const char **why);

/* http-01: a valid token and its key authorization. 1 added, 0 replaced, -1 the table is full. */
int acme_http01_put(const char *token, size_t token_len, const char *key_auth, size_t key_auth_len);
/* 0, or -1 when there is no such token. */
int acme_http01_remove(const char *token, size_t len);
/* The key authorization of a registered token, or NULL. */
const char *acme_http01_find(const char *token, size_t len, size_t *key_auth_len);
/* The token in slot i (< ACME_HTTP01_MAX), or NULL when the slot is free. */
const char *acme_http01_token(size_t i);

/* tls-alpn-01: a valid name and the context that serves its challenge certificate, which the
 * store owns from now on, whatever the outcome (a replaced or removed one is freed; connections
 * that use it hold their own reference). 1 added, 0 replaced, -1 the table is full. */
int acme_tls_alpn01_put(const char *name, size_t name_len, struct ssl_ctx_st *ctx);
/* 0, or -1 when there is no challenge for that name. */
int acme_tls_alpn01_remove(const char *name, size_t len);
/* The context for name (case-insensitive), or NULL. */
struct ssl_ctx_st *acme_tls_alpn01_find(const char *name, size_t len);
/* The name in slot i (< ACME_TLS_ALPN01_MAX), or NULL when the slot is free. */
const char *acme_tls_alpn01_name(size_t i);
/* How many tls-alpn-01 challenges there are: with none, a ClientHello is not looked at. */
size_t acme_tls_alpn01_count(void);

/* 1 when a well-formed ALPN ProtocolNameList (RFC 7301 3.1, without its length) names
 * acme-tls/1. */
int acme_protocols_offer_challenge(const unsigned char *list, size_t len);
/* The same for the raw ALPN extension of a ClientHello (the list with its length). */
int acme_alpn_offers_challenge(const unsigned char *ext, size_t len);
/* The host name of a raw server_name extension (RFC 6066 3) when it is the one host_name
 * OpenSSL accepts and a valid DNS name: 0 with *name pointing into ext, else -1. */
int acme_server_name(const unsigned char *ext, size_t len, const char **name, size_t *name_len);

#endif
