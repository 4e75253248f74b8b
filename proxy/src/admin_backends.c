#include "admin_backends.h"

#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "admin_request.h"
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

static void add_backend(const char *body, size_t len, struct admin_reply *r)
{
    char err[400];
    struct backend_spec spec;
    if (admin_parse_backend(body, len, runtime.cfg, &spec, err, sizeof err) < 0) {
        admin_reply_error(r, 400, "Bad Request", err);
        return;
    }
    if (backend_find(spec.name, strlen(spec.name))) {
        admin_reply_error(r, 409, "Conflict", "a backend with this name exists; DELETE it first or pick another name");
        return;
    }
    struct backend *b = backend_add(&spec);
    if (!b) {
        admin_reply_error(r, 507, "Insufficient Storage", "the backend table is full");
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
            admin_reply_error(r, 405, "Method Not Allowed", "use POST /backends to add a backend");
        return;
    }
    const char *name = path + PREFIX_LEN + 1, *slash = memchr(name, '/', len - PREFIX_LEN - 1);
    size_t name_len = slash ? (size_t)(slash - name) : len - PREFIX_LEN - 1;
    const char *action = slash ? slash + 1 : "";
    size_t action_len = slash ? (size_t)(path + len - action) : 0;
    struct backend *b = backend_find(name, name_len);
    if (!b || b->removing) {
        admin_reply_error(r, 404, "Not Found", "no such backend; GET /stats lists them");
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
        admin_reply_error(r, 404, "Not Found", "use DELETE /backends/NAME, POST /backends/NAME/drain or /undrain");
        return;
    }
    if (method != HTTP_POST) {
        admin_reply_error(r, 405, "Method Not Allowed", "use POST");
        return;
    }
    if (drain && b->state != BACKEND_DRAINING)
        backend_set_state(b, BACKEND_DRAINING, "drained by the operator");
    else if (undo && b->state == BACKEND_DRAINING)
        undrain(b);
    reply_backend(r, 200, "OK", b);
}
