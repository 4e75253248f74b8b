/* Client token check: the presented X-Auth-Token is hashed with SHA-256 and compared in
 * constant time with every configured hash (no early exit, so timing reveals neither which
 * token matched nor how much of it). Counters are kept per token name, never per value.
 *
 * The table changes at run time (the admin API's PUT and DELETE /tokens/NAME): a slot, once
 * used, keeps its index, and a freed one is reused only when every slot has been used, so an
 * exchange that matched a token just revoked still logs that token's name. */
#ifndef UPROXY_AUTH_H
#define UPROXY_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* auth_check's answers besides a token's index. */
#define AUTH_INVALID (-1)
#define AUTH_EXPIRED (-2)

struct auth_token {
    char name[NAME_MAX_LEN];
    uint8_t hash[SHA256_LEN];
    int64_t expires;   /* Unix seconds; 0: never */
    int64_t last_used; /* Unix seconds of the last accepted request; 0: never */
    uint64_t accepted;
    int live;          /* 0: a free slot */
};

/* A client connection's last presented token and its verdict, so a keep-alive client sending
 * the same bytes again is not rehashed. The verdict holds while the table is unchanged (its
 * generation); expiry is checked on every request, cached or not. The bytes are compared in
 * constant time, and a longer token than fits here is simply hashed every time. */
#define AUTH_CACHE_BYTES 128

struct auth_cache {
    size_t len; /* 0: empty */
    int index;  /* auth_check's answer for these bytes */
    uint64_t generation;
    char value[AUTH_CACHE_BYTES];
};

int auth_init(const struct token_spec *tokens, size_t n);
/* The index of the matching live token, AUTH_EXPIRED or AUTH_INVALID. */
int auth_check(const char *value, size_t len);
/* auth_check through the connection's cache. */
int auth_check_cached(struct auth_cache *cache, const char *value, size_t len);
/* Counts an accepted request for token i (requests, last used). */
void auth_count_use(size_t i);

/* Adds a token, or replaces the hash and expiry of the live one of that name (its counters
 * stay). Returns 1 when added, 0 when replaced, -1 when the table is full. */
int auth_put(const struct token_spec *spec);
/* Revokes the live token `name`: 0, -1 when there is none, -2 when it is the last one (the
 * proxy always has at least one token). */
int auth_remove(const char *name, size_t len);
/* The live token `name`, or NULL. */
struct auth_token *auth_find(const char *name, size_t len);

/* Slots, live or not, for iterating: skip those whose `live` is 0. */
size_t auth_slots(void);
struct auth_token *auth_token(size_t i);
size_t auth_live_count(void);

#endif
