#include "acme.h"

#include <openssl/ssl.h>
#include <string.h>
#include <strings.h>

struct http01 {
    char token[ACME_TOKEN_MAX + 1]; /* "" when the slot is free */
    char key_auth[ACME_KEY_AUTH_MAX + 1];
    size_t key_auth_len;
};

struct tls_alpn01 {
    char name[ACME_NAME_MAX + 1];
    SSL_CTX *ctx; /* NULL when the slot is free */
};

static struct http01 http01[ACME_HTTP01_MAX];
static struct tls_alpn01 tls_alpn01[ACME_TLS_ALPN01_MAX];
static size_t ntls_alpn01;

static int base64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int acme_token_valid(const char *s, size_t len)
{
    if (len == 0 || len > ACME_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!base64url_char(s[i]))
            return 0;
    return 1;
}

int acme_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > ACME_NAME_MAX)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return 0;
            label = 0;
            continue;
        }
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-') || ++label > 63)
            return 0;
    }
    return label > 0;
}

size_t acme_key_authorization(const char *token, size_t token_len, const char *body, size_t len, const char **why)
{
    while (len && (body[len - 1] == '\n' || body[len - 1] == '\r' || body[len - 1] == ' ' || body[len - 1] == '\t'))
        len--;
    if (len <= token_len + 1 || memcmp(body, token, token_len) != 0 || body[token_len] != '.' ||
        !acme_token_valid(body + token_len + 1, len - token_len - 1)) {
        *why = "the body must be this token's key authorization: the token, '.', and the account key's thumbprint "
               "(1-128 characters of [A-Za-z0-9_-])";
        return 0;
    }
    return len;
}

/* The entry of a registered token, or NULL. */
static struct http01 *http01_entry(const char *token, size_t len)
{
    for (size_t i = 0; len && i < ACME_HTTP01_MAX; i++)
        if (strlen(http01[i].token) == len && memcmp(http01[i].token, token, len) == 0)
            return &http01[i];
    return NULL;
}

static struct http01 *http01_free_slot(void)
{
    for (size_t i = 0; i < ACME_HTTP01_MAX; i++)
        if (!http01[i].token[0])
            return &http01[i];
    return NULL;
}

int acme_http01_put(const char *token, size_t token_len, const char *key_auth, size_t key_auth_len)
{
    if (token_len == 0 || token_len > ACME_TOKEN_MAX || key_auth_len > ACME_KEY_AUTH_MAX)
        return -1;
    struct http01 *e = http01_entry(token, token_len);
    int added = e == NULL;
    if (added && !(e = http01_free_slot()))
        return -1;
    memcpy(e->token, token, token_len);
    e->token[token_len] = '\0';
    memcpy(e->key_auth, key_auth, key_auth_len);
    e->key_auth_len = key_auth_len;
    return added;
}

int acme_http01_remove(const char *token, size_t len)
{
    struct http01 *e = http01_entry(token, len);
    if (!e)
        return -1;
    memset(e, 0, sizeof *e);
    return 0;
}

const char *acme_http01_find(const char *token, size_t len, size_t *key_auth_len)
{
    const struct http01 *e = http01_entry(token, len);
    if (!e)
        return NULL;
    *key_auth_len = e->key_auth_len;
    return e->key_auth;
}

const char *acme_http01_token(size_t i)
{
    return i < ACME_HTTP01_MAX && http01[i].token[0] ? http01[i].token : NULL;
}

/* The challenge for name (compared without regard to case, as DNS does), or NULL. */
static struct tls_alpn01 *tls_alpn01_entry(const char *name, size_t len)
{
    for (size_t i = 0; len && i < ACME_TLS_ALPN01_MAX; i++) {
        struct tls_alpn01 *e = &tls_alpn01[i];
        if (e->ctx && strlen(e->name) == len && strncasecmp(e->name, name, len) == 0)
            return e;
    }
    return NULL;
}

static struct tls_alpn01 *tls_alpn01_free_slot(void)
{
    for (size_t i = 0; i < ACME_TLS_ALPN01_MAX; i++)
        if (!tls_alpn01[i].ctx)
            return &tls_alpn01[i];
    return NULL;
}

int acme_tls_alpn01_put(const char *name, size_t name_len, SSL_CTX *ctx)
{
    struct tls_alpn01 *e = tls_alpn01_entry(name, name_len);
    int added = e == NULL;
    if (added)
        e = tls_alpn01_free_slot();
    if (!e || name_len == 0 || name_len > ACME_NAME_MAX) {
        SSL_CTX_free(ctx);
        return -1;
    }
    SSL_CTX_free(e->ctx);
    memcpy(e->name, name, name_len); /* the spelling last put is the one listed */
    e->name[name_len] = '\0';
    e->ctx = ctx;
    ntls_alpn01 += (size_t)added;
    return added;
}

int acme_tls_alpn01_remove(const char *name, size_t len)
{
    struct tls_alpn01 *e = tls_alpn01_entry(name, len);
    if (!e)
        return -1;
    SSL_CTX_free(e->ctx);
    memset(e, 0, sizeof *e);
    ntls_alpn01--;
    return 0;
}

SSL_CTX *acme_tls_alpn01_find(const char *name, size_t len)
{
    const struct tls_alpn01 *e = tls_alpn01_entry(name, len);
    return e ? e->ctx : NULL;
}

const char *acme_tls_alpn01_name(size_t i)
{
    return i < ACME_TLS_ALPN01_MAX && tls_alpn01[i].ctx ? tls_alpn01[i].name : NULL;
}

size_t acme_tls_alpn01_count(void) { return ntls_alpn01; }

int acme_protocols_offer_challenge(const unsigned char *list, size_t len)
{
    int offered = 0;
    size_t i = 0;
    while (i < len) {
        size_t n = list[i++];
        if (n == 0 || n > len - i)
            return 0; /* malformed: OpenSSL refuses the ClientHello anyway */
        if (n == ACME_TLS_PROTOCOL_LEN && memcmp(list + i, ACME_TLS_PROTOCOL, n) == 0)
            offered = 1;
        i += n;
    }
    return offered;
}

int acme_alpn_offers_challenge(const unsigned char *ext, size_t len)
{
    if (len < 2 || (((size_t)ext[0] << 8) | ext[1]) != len - 2)
        return 0;
    return acme_protocols_offer_challenge(ext + 2, len - 2);
}

int acme_server_name(const unsigned char *ext, size_t len, const char **name, size_t *name_len)
{
    /* ServerNameList length, then exactly one entry: type host_name (0), length, name. */
    if (len < 5 || (((size_t)ext[0] << 8) | ext[1]) != len - 2 || ext[2] != 0 ||
        (((size_t)ext[3] << 8) | ext[4]) != len - 5)
        return -1;
    if (!acme_name_valid((const char *)ext + 5, len - 5))
        return -1;
    *name = (const char *)ext + 5;
    *name_len = len - 5;
    return 0;
}
