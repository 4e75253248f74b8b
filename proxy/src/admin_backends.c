#include "admin_backends.h"

#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "runtime.h"
#include "upstream.h"

#define PREFIX "/backends"
#define PREFIX_LEN (sizeof PREFIX - 1)

static void reply(struct admin_reply *r, int status, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void reply(struct admin_reply *r, int status, const char *reason, const char *fmt, ...)
{
    va_list ap;
    r->status = status;
    r->reason = reason;
    va_start(ap, fmt);
    int n = vsnprintf(r->json, sizeof r->json, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof r->json)
        snprintf(r->json, sizeof r->json, "{\"error\":\"reply too long\"}");
}

/* Error replies quote what the caller sent, so it is escaped. */
static void reply_error(struct admin_reply *r, int status, const char *reason, const char *msg)
{
    char escaped[512];
    size_t n = json_escape(escaped, 0, sizeof escaped - 1, msg, strlen(msg));
    escaped[n] = '\0';
    reply(r, status, reason, "{\"error\":\"%s\"}", escaped);
}

static void reply_backend(struct admin_reply *r, int status, const char *reason, const struct backend *b)
{
    reply(r, status, reason, "{\"name\":\"%s\",\"address\":\"%s\",\"weight\":%u,\"state\":\"%s\",\"in_flight\":%u}",
          b->name, b->address, b->weight, backend_state_name(b->state), b->in_flight);
}

int admin_backends_route(const char *path, size_t len)
{
    return len >= PREFIX_LEN && memcmp(path, PREFIX, PREFIX_LEN) == 0 &&
           (len == PREFIX_LEN || path[PREFIX_LEN] == '/' || path[PREFIX_LEN] == '?');
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

/* Fills name/address/weight; returns NULL or what was wrong. */
static const char *parse_add(const char *text, size_t len, char *name, char *address, char *weight)
{
    struct body b = {text, text + len};
    skip_ws(&b);
    if (b.p >= b.end || *b.p++ != '{')
        return "expected a JSON object like {\"name\":\"api-4\",\"address\":\"127.0.0.1:9004\",\"weight\":1}";
    for (;;) {
        char key[16], value[96];
        skip_ws(&b);
        if (b.p < b.end && *b.p == '}')
            break;
        if (read_scalar(&b, key, sizeof key) < 0)
            return "expected a key: name, address or weight";
        skip_ws(&b);
        if (b.p >= b.end || *b.p++ != ':')
            return "expected ':' after a key";
        skip_ws(&b);
        if (read_scalar(&b, value, sizeof value) < 0)
            return "values must be short strings without escapes, or whole numbers";
        if (strcmp(key, "name") == 0)
            strcpy(name, value);
        else if (strcmp(key, "address") == 0)
            strcpy(address, value);
        else if (strcmp(key, "weight") == 0)
            strcpy(weight, value);
        else
            return "unknown key; the keys are name, address and weight";
        skip_ws(&b);
        if (b.p < b.end && *b.p == ',') {
            b.p++;
            continue;
        }
        if (b.p < b.end && *b.p == '}')
            break;
        return "expected ',' or '}'";
    }
    b.p++;
    skip_ws(&b);
    if (b.p != b.end)
        return "trailing data after the object";
    if (!name[0] || !address[0])
        return "name and address are required";
    return NULL;
}

static void add_backend(const char *body, size_t len, struct admin_reply *r)
{
    char name[96] = "", address[96] = "", weight[96] = "1", spec_text[300], err[400];
    const char *why = parse_add(body, len, name, address, weight);
    if (why) {
        reply_error(r, 400, "Bad Request", why);
        return;
    }
    snprintf(spec_text, sizeof spec_text, "%s=%s,weight=%s", name, address, weight);
    struct backend_spec spec;
    if (config_parse_backend(spec_text, &spec, err, sizeof err) < 0) {
        const char *prefix = "--backend: ";
        reply_error(r, 400, "Bad Request", strncmp(err, prefix, strlen(prefix)) == 0 ? err + strlen(prefix) : err);
        return;
    }
    if (backend_find(spec.name, strlen(spec.name))) {
        reply_error(r, 409, "Conflict", "a backend with this name exists; DELETE it first or pick another name");
        return;
    }
    struct backend *b = backend_add(&spec);
    if (!b) {
        reply_error(r, 507, "Insufficient Storage", "the backend table is full");
        return;
    }
    reply_backend(r, 201, "Created", b);
}

static void undrain(struct backend *b)
{
    /* Back to what its health checks (which kept running while draining) say. */
    int healthy = b->sm.seen_success && b->sm.fail_streak < runtime.cfg->health_fall;
    backend_set_state(b, healthy ? BACKEND_UP : BACKEND_DOWN, "undrained by the operator");
}

void admin_backends_handle(int method, const char *path, size_t len, const char *body, size_t body_len,
                           struct admin_reply *r)
{
    const char *q = memchr(path, '?', len);
    if (q)
        len = (size_t)(q - path);
    if (len <= PREFIX_LEN + 1) {
        if (method == HTTP_POST)
            add_backend(body, body_len, r);
        else
            reply_error(r, 405, "Method Not Allowed", "use POST /backends to add a backend");
        return;
    }
    const char *name = path + PREFIX_LEN + 1, *slash = memchr(name, '/', len - PREFIX_LEN - 1);
    size_t name_len = slash ? (size_t)(slash - name) : len - PREFIX_LEN - 1;
    const char *action = slash ? slash + 1 : "";
    size_t action_len = slash ? (size_t)(path + len - action) : 0;
    struct backend *b = backend_find(name, name_len);
    if (!b || b->removing) {
        reply_error(r, 404, "Not Found", "no such backend; GET /stats lists them");
        return;
    }
    if (action_len == 0 && method == HTTP_DELETE) {
        log_event("backend_remove_requested", "backend=%s in_flight=%u", b->name, b->in_flight);
        int busy = b->in_flight || b->active_connections;
        char name_copy[NAME_MAX_LEN];
        memcpy(name_copy, b->name, sizeof name_copy);
        backend_remove(b); /* may free b (at the end of this loop iteration) */
        reply(r, busy ? 202 : 200, busy ? "Accepted" : "OK", "{\"name\":\"%s\",\"state\":\"%s\"}", name_copy,
              busy ? "removing" : "removed");
        return;
    }
    int drain = action_len == 5 && memcmp(action, "drain", 5) == 0;
    int undo = action_len == 7 && memcmp(action, "undrain", 7) == 0;
    if (!drain && !undo) {
        reply_error(r, 404, "Not Found", "use DELETE /backends/NAME, POST /backends/NAME/drain or /undrain");
        return;
    }
    if (method != HTTP_POST) {
        reply_error(r, 405, "Method Not Allowed", "use POST");
        return;
    }
    if (drain && b->state != BACKEND_DRAINING)
        backend_set_state(b, BACKEND_DRAINING, "drained by the operator");
    else if (undo && b->state == BACKEND_DRAINING)
        undrain(b);
    reply_backend(r, 200, "OK", b);
}
