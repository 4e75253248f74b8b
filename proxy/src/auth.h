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

int auth_init(const struct token_spec *tokens, size_t n);
/* Returns the index of the matching token or -1. */
int auth_check(const char *value, size_t len);
size_t auth_count(void);
struct auth_token *auth_token(size_t i);

#endif
