#include "admin_acme.h"

#include <llhttp.h>
#include <stdio.h>
#include <string.h>

#include "acme.h"
#include "log.h"
#include "tls.h"

#define PREFIX "/acme"
#define PREFIX_LEN (sizeof PREFIX - 1)
#define HTTP01 "/acme/http-01/"
#define TLS_ALPN01 "/acme/tls-alpn-01/"
#define USAGE "use GET /acme, or PUT and DELETE /acme/http-01/TOKEN or /acme/tls-alpn-01/NAME"
#define TOKEN_RULE "the token must be 1-128 characters of [A-Za-z0-9_-]"
#define NAME_RULE "the name must be a DNS name: at most 253 characters of [A-Za-z0-9.-], in labels of 1-63"


/* {"token":…,"state":…} or {"name":…,"state":…}; the key was validated, so needs no escaping. */
static void reply_state(struct admin_reply *r, int status, const char *field, const char *key, size_t len,
                        const char *state)
{
    r->status = status;
    r->reason = status == 201 ? "Created" : "OK";
    snprintf(r->json, sizeof r->json, "{\"%s\":\"%.*s\",\"state\":\"%s\"}", field, (int)len, key, state);
}

int admin_acme_route(const char *path, size_t len)
{
    return len >= PREFIX_LEN && memcmp(path, PREFIX, PREFIX_LEN) == 0 &&
           (len == PREFIX_LEN || path[PREFIX_LEN] == '/' || path[PREFIX_LEN] == '?');
}

static void put_http01(const char *token, size_t len, const char *body, size_t body_len, struct admin_reply *r)
{
    const char *why = NULL;
    size_t key_auth_len = acme_key_authorization(token, len, body, body_len, &why);
    if (key_auth_len == 0) {
        admin_reply_error(r, 400, "Bad Request", why);
        return;
    }
    int added = acme_http01_put(token, len, body, key_auth_len);
    if (added < 0) {
        char msg[100];
        snprintf(msg, sizeof msg, "the http-01 challenge table is full (%d challenges); delete one first", ACME_HTTP01_MAX);
        admin_reply_error(r, 507, "Insufficient Storage", msg);
        return;
    }
    log_event(added ? "acme_challenge_added" : "acme_challenge_replaced", "type=http-01 token=%.*s", (int)len, token);
    reply_state(r, added ? 201 : 200, "token", token, len, added ? "added" : "replaced");
}

static void put_tls_alpn01(const char *name, size_t len, const char *body, size_t body_len, struct admin_reply *r)
{
    char err[400];
    struct ssl_ctx_st *ctx = tls_challenge_context(body, body_len, name, len, err, sizeof err);
    if (!ctx) {
        admin_reply_error(r, 400, "Bad Request", err);
        return;
    }
    int added = acme_tls_alpn01_put(name, len, ctx);
    if (added < 0) {
        char msg[100];
        snprintf(msg, sizeof msg, "the tls-alpn-01 challenge table is full (%d challenges); delete one first",
                 ACME_TLS_ALPN01_MAX);
        admin_reply_error(r, 507, "Insufficient Storage", msg);
        return;
    }
    log_event(added ? "acme_challenge_added" : "acme_challenge_replaced", "type=tls-alpn-01 name=%.*s", (int)len, name);
    reply_state(r, added ? 201 : 200, "name", name, len, added ? "added" : "replaced");
}

static void delete_challenge(int http01, const char *key, size_t len, struct admin_reply *r)
{
    int rc = http01 ? acme_http01_remove(key, len) : acme_tls_alpn01_remove(key, len);
    if (rc < 0) {
        admin_reply_error(r, 404, "Not Found", http01 ? "no such http-01 challenge; GET /acme lists them"
                                                : "no such tls-alpn-01 challenge; GET /acme lists them");
        return;
    }
    log_event("acme_challenge_removed", "type=%s %s=%.*s", http01 ? "http-01" : "tls-alpn-01", http01 ? "token" : "name",
              (int)len, key);
    reply_state(r, 200, http01 ? "token" : "name", key, len, "removed");
}

void admin_acme_handle(int method, const char *path, size_t len, char *body, size_t body_len, struct admin_reply *r)
{
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    int http01 = len >= sizeof HTTP01 - 1 && memcmp(path, HTTP01, sizeof HTTP01 - 1) == 0;
    int tls_alpn01 = len >= sizeof TLS_ALPN01 - 1 && memcmp(path, TLS_ALPN01, sizeof TLS_ALPN01 - 1) == 0;
    if (!http01 && !tls_alpn01) {
        admin_reply_error(r, len == PREFIX_LEN ? 405 : 404, len == PREFIX_LEN ? "Method Not Allowed" : "Not Found", USAGE);
        return;
    }
    size_t skip = http01 ? sizeof HTTP01 - 1 : sizeof TLS_ALPN01 - 1;
    const char *key = path + skip;
    size_t key_len = len - skip;
    if (method != HTTP_PUT && method != HTTP_DELETE) {
        admin_reply_error(r, 405, "Method Not Allowed", "use PUT to add or replace a challenge, DELETE to remove it");
    } else if (http01 ? !acme_token_valid(key, key_len) : !acme_name_valid(key, key_len)) {
        admin_reply_error(r, 400, "Bad Request", http01 ? TOKEN_RULE : NAME_RULE);
    } else if (method == HTTP_DELETE) {
        delete_challenge(http01, key, key_len, r);
    } else if (http01) {
        put_http01(key, key_len, body, body_len, r);
    } else {
        put_tls_alpn01(key, key_len, body, body_len, r);
    }
    /* A challenge key has no use once its challenge is done, but it is a key: it does not stay
     * in a buffer the next request reuses. */
    explicit_bzero(body, body_len);
}
