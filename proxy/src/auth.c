#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static struct auth_token *tokens; /* MAX_TOKENS slots */
static size_t used_slots;         /* slots ever used: the ones auth_check walks */
static size_t live_count;
static uint64_t generation = 1;   /* changes with the table, so cached verdicts are retaken */

static int64_t wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

int auth_init(const struct token_spec *specs, size_t n)
{
    tokens = calloc(MAX_TOKENS, sizeof *tokens);
    if (!tokens)
        return -1;
    for (size_t i = 0; i < n && i < MAX_TOKENS; i++)
        auth_put(&specs[i]);
    return 0;
}

static int matching_slot(const char *value, size_t len)
{
    uint8_t digest[SHA256_LEN];
    int found = AUTH_INVALID;
    sha256(value, len, digest);
    for (size_t i = 0; i < used_slots; i++) {
        int eq = (sha256_equal(digest, tokens[i].hash) != 0) & tokens[i].live;
        /* Branch-free select keeps every comparison on the same path. */
        found = eq ? (int)i : found;
    }
    return found;
}

/* A matching token past its expiry is refused with its own answer. */
static int unexpired(int index)
{
    if (index < 0 || tokens[index].expires == 0 || wall_seconds() < tokens[index].expires)
        return index;
    return AUTH_EXPIRED;
}

int auth_check(const char *value, size_t len)
{
    return unexpired(matching_slot(value, len));
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
    if (len > 0 && cache->len == len && cache->generation == generation && same_bytes(cache->value, value, len))
        return unexpired(cache->index);
    int index = matching_slot(value, len);
    if (len > 0 && len <= sizeof cache->value) {
        memcpy(cache->value, value, len);
        cache->len = len;
        cache->index = index;
        cache->generation = generation;
    }
    return unexpired(index);
}

void auth_count_use(size_t i)
{
    tokens[i].accepted++;
    tokens[i].last_used = wall_seconds();
}

struct auth_token *auth_find(const char *name, size_t len)
{
    if (len == 0 || len >= NAME_MAX_LEN)
        return NULL;
    for (size_t i = 0; i < used_slots; i++)
        if (tokens[i].live && strncmp(tokens[i].name, name, len) == 0 && tokens[i].name[len] == '\0')
            return &tokens[i];
    return NULL;
}

/* A never-used slot first; a freed one only once all have been used (see auth.h). */
static struct auth_token *free_slot(void)
{
    if (used_slots < MAX_TOKENS)
        return &tokens[used_slots++];
    for (size_t i = 0; i < MAX_TOKENS; i++)
        if (!tokens[i].live)
            return &tokens[i];
    return NULL;
}

int auth_put(const struct token_spec *spec)
{
    struct auth_token *t = auth_find(spec->name, strlen(spec->name));
    int added = t == NULL;
    if (added) {
        t = free_slot();
        if (!t)
            return -1;
        memset(t, 0, sizeof *t);
        memcpy(t->name, spec->name, sizeof t->name);
        t->live = 1;
        live_count++;
    }
    memcpy(t->hash, spec->hash, SHA256_LEN);
    t->expires = spec->expires;
    generation++;
    return added;
}

int auth_remove(const char *name, size_t len)
{
    struct auth_token *t = auth_find(name, len);
    if (!t)
        return -1;
    if (live_count == 1)
        return -2;
    t->live = 0;
    live_count--;
    generation++;
    return 0;
}

size_t auth_slots(void) { return used_slots; }
struct auth_token *auth_token(size_t i) { return &tokens[i]; }
size_t auth_live_count(void) { return live_count; }
