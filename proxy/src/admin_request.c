#include "admin_request.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum admin_auth admin_authorize(const char *head, size_t len, const uint8_t hash[SHA256_LEN])
{
    const char *value = NULL;
    size_t vlen = 0;
    int count = 0;
    for (const char *p = head; p < head + len;) {
        const char *nl = memchr(p, '\n', (size_t)(head + len - p));
        const char *eol = nl ? nl : head + len;
        if ((size_t)(eol - p) > 14 && strncasecmp(p, "authorization:", 14) == 0) {
            count++;
            value = p + 14;
            while (value < eol && (*value == ' ' || *value == '\t'))
                value++;
            vlen = (size_t)(eol - value);
            while (vlen && (value[vlen - 1] == '\r' || value[vlen - 1] == ' '))
                vlen--;
        }
        p = eol + 1;
    }
    if (count > 1)
        return ADMIN_AUTH_DUPLICATE;
    if (!value)
        return ADMIN_AUTH_MISSING;
    uint8_t digest[SHA256_LEN];
    int scheme_ok = vlen > 7 && strncasecmp(value, "Bearer ", 7) == 0;
    sha256(scheme_ok ? value + 7 : "", scheme_ok ? vlen - 7 : 0, digest);
    return scheme_ok && sha256_equal(digest, hash) ? ADMIN_AUTH_OK : ADMIN_AUTH_INVALID;
}

/* --- the body of POST /backends: one flat JSON object of strings and whole numbers --- */

struct body {
    const char *p, *end;
};

static void skip_ws(struct body *b)
{
    while (b->p < b->end && (*b->p == ' ' || *b->p == '\t' || *b->p == '\n' || *b->p == '\r'))
        b->p++;
}

/* Reads a string (no escapes: names and addresses never need them) or a number as text. */
static int read_scalar(struct body *b, char *out, size_t cap)
{
    size_t n = 0;
    int quoted = b->p < b->end && *b->p == '"';
    if (quoted)
        b->p++;
    while (b->p < b->end && (quoted ? *b->p != '"' : (*b->p >= '0' && *b->p <= '9'))) {
        if (*b->p == '\\' || (unsigned char)*b->p < 0x20 || n + 1 >= cap)
            return -1;
        out[n++] = *b->p++;
    }
    if (quoted) {
        if (b->p >= b->end)
            return -1;
        b->p++;
    }
    out[n] = '\0';
    return n > 0 || quoted ? 0 : -1;
}

/* The members an admin body may have: each key fills its value (cap bytes). */
struct member {
    const char *key;
    char *value;
    size_t cap;
};

static struct member *member_of(struct member *m, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(m[i].key, key) == 0)
            return &m[i];
    return NULL;
}

/* Reads `"key": value` pairs up to the closing brace; returns NULL or what was wrong. */
static const char *parse_members(struct body *b, struct member *m, size_t n, const char *unknown)
{
    for (;;) {
        char key[16], value[96];
        skip_ws(b);
        if (b->p < b->end && *b->p == '}')
            return NULL;
        if (read_scalar(b, key, sizeof key) < 0)
            return unknown;
        skip_ws(b);
        if (b->p >= b->end || *b->p++ != ':')
            return "expected ':' after a key";
        skip_ws(b);
        if (read_scalar(b, value, sizeof value) < 0)
            return "values must be short strings without escapes, or whole numbers";
        struct member *found = member_of(m, n, key);
        if (!found)
            return unknown;
        snprintf(found->value, found->cap, "%s", value);
        skip_ws(b);
        if (b->p < b->end && *b->p == ',') {
            b->p++;
            continue;
        }
        if (b->p < b->end && *b->p == '}')
            return NULL;
        return "expected ',' or '}'";
    }
}

/* One flat JSON object whose keys are those of m; returns NULL or what was wrong. */
static const char *parse_object(const char *text, size_t len, struct member *m, size_t n, const char *usage,
                                const char *unknown)
{
    struct body b = {text, text + len};
    skip_ws(&b);
    if (b.p >= b.end || *b.p++ != '{')
        return usage;
    const char *why = parse_members(&b, m, n, unknown);
    if (why)
        return why;
    b.p++;
    skip_ws(&b);
    return b.p == b.end ? NULL : "trailing data after the object";
}

/* Fills name/address/weight; returns NULL or what was wrong. */
static const char *parse_add(const char *text, size_t len, char *name, char *address, char *weight)
{
    struct member m[] = {{"name", name, 96}, {"address", address, 96}, {"weight", weight, 96}};
    const char *why = parse_object(text, len, m, 3,
                                   "expected a JSON object like {\"name\":\"api-4\",\"address\":\"127.0.0.1:9004\",\"weight\":1}",
                                   "expected a key: name, address or weight");
    if (why)
        return why;
    if (!name[0] || !address[0])
        return "name and address are required";
    return NULL;
}

int admin_parse_backend(const char *body, size_t len, const struct config *cfg, struct backend_spec *spec,
                        char *err, size_t errcap)
{
    char name[96] = "", address[96] = "", weight[96] = "1", spec_text[300];
    const char *why = parse_add(body, len, name, address, weight);
    if (why) {
        snprintf(err, errcap, "%s", why);
        return -1;
    }
    snprintf(spec_text, sizeof spec_text, "%s=%s,weight=%s", name, address, weight);
    if (config_parse_backend(spec_text, spec, err, errcap) < 0) {
        const char *prefix = "--backend: ";
        size_t n = strlen(prefix);
        if (strncmp(err, prefix, n) == 0)
            memmove(err, err + n, strlen(err + n) + 1);
        return -1;
    }
    const char *refused = config_backend_refused(cfg, &spec->addr);
    if (refused) {
        snprintf(err, errcap, "'%s': %s", spec->address, refused);
        return -1;
    }
    return 0;
}

int admin_parse_token(const char *name, size_t name_len, const char *body, size_t len, struct token_spec *spec,
                      char *err, size_t errcap)
{
    char sha[96] = "", expires[96] = "", text[NAME_MAX_LEN + 200];
    struct member m[] = {{"sha256", sha, sizeof sha}, {"expires", expires, sizeof expires}};
    const char *why = parse_object(body, len, m, 2,
                                   "expected a JSON object like {\"sha256\":\"<64 hex digits>\",\"expires\":1767225600}",
                                   "unknown key; the keys are sha256 and expires (Unix seconds, optional)");
    if (!why && !sha[0])
        why = "sha256 is required: the token's SHA-256 as 64 hex digits (never the token itself)";
    if (!why && (name_len >= NAME_MAX_LEN || memchr(name, ':', name_len)))
        why = "token name must be 1-63 characters of [A-Za-z0-9._-]";
    if (why) {
        snprintf(err, errcap, "%s", why);
        return -1;
    }
    /* Through the --token rules, so the flag and the API accept exactly the same tokens. An
     * expiry of 0 means none, as when it is left out. */
    int never = !expires[0] || strcmp(expires, "0") == 0;
    snprintf(text, sizeof text, "%.*s:%s%s%s", (int)name_len, name, sha, never ? "" : ":", never ? "" : expires);
    return config_parse_token(text, spec, err, errcap);
}
