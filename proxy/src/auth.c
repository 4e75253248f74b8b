#include "auth.h"

#include <stdlib.h>
#include <string.h>

static struct auth_token *tokens;
static size_t ntokens;

int auth_init(const struct token_spec *specs, size_t n)
{
    tokens = calloc(n ? n : 1, sizeof *tokens);
    if (!tokens)
        return -1;
    for (size_t i = 0; i < n; i++) {
        memcpy(tokens[i].name, specs[i].name, sizeof tokens[i].name);
        memcpy(tokens[i].hash, specs[i].hash, SHA256_LEN);
    }
    ntokens = n;
    return 0;
}

int auth_check(const char *value, size_t len)
{
    uint8_t digest[SHA256_LEN];
    int found = -1;
    sha256(value, len, digest);
    for (size_t i = 0; i < ntokens; i++) {
        int eq = sha256_equal(digest, tokens[i].hash);
        /* Branch-free select keeps every comparison on the same path. */
        found = eq ? (int)i : found;
    }
    return found;
}

/* Constant time: every byte is compared, whatever the first difference. */
static int same_bytes(const char *a, const char *b, size_t len)
{
    unsigned char diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

int auth_check_cached(struct auth_cache *cache, const char *value, size_t len)
{
    if (len > 0 && cache->len == len && same_bytes(cache->value, value, len))
        return cache->index;
    int index = auth_check(value, len);
    if (len > 0 && len <= sizeof cache->value) {
        memcpy(cache->value, value, len);
        cache->len = len;
        cache->index = index;
    }
    return index;
}

size_t auth_count(void) { return ntokens; }
struct auth_token *auth_token(size_t i) { return &tokens[i]; }
