#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static llhttp_settings_t request_settings, response_settings;
static char *scratch;
static size_t scratch_cap;

/* Every header line of the head scanned last: llhttp refuses more than --max-headers (at most
 * 1000) headers, so only folded lines (refused anyway) could fill the table; a head that does
 * is refused rather than forwarded half-read. */
#define MAX_LINES 1024
static struct http_line lines[MAX_LINES];

/* Header names the proxy acts on. H_HOP_BY_HOP to H_CONNECTION are adjacent: is_hop_by_hop()
 * tells them from ordinary lines with one range check; so are the framing kinds H_HOST to
 * H_TRANSFER_ENCODING, which are kept even when Connection names them. */
enum header_kind {
    H_OTHER, H_HOP_BY_HOP, H_UPGRADE, H_CONNECTION, H_HOST, H_CONTENT_LENGTH, H_TRANSFER_ENCODING,
    H_TOKEN, H_FORWARDED_FOR, H_FORWARDED_PROTO, H_CLIENT_ADDRESS
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
    /* llhttp would stop at the end of an upgrade request; the proxy decides whether it really
     * switches (only on the backend's 101), so the request is parsed as plain HTTP and the
     * wish is only noted. CONNECT keeps llhttp's flag: it is refused anyway. */
    if (p->method != HTTP_CONNECT) {
        m->upgrade = p->upgrade;
        p->upgrade = 0;
    }
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

/* The last chunk of a request body: pausing here tells the caller where the trailer section
 * starts, so it can drop it (trailer fields are never forwarded). */
static int on_request_chunk_header(llhttp_t *p)
{
    if (p->content_length != 0)
        return 0;
    ((struct http_msg *)p)->event = HTTP_LAST_CHUNK;
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
    request_settings.on_chunk_header = on_request_chunk_header;
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
    m->upgrade = 0;
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

static int name_is(const struct http_line *l, const char *lowercase)
{
    return strncasecmp(l->name, lowercase, l->name_len) == 0;
}

/* Told apart by length first: most lines are compared with one known name at most. */
static enum header_kind classify(const struct http_line *l)
{
    switch (l->name_len) {
    case 2: return name_is(l, "te") ? H_HOP_BY_HOP : H_OTHER;
    case 4: return name_is(l, "host") ? H_HOST : H_OTHER;
    case 7: return name_is(l, "upgrade") ? H_UPGRADE : H_OTHER;
    case 9:
        /* Client-supplied addresses a backend may believe: the proxy owns them as it owns X-Forwarded-For. */
        return name_is(l, "forwarded") || name_is(l, "x-real-ip") ? H_CLIENT_ADDRESS : H_OTHER;
    case 10:
        if (name_is(l, "connection"))
            return H_CONNECTION;
        return name_is(l, "keep-alive") ? H_HOP_BY_HOP : H_OTHER;
    case 12: return name_is(l, "x-auth-token") ? H_TOKEN : H_OTHER;
    case 14: return name_is(l, "content-length") ? H_CONTENT_LENGTH : H_OTHER;
    case 15: return name_is(l, "x-forwarded-for") ? H_FORWARDED_FOR : H_OTHER;
    case 16: return name_is(l, "proxy-connection") ? H_HOP_BY_HOP : H_OTHER;
    case 17:
        if (name_is(l, "transfer-encoding"))
            return H_TRANSFER_ENCODING;
        return name_is(l, "x-forwarded-proto") ? H_FORWARDED_PROTO : H_OTHER;
    case 18: return name_is(l, "proxy-authenticate") ? H_HOP_BY_HOP : H_OTHER;
    case 19: return name_is(l, "proxy-authorization") ? H_HOP_BY_HOP : H_OTHER;
    default: return H_OTHER;
    }
}

/* Splits the next header line starting at *pos; returns 0 at the empty line ending the head.
 * A line ended by a bare LF sets *bare_lf: llhttp lets one through at the end of the head. */
static int next_line(const char *head, size_t len, size_t *pos, struct http_line *l, int *bare_lf)
{
    const char *p = head + *pos, *end = head + len;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return 0;
    int crlf = nl > p && nl[-1] == '\r';
    const char *eol = crlf ? nl - 1 : nl;
    *pos = (size_t)(nl + 1 - head);
    if (!crlf)
        *bare_lf = 1;
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
    /* "Name: value\r\n" exactly, so the line can be forwarded as it is. */
    l->canonical = colon + 2 == v && colon[1] == ' ' && ve == eol && eol + 1 == nl;
    l->kind = (int)classify(l);
    return 1;
}

/* An obs-fold continuation (a line starting with white space) is refused, not unfolded. */
static int folded(const struct http_line *l)
{
    return l->name_len == 0 || l->name[0] == ' ' || l->name[0] == '\t';
}

/* Characters of a Host value (RFC 3986 3.2.2): HOST_REG for reg-name and IPv4 (unreserved,
 * pct-encoded, sub-delims), HOST_LITERAL inside an IP-literal's brackets, HOST_DIGIT for the
 * port. A table, because the check runs on every request. */
enum { HOST_REG = 1, HOST_LITERAL = 2, HOST_DIGIT = 4 };
static const unsigned char host_chars[256] = {
    ['0' ... '9'] = HOST_REG | HOST_LITERAL | HOST_DIGIT,
    ['a' ... 'f'] = HOST_REG | HOST_LITERAL, ['A' ... 'F'] = HOST_REG | HOST_LITERAL,
    ['g' ... 'z'] = HOST_REG, ['G' ... 'Z'] = HOST_REG,
    ['.'] = HOST_REG | HOST_LITERAL, [':'] = HOST_LITERAL,
    ['-'] = HOST_REG, ['_'] = HOST_REG, ['~'] = HOST_REG, ['%'] = HOST_REG, ['!'] = HOST_REG,
    ['$'] = HOST_REG, ['&'] = HOST_REG, ['\''] = HOST_REG, ['('] = HOST_REG, [')'] = HOST_REG,
    ['*'] = HOST_REG, ['+'] = HOST_REG, [','] = HOST_REG, [';'] = HOST_REG, ['='] = HOST_REG,
};

static int host_char_is(char c, int class) { return (host_chars[(unsigned char)c] & class) != 0; }

/* Host = uri-host [ ":" port ] (RFC 9112 3.2, RFC 3986 3.2.2): anything else (white space,
 * userinfo, a path) would let a backend see a different authority than the proxy did. */
static int host_value_valid(const char *v, size_t len)
{
    size_t i = 0;
    if (len > 0 && v[0] == '[') {
        for (i = 1; i < len && v[i] != ']'; i++)
            if (!host_char_is(v[i], HOST_LITERAL))
                return 0;
        if (i == len || i == 1)
            return 0;
        i++;
    } else {
        while (i < len && v[i] != ':') {
            if (!host_char_is(v[i], HOST_REG))
                return 0;
            i++;
        }
    }
    if (i == len)
        return 1;
    if (v[i] != ':' || len - i - 1 > 5)
        return 0;
    for (i++; i < len; i++)
        if (!host_char_is(v[i], HOST_DIGIT))
            return 0;
    return 1;
}

/* The next comma-separated element of [*p, end) (white space around it trimmed, empty ones
 * skipped) into *t and *len; 0 when there is none left. */
static int next_element(const char **p, const char *end, const char **t, size_t *len)
{
    for (;;) {
        while (*p < end && (**p == ' ' || **p == '\t' || **p == ','))
            (*p)++;
        if (*p == end)
            return 0;
        const char *start = *p;
        while (*p < end && **p != ',')
            (*p)++;
        const char *stop = *p;
        while (stop > start && (stop[-1] == ' ' || stop[-1] == '\t'))
            stop--;
        if (stop > start) {
            *t = start;
            *len = (size_t)(stop - start);
            return 1;
        }
    }
}

/* Calls `fn` with each element of the lists in the head's lines of `kind` until it returns
 * non-zero, which is then returned; 0 when none did. Lists are read in place, so none is ever
 * cut short. */
static int each_list_element(const struct head_scan *h, int kind, int (*fn)(const char *, size_t, const void *),
                             const void *arg)
{
    for (int i = 0; i < h->count; i++) {
        const struct http_line *l = &h->lines[i];
        if (l->kind != kind)
            continue;
        const char *p = l->value, *t;
        size_t len;
        while (next_element(&p, l->value + l->value_len, &t, &len)) {
            int r = fn(t, len, arg);
            if (r)
                return r;
        }
    }
    return 0;
}

/* Reads the names the Connection lines list into h->listed, once for the whole head. */
static void list_connection_names(struct head_scan *h)
{
    h->nlisted = 0;
    for (int i = 0; i < h->count && h->nlisted >= 0; i++) {
        const struct http_line *l = &h->lines[i];
        if (l->kind != H_CONNECTION)
            continue;
        const char *p = l->value, *t;
        size_t len;
        while (h->nlisted >= 0 && next_element(&p, l->value + l->value_len, &t, &len)) {
            if (h->nlisted == CONNECTION_NAMES) {
                h->nlisted = -1;
                break;
            }
            h->listed[h->nlisted].name = t;
            h->listed[h->nlisted].len = len;
            h->nlisted++;
        }
    }
}

/* Notes what the line means for the head as a whole. */
static void note_line(struct head_scan *h, const struct http_line *l)
{
    if (folded(l))
        h->malformed = 1; /* refused; the token check still sees every line */
    switch (l->kind) {
    case H_CONNECTION:
        h->connections++;
        break;
    case H_HOST:
        h->hosts++;
        if (!host_value_valid(l->value, l->value_len))
            h->host_valid = 0;
        break;
    case H_TRANSFER_ENCODING:
        h->transfer_encoding++;
        break;
    default:
        break;
    }
}

/* One pass over the head: its header lines into `lines`, and what they say of the whole. */
static void scan_head(const char *head, size_t len, struct head_scan *h)
{
    int bare_lf = 0;
    h->head = head;
    h->lines = lines;
    h->count = 0;
    h->malformed = 0;
    h->connections = h->hosts = h->transfer_encoding = 0;
    h->host_valid = 1;
    const char *nl = memchr(head, '\n', len);
    size_t pos = nl ? (size_t)(nl + 1 - head) : len;
    h->first_line_len = pos;
    if (nl && (nl == head || nl[-1] != '\r'))
        bare_lf = 1;
    for (;;) {
        if (h->count == MAX_LINES) {
            h->malformed = 1;
            return;
        }
        struct http_line *l = &lines[h->count];
        if (!next_line(head, len, &pos, l, &bare_lf))
            break;
        note_line(h, l);
        h->count++;
    }
    if (bare_lf)
        h->malformed = 1;
    if (h->connections)
        list_connection_names(h);
}

void http_scan_request(const char *head, size_t len, struct request_info *info)
{
    info->token = NULL;
    info->token_len = 0;
    info->token_count = 0;
    info->path = NULL;
    info->path_len = 0;
    /* The target is looked for in the request line only: a line without a version (HTTP/0.9)
     * has none, rather than one that runs on into the headers. */
    const char *nl = memchr(head, '\n', len);
    size_t line = nl ? (size_t)(nl - head) : len;
    const char *sp = memchr(head, ' ', line);
    if (sp) {
        const char *path = sp + 1;
        const char *sp2 = memchr(path, ' ', line - (size_t)(path - head));
        info->path = path;
        info->path_len = sp2 ? (size_t)(sp2 - path) : 0;
    }
    scan_head(head, len, &info->scan);
    for (int i = 0; i < info->scan.count; i++) {
        if (lines[i].kind == H_TOKEN) {
            info->token = lines[i].value;
            info->token_len = lines[i].value_len;
            info->token_count++;
        }
    }
}

static int names_line(const char *name, size_t len, const void *arg)
{
    const struct http_line *l = arg;
    return l->name_len == len && strncasecmp(l->name, name, len) == 0;
}

/* Hop-by-hop: the fixed list, Connection itself, and every name Connection lists (RFC 9110
 * 7.6.1), framing headers excepted: the body is forwarded with its own framing. Upgrade is
 * kept for a protocol switch (the caller then sends its own `Connection: upgrade`). */
static int is_hop_by_hop(const struct http_line *l, const struct head_scan *h, int keep_upgrade)
{
    if (l->kind >= H_HOP_BY_HOP && l->kind <= H_CONNECTION)
        return !(keep_upgrade && l->kind == H_UPGRADE);
    if (l->kind >= H_HOST && l->kind <= H_TRANSFER_ENCODING)
        return 0;
    if (!h->connections)
        return 0;
    if (h->nlisted < 0)
        return each_list_element(h, H_CONNECTION, names_line, l);
    for (int i = 0; i < h->nlisted; i++)
        if (names_line(h->listed[i].name, h->listed[i].len, l))
            return 1;
    return 0;
}

/* Non-zero for a protocol not in the comma-separated list `arg` ("name" or "name/version"). */
static int protocol_not_allowed(const char *proto, size_t len, const void *arg)
{
    const char *slash = memchr(proto, '/', len);
    size_t name_len = slash ? (size_t)(slash - proto) : len;
    for (const char *a = arg; *a;) {
        const char *comma = strchr(a, ',');
        size_t n = comma ? (size_t)(comma - a) : strlen(a);
        if (n == name_len && strncasecmp(a, proto, n) == 0)
            return 0;
        a += n + (comma != NULL);
    }
    return 1;
}

static int any_element(const char *e, size_t len, const void *arg)
{
    (void)e;
    (void)arg;
    return len > 0;
}

int http_upgrade_allowed(const struct head_scan *h, const char *allowed)
{
    return each_list_element(h, H_UPGRADE, any_element, NULL) &&
           !each_list_element(h, H_UPGRADE, protocol_not_allowed, allowed);
}

struct out {
    char *p;
    size_t len, cap;
    int overflow;
    const char *run; /* kept lines still to copy: [run, run + run_len) of the input */
    size_t run_len;
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

static void flush_run(struct out *o)
{
    if (o->run_len)
        put(o, o->run, o->run_len);
    o->run_len = 0;
}

/* Canonical lines are copied as they are, adjacent ones in a single copy; others are written
 * out normalised as "Name: value\r\n". */
static void put_header(struct out *o, const struct http_line *l)
{
    if (l->canonical) {
        size_t n = (size_t)(l->value - l->name) + l->value_len + 2;
        if (o->run_len && o->run + o->run_len == l->name) {
            o->run_len += n;
            return;
        }
        flush_run(o);
        o->run = l->name;
        o->run_len = n;
        return;
    }
    flush_run(o);
    put(o, l->name, l->name_len);
    put(o, ": ", 2);
    put(o, l->value, l->value_len);
    put(o, "\r\n", 2);
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

static void put_forwarded_for(struct out *o, const struct head_scan *h, const struct rewrite *rw)
{
    put_str(o, "X-Forwarded-For: ");
    if (rw->trusted) {
        for (int i = 0; i < h->count; i++) {
            if (h->lines[i].kind == H_FORWARDED_FOR && h->lines[i].value_len) {
                put(o, h->lines[i].value, h->lines[i].value_len);
                put(o, ", ", 2);
            }
        }
    }
    put_str(o, rw->client_ip);
    put(o, "\r\n", 2);
}

long http_rewrite_scanned_request(const struct request_info *info, char *data, size_t head_len, size_t body_len,
                                  size_t cap, const struct rewrite *rw)
{
    const struct head_scan *h = &info->scan;
    struct out o = {.p = scratch, .len = 0, .cap = scratch_cap, .overflow = 0};
    int kept_proto = 0;
    if (h->malformed || h->head != data)
        return HTTP_REWRITE_MALFORMED;
    put(&o, data, h->first_line_len);
    for (int i = 0; i < h->count; i++) {
        const struct http_line *l = &h->lines[i];
        if (is_hop_by_hop(l, h, rw->upgrade) || l->kind == H_TOKEN || l->kind == H_FORWARDED_FOR)
            continue;
        /* Backends that map '_' to '-' (CGI, PHP, ...) would see a client-chosen X-Auth-Token
         * or framing header in X_Auth_Token or Transfer_Encoding: such names are dropped (as
         * nginx does by default). */
        if (!rw->keep_underscores && memchr(l->name, '_', l->name_len))
            continue;
        if (l->kind == H_CLIENT_ADDRESS && !rw->trusted)
            continue;
        if (l->kind == H_FORWARDED_PROTO) {
            /* A trusted proxy knows the scheme the client really used; keep its first value. */
            if (!rw->trusted || kept_proto)
                continue;
            kept_proto = 1;
        }
        put_header(&o, l);
    }
    flush_run(&o);
    put_forwarded_for(&o, h, rw);
    if (!kept_proto)
        put_str(&o, rw->https ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
    if (rw->upgrade)
        put_str(&o, "Connection: upgrade\r\n");
    else if (rw->add_keep_alive)
        put_str(&o, "Connection: keep-alive\r\n");
    put(&o, "\r\n", 2);
    return commit(&o, data, head_len, body_len, cap);
}

long http_rewrite_request(char *data, size_t head_len, size_t body_len, size_t cap, const struct rewrite *rw)
{
    struct request_info info;
    http_scan_request(data, head_len, &info);
    return http_rewrite_scanned_request(&info, data, head_len, body_len, cap, rw);
}

long http_rewrite_response(char *data, size_t head_len, size_t body_len, size_t cap, const struct rewrite *rw)
{
    struct out o = {.p = scratch, .len = 0, .cap = scratch_cap, .overflow = 0};
    struct head_scan h;
    scan_head(data, head_len, &h);
    if (h.malformed)
        return HTTP_REWRITE_MALFORMED;
    put(&o, data, h.first_line_len);
    for (int i = 0; i < h.count; i++)
        if (!is_hop_by_hop(&h.lines[i], &h, rw->upgrade))
            put_header(&o, &h.lines[i]);
    flush_run(&o);
    if (rw->upgrade)
        put_str(&o, "Connection: upgrade\r\n");
    else if (rw->add_close)
        put_str(&o, "Connection: close\r\n");
    else if (rw->add_keep_alive)
        put_str(&o, "Connection: keep-alive\r\n");
    put(&o, "\r\n", 2);
    return commit(&o, data, head_len, body_len, cap);
}

/* The Host value without its port (an IP-literal keeps its brackets). */
static size_t host_name_len(const char *v, size_t len)
{
    if (len > 0 && v[0] == '[') {
        const char *close = memchr(v, ']', len);
        return close ? (size_t)(close - v) + 1 : len;
    }
    const char *colon = memchr(v, ':', len);
    return colon ? (size_t)(colon - v) : len;
}

size_t http_https_redirect(const char *head, size_t len, unsigned https_port, char *out, size_t cap)
{
    struct request_info info;
    http_scan_request(head, len, &info);
    const struct head_scan *h = &info.scan;
    if (h->malformed || h->hosts != 1 || !h->host_valid || info.path_len == 0 || info.path[0] != '/')
        return 0;
    const struct http_line *host = NULL;
    for (int i = 0; i < h->count && !host; i++)
        if (h->lines[i].kind == H_HOST)
            host = &h->lines[i];
    size_t name = host_name_len(host->value, host->value_len);
    if (name == 0)
        return 0;
    char port[8] = "";
    if (https_port != 443)
        snprintf(port, sizeof port, ":%u", https_port);
    int n = snprintf(out, cap,
                     "HTTP/1.1 308 Permanent Redirect\r\nLocation: https://%.*s%s%.*s\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n",
                     (int)name, host->value, port, (int)info.path_len, info.path);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}
