#include "http.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_CONNECTION_TOKENS 8

static llhttp_settings_t request_settings, response_settings;
static char *scratch;
static size_t scratch_cap;

struct line {
    const char *name, *value;
    size_t name_len, value_len;
};

/* Names the Connection header lists are hop-by-hop for this message too (RFC 9110 7.6.1). */
struct conn_tokens {
    struct line items[MAX_CONNECTION_TOKENS];
    int count;
    int overflow;
};

static int on_header_field_complete(llhttp_t *p)
{
    struct http_msg *m = (struct http_msg *)p;
    if (++m->headers > m->max_headers)
        return HPE_USER;
    return 0;
}

static int on_request_headers_complete(llhttp_t *p)
{
    struct http_msg *m = (struct http_msg *)p;
    /* Upgrade is hop-by-hop and dropped on the way in, so the body is plain HTTP. */
    if (p->method != HTTP_CONNECT)
        p->upgrade = 0;
    m->event = HTTP_HEAD_DONE;
    return HPE_PAUSED;
}

static int on_response_headers_complete(llhttp_t *p)
{
    struct http_msg *m = (struct http_msg *)p;
    if (m->skip_body)
        p->flags |= F_SKIPBODY;
    m->event = HTTP_HEAD_DONE;
    return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p)
{
    ((struct http_msg *)p)->event = HTTP_MSG_DONE;
    return HPE_PAUSED;
}

void http_init(size_t cap)
{
    scratch_cap = cap;
    scratch = malloc(cap);
    llhttp_settings_init(&request_settings);
    request_settings.on_header_field_complete = on_header_field_complete;
    request_settings.on_headers_complete = on_request_headers_complete;
    request_settings.on_message_complete = on_message_complete;
    llhttp_settings_init(&response_settings);
    response_settings.on_header_field_complete = on_header_field_complete;
    response_settings.on_headers_complete = on_response_headers_complete;
    response_settings.on_message_complete = on_message_complete;
}

void http_msg_init(struct http_msg *m, llhttp_type_t type, unsigned max_headers)
{
    llhttp_init(&m->parser, type, type == HTTP_REQUEST ? &request_settings : &response_settings);
    m->headers = 0;
    m->max_headers = max_headers;
    m->skip_body = 0;
    m->paused = 0;
    m->event = 0;
}

static enum http_progress after_execute(struct http_msg *m, llhttp_errno_t rc, const char *data,
                                        size_t len, size_t *consumed)
{
    if (rc == HPE_OK) {
        *consumed = len;
        return HTTP_NEED_MORE;
    }
    if (rc == HPE_PAUSED) {
        *consumed = (size_t)(llhttp_get_error_pos(&m->parser) - data);
        m->paused = 1;
        if (m->event == HTTP_MSG_DONE)
            m->headers = 0;
        return (enum http_progress)m->event;
    }
    *consumed = 0;
    /* Our header-count callback's refusal surfaces as a callback error code. */
    return m->headers > m->max_headers ? HTTP_TOO_MANY_HEADERS : HTTP_ERROR;
}

enum http_progress http_execute(struct http_msg *m, const char *data, size_t len, size_t *consumed)
{
    if (m->paused) {
        llhttp_resume(&m->parser);
        m->paused = 0;
    }
    return after_execute(m, llhttp_execute(&m->parser, data, len), data, len, consumed);
}

enum http_progress http_finish(struct http_msg *m)
{
    size_t ignored;
    if (m->paused) {
        llhttp_resume(&m->parser);
        m->paused = 0;
    }
    llhttp_errno_t rc = llhttp_finish(&m->parser);
    if (rc == HPE_OK && m->event != HTTP_MSG_DONE)
        return HTTP_ERROR;
    return rc == HPE_OK ? HTTP_MSG_DONE : after_execute(m, rc, NULL, 0, &ignored);
}

/* --- head scanning --- */

static int name_is(const struct line *l, const char *name)
{
    return l->name_len == strlen(name) && strncasecmp(l->name, name, l->name_len) == 0;
}

/* Splits the next header line starting at *pos; returns 0 at the empty line ending the head. */
static int next_line(const char *head, size_t len, size_t *pos, struct line *l)
{
    const char *p = head + *pos, *end = head + len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return 0;
    const char *eol = (nl > p && nl[-1] == '\r') ? nl - 1 : nl;
    *pos = (size_t)(nl + 1 - head);
    if (eol == p)
        return 0;
    const char *colon = memchr(p, ':', (size_t)(eol - p));
    if (!colon)
        colon = eol;
    l->name = p;
    l->name_len = (size_t)(colon - p);
    const char *v = colon < eol ? colon + 1 : eol;
    while (v < eol && (*v == ' ' || *v == '\t'))
        v++;
    const char *ve = eol;
    while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
        ve--;
    l->value = v;
    l->value_len = (size_t)(ve - v);
    return 1;
}

static size_t first_line_end(const char *head, size_t len)
{
    const char *nl = memchr(head, '\n', len);
    return nl ? (size_t)(nl + 1 - head) : len;
}

void http_scan_request(const char *head, size_t len, struct request_info *info)
{
    struct line l;
    memset(info, 0, sizeof *info);
    const char *sp = memchr(head, ' ', len);
    if (sp) {
        const char *path = sp + 1;
        const char *sp2 = memchr(path, ' ', len - (size_t)(path - head));
        info->path = path;
        info->path_len = sp2 ? (size_t)(sp2 - path) : 0;
    }
    size_t pos = first_line_end(head, len);
    while (next_line(head, len, &pos, &l)) {
        if (name_is(&l, "x-auth-token")) {
            info->token = l.value;
            info->token_len = l.value_len;
            info->token_count++;
        }
    }
}

static void collect_connection_tokens(const char *head, size_t len, struct conn_tokens *ct)
{
    struct line l;
    size_t pos = first_line_end(head, len);
    ct->count = 0;
    ct->overflow = 0;
    while (next_line(head, len, &pos, &l)) {
        if (!name_is(&l, "connection"))
            continue;
        const char *p = l.value, *end = l.value + l.value_len;
        while (p < end) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
                p++;
            const char *t = p;
            while (p < end && *p != ',' && *p != ' ' && *p != '\t')
                p++;
            if (p == t)
                continue;
            if (ct->count == MAX_CONNECTION_TOKENS) {
                ct->overflow = 1;
                continue;
            }
            ct->items[ct->count].name = t;
            ct->items[ct->count].name_len = (size_t)(p - t);
            ct->count++;
        }
    }
}

static int is_hop_by_hop(const struct line *l, const struct conn_tokens *ct)
{
    static const char *const fixed[] = {"connection", "keep-alive", "proxy-connection", "te",
                                        "upgrade", "proxy-authorization", "proxy-authenticate"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        if (name_is(l, fixed[i]))
            return 1;
    for (int i = 0; i < ct->count; i++) {
        const struct line *t = &ct->items[i];
        /* Framing headers stay: the body is forwarded with its own framing. */
        if (l->name_len == t->name_len && strncasecmp(l->name, t->name, t->name_len) == 0 &&
            !name_is(l, "transfer-encoding") && !name_is(l, "content-length") && !name_is(l, "host"))
            return 1;
    }
    return 0;
}

struct out {
    char *p;
    size_t len, cap;
    int overflow;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->len + n > o->cap) {
        o->overflow = 1;
        return;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void put_str(struct out *o, const char *s) { put(o, s, strlen(s)); }

static void put_header(struct out *o, const struct line *l)
{
    put(o, l->name, l->name_len);
    put(o, ": ", 2);
    put(o, l->value, l->value_len);
    put(o, "\r\n", 2);
}

/* An obs-fold continuation (a line starting with white space) is refused, not unfolded. */
static int folded(const struct line *l)
{
    return l->name_len == 0 || l->name[0] == ' ' || l->name[0] == '\t';
}

/* Places the composed head in front of the body bytes. */
static long commit(struct out *o, char *data, size_t head_len, size_t body_len, size_t cap)
{
    if (o->overflow || o->len + body_len > cap)
        return -1;
    if (o->len != head_len && body_len)
        memmove(data + o->len, data + head_len, body_len);
    memcpy(data, o->p, o->len);
    return (long)o->len;
}

static void put_forwarded_for(struct out *o, const char *head, size_t len, const struct rewrite *rw)
{
    struct line l;
    size_t pos = first_line_end(head, len);
    put_str(o, "X-Forwarded-For: ");
    if (rw->trusted) {
        while (next_line(head, len, &pos, &l)) {
            if (name_is(&l, "x-forwarded-for") && l.value_len) {
                put(o, l.value, l.value_len);
                put(o, ", ", 2);
            }
        }
    }
    put_str(o, rw->client_ip);
    put(o, "\r\n", 2);
}

long http_rewrite_request(char *data, size_t head_len, size_t body_len, size_t cap, const struct rewrite *rw)
{
    struct out o = {.p = scratch, .len = 0, .cap = scratch_cap, .overflow = 0};
    struct conn_tokens ct;
    struct line l;
    int kept_proto = 0;
    collect_connection_tokens(data, head_len, &ct);
    size_t pos = first_line_end(data, head_len);
    put(&o, data, pos);
    while (next_line(data, head_len, &pos, &l)) {
        if (folded(&l))
            return HTTP_REWRITE_MALFORMED;
        if (is_hop_by_hop(&l, &ct) || name_is(&l, "x-auth-token") || name_is(&l, "x-forwarded-for"))
            continue;
        if (name_is(&l, "x-forwarded-proto")) {
            /* A trusted proxy knows the scheme the client really used; keep its first value. */
            if (!rw->trusted || kept_proto)
                continue;
            kept_proto = 1;
        }
        put_header(&o, &l);
    }
    put_forwarded_for(&o, data, head_len, rw);
    if (!kept_proto)
        put_str(&o, "X-Forwarded-Proto: http\r\n");
    if (rw->add_keep_alive)
        put_str(&o, "Connection: keep-alive\r\n");
    put(&o, "\r\n", 2);
    return commit(&o, data, head_len, body_len, cap);
}

long http_rewrite_response(char *data, size_t head_len, size_t body_len, size_t cap, const struct rewrite *rw)
{
    struct out o = {.p = scratch, .len = 0, .cap = scratch_cap, .overflow = 0};
    struct conn_tokens ct;
    struct line l;
    collect_connection_tokens(data, head_len, &ct);
    size_t pos = first_line_end(data, head_len);
    put(&o, data, pos);
    while (next_line(data, head_len, &pos, &l)) {
        if (folded(&l))
            return HTTP_REWRITE_MALFORMED;
        if (!is_hop_by_hop(&l, &ct))
            put_header(&o, &l);
    }
    if (rw->add_close)
        put_str(&o, "Connection: close\r\n");
    else if (rw->add_keep_alive)
        put_str(&o, "Connection: keep-alive\r\n");
    put(&o, "\r\n", 2);
    return commit(&o, data, head_len, body_len, cap);
}
