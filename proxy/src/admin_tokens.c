#include "admin_tokens.h"

#include <llhttp.h>
#include <stdio.h>
#include <string.h>

#include "admin_request.h"
#include "auth.h"
#include "log.h"

#define PREFIX "/tokens"
#define PREFIX_LEN (sizeof PREFIX - 1)


int admin_tokens_route(const char *path, size_t len)
{
    return len >= PREFIX_LEN && memcmp(path, PREFIX, PREFIX_LEN) == 0 &&
           (len == PREFIX_LEN || path[PREFIX_LEN] == '/' || path[PREFIX_LEN] == '?');
}

/* The hash is never logged nor answered: it is enough to try guesses offline. */
static void put_token(const char *name, size_t name_len, const char *body, size_t body_len, struct admin_reply *r)
{
    struct token_spec spec;
    char err[400];
    if (admin_parse_token(name, name_len, body, body_len, &spec, err, sizeof err) < 0) {
        admin_reply_error(r, 400, "Bad Request", err);
        return;
    }
    int added = auth_put(&spec);
    if (added < 0) {
        char msg[80];
        snprintf(msg, sizeof msg, "the token table is full (%d tokens); revoke one first", MAX_TOKENS);
        admin_reply_error(r, 507, "Insufficient Storage", msg);
        return;
    }
    log_event(added ? "token_added" : "token_replaced", "token=%s expires=%lld", spec.name, (long long)spec.expires);
    r->status = added ? 201 : 200;
    r->reason = added ? "Created" : "OK";
    char expires[24] = "null";
    if (spec.expires)
        snprintf(expires, sizeof expires, "%lld", (long long)spec.expires);
    snprintf(r->json, sizeof r->json, "{\"name\":\"%s\",\"expires\":%s,\"state\":\"%s\"}", spec.name, expires,
             added ? "added" : "replaced");
}

static void delete_token(const char *name, size_t name_len, struct admin_reply *r)
{
    int rc = auth_remove(name, name_len);
    if (rc == -1) {
        admin_reply_error(r, 404, "Not Found", "no such token; GET /tokens lists them");
        return;
    }
    if (rc == -2) {
        admin_reply_error(r, 409, "Conflict", "this is the last token; the proxy needs at least one, so add another first");
        return;
    }
    log_event("token_revoked", "token=%.*s", (int)name_len, name);
    r->status = 200;
    r->reason = "OK";
    snprintf(r->json, sizeof r->json, "{\"name\":\"%.*s\",\"state\":\"revoked\"}", (int)name_len, name);
}

void admin_tokens_handle(int method, const char *path, size_t len, const char *body, size_t body_len,
                         struct admin_reply *r)
{
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    const char *name = path + PREFIX_LEN + 1;
    size_t name_len = len > PREFIX_LEN + 1 ? len - PREFIX_LEN - 1 : 0;
    if (name_len == 0) {
        admin_reply_error(r, 405, "Method Not Allowed", "use GET /tokens to list, PUT /tokens/NAME to add, DELETE /tokens/NAME to revoke");
        return;
    }
    if (memchr(name, '/', name_len)) {
        admin_reply_error(r, 404, "Not Found", "use GET /tokens, PUT /tokens/NAME or DELETE /tokens/NAME");
        return;
    }
    if (method == HTTP_PUT)
        put_token(name, name_len, body, body_len, r);
    else if (method == HTTP_DELETE)
        delete_token(name, name_len, r);
    else
        admin_reply_error(r, 405, "Method Not Allowed", "use PUT /tokens/NAME to add a token, DELETE to revoke it");
}
