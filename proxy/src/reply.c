#include "reply.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include "runtime.h"

static const char *reason_of(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
    }
}

/* A bounded text builder: local answers are composed per request, without printf's cost. */
struct text {
    char *p;
    size_t len, cap;
    int overflow;
};

static void text_put(struct text *t, const char *s)
{
    size_t n = strlen(s);
    if (t->len + n > t->cap) {
        t->overflow = 1;
        return;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
}

static void text_put_uint(struct text *t, unsigned v)
{
    char digits[12];
    size_t i = sizeof digits;
    digits[--i] = '\0';
    do {
        digits[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    text_put(t, digits + i);
}

void reply_start(struct conn *c, int status, const char *json, int must_close)
{
    c->ex.status = status;
    /* After an upgrade request the client may already be sending the protocol it asked for, so
     * whatever follows is not parsed as HTTP: the connection ends with the answer. */
    c->ex.close_after = must_close || !c->ex.keep_alive_req || runtime.shutting_down || c->client_eof || c->ex.upgrade;
    const char *conn_hdr = c->ex.close_after ? "Connection: close\r\n"
                           : c->ex.http10    ? "Connection: keep-alive\r\n"
                                          : "";
    struct text t = {.p = c->local, .cap = sizeof c->local};
    text_put(&t, "HTTP/1.1 ");
    text_put_uint(&t, (unsigned)status);
    text_put(&t, " ");
    text_put(&t, reason_of(status));
    text_put(&t, "\r\nContent-Type: application/json\r\nContent-Length: ");
    text_put_uint(&t, (unsigned)strlen(json));
    text_put(&t, "\r\n");
    text_put(&t, conn_hdr);
    text_put(&t, "\r\n");
    text_put(&t, json);
    c->ex.local_len = t.overflow ? 0 : t.len;
    c->ex.local_sent = 0;
    c->state = C_LOCAL;
    /* Bounds how long we wait for the rest of a body we are only going to drop. */
    loop_timer_set(&c->timer, runtime.cfg->header_timeout_ms);
    if (must_close)
        c->ex.req_parsed_all = c->ex.req_done = 1;
}

int reply_pump(struct conn *c)
{
    int progress = STEP_IDLE;
    if (c->ex.local_sent < c->ex.local_len) {
        ssize_t n = conn_send(c, c->local + c->ex.local_sent, c->ex.local_len - c->ex.local_sent);
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            conn_destroy(c);
            return STEP_CLOSED;
        }
        if (n > 0) {
            c->ex.local_sent += (size_t)n;
            c->ex.bytes_to_client += (uint64_t)n;
            progress = STEP_PROGRESS;
        }
    }
    if (c->ex.local_sent == c->ex.local_len)
        c->ex.resp_done = 1;
    if (c->in) {
        if (!c->ex.req_parsed_all) {
            int r = conn_parse_request_body(c);
            if (r == STEP_CLOSED)
                return r;
            progress |= r;
        }
        /* The request is answered here: all of it parsed so far (head and body, perhaps already
         * rewritten for a backend that was then not reached) is dropped, never forwarded, and
         * never read again as the next request. */
        c->in->start = c->in->parsed;
        buf_tidy(c->in);
    }
    if (c->ex.req_parsed_all)
        c->ex.req_done = 1;
    return progress;
}
