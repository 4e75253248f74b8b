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

size_t auth_count(void) { return ntokens; }
struct auth_token *auth_token(size_t i) { return &tokens[i]; }
