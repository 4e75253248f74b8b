/* Client token check: the presented X-Auth-Token is hashed with SHA-256 and compared in
 * constant time with every configured hash (no early exit, so timing reveals neither which
 * token matched nor how much of it). Counters are kept per token name, never per value. */
#ifndef UPROXY_AUTH_H
#define UPROXY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct auth_token {
    char name[NAME_MAX_LEN];
    uint8_t hash[SHA256_LEN];
    uint64_t accepted;
};

/* A client connection's last presented token and its verdict, so a keep-alive client sending
 * the same bytes again is not rehashed. Tokens are fixed at start, so the verdict for the same
 * bytes cannot change; the bytes are compared in constant time, and a longer token than fits
 * here is simply hashed every time. */
#define AUTH_CACHE_BYTES 128

struct auth_cache {
    size_t len; /* 0: empty */
    int index;  /* auth_check's answer for these bytes */
    char value[AUTH_CACHE_BYTES];
};

int auth_init(const struct token_spec *tokens, size_t n);
/* Returns the index of the matching token or -1. */
int auth_check(const char *value, size_t len);
/* auth_check through the connection's cache. */
int auth_check_cached(struct auth_cache *cache, const char *value, size_t len);
size_t auth_count(void);
struct auth_token *auth_token(size_t i);

#endif
