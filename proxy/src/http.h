/* llhttp glue and head rewriting.
 *
 * Parsing: llhttp runs over a connection's buffer and pauses twice per message, after the
 * head and after the message, so the caller can act at exactly those boundaries. Bodies are
 * never decoded: their bytes (chunk framing included) are forwarded as received, and the
 * parser only tells where the message ends.
 *
 * Rewriting: once a head is complete it is scanned once (llhttp already validated it), and a
 * new head is composed in a scratch buffer without hop-by-hop headers, the client token and
 * untrusted X-Forwarded-*; it is then written back into the connection buffer in front of
 * the body bytes, so head and body leave in one send. */
#ifndef UPROXY_HTTP_H
#define UPROXY_HTTP_H

#include <llhttp.h>
#include <stddef.h>

struct http_msg {
    llhttp_t parser; /* first member: callbacks cast back from llhttp_t */
    unsigned headers;
    unsigned max_headers;
    int skip_body;   /* response to HEAD */
    int paused;
    int event;       /* HTTP_HEAD_DONE or HTTP_MSG_DONE when paused */
    int upgrade;     /* request head asked to switch protocols (Connection: upgrade + Upgrade) */
};

/* HTTP_LAST_CHUNK: a chunked request body's last chunk ended; what follows up to HTTP_MSG_DONE
 * is its trailer section, which the caller drops rather than forwards. */
enum http_progress { HTTP_NEED_MORE, HTTP_HEAD_DONE, HTTP_MSG_DONE, HTTP_LAST_CHUNK, HTTP_TOO_MANY_HEADERS, HTTP_ERROR };

void http_init(size_t scratch_cap);
void http_msg_init(struct http_msg *m, llhttp_type_t type, unsigned max_headers);
/* Parses data; *consumed is how many bytes belong to the current message part. */
enum http_progress http_execute(struct http_msg *m, const char *data, size_t len, size_t *consumed);
/* The response that ends on EOF (no length, not chunked) is complete once the peer closes. */
enum http_progress http_finish(struct http_msg *m);

struct http_line {
    const char *name, *value;
    size_t name_len, value_len;
    int canonical; /* exactly "Name: value\r\n" */
    int kind;      /* which header the proxy acts on, if any (http.c) */
};

#define CONNECTION_NAMES 8

/* A head split into lines once, so authentication and rewriting do not scan it again. The
 * lines live in http.c's table until the next scan. */
struct head_scan {
    const char *head;
    size_t first_line_len;
    const struct http_line *lines;
    int count;
    int malformed;   /* a folded line, a line (or the head) ended by a bare LF, or more lines than the table holds */
    int connections; /* Connection lines: the names they list are hop-by-hop too (RFC 9110 7.6.1) */
    /* Those names, read once per head while they fit here (nearly always: "keep-alive" or
     * "close"); -1 when there were more, and every line is then compared with the lists in place. */
    struct { const char *name; size_t len; } listed[CONNECTION_NAMES];
    int nlisted;
    int hosts;       /* Host lines */
    int host_valid;  /* every Host value is uri-host [ ":" port ] (RFC 9112 3.2) */
    int transfer_encoding; /* Transfer-Encoding lines */
};
struct request_info {
    const char *token; /* X-Auth-Token value inside the head, or NULL */
    size_t token_len;
    int token_count;
    const char *path;
    size_t path_len;
    struct head_scan scan;
};

void http_scan_request(const char *head, size_t len, struct request_info *info);
/* 1 when the head's Upgrade values name only protocols in the comma-separated `allowed` list
 * (case-insensitive; a "/version" suffix is ignored), and at least one. */
int http_upgrade_allowed(const struct head_scan *h, const char *allowed);

/* The 308 answer of the plain listener to the request head in `head` (llhttp found it complete
 * and valid): the same target on https:// at the Host's name and `https_port`, written into out
 * (at most cap bytes). Its length, or 0 when there is no valid Host to send the client to. */
size_t http_https_redirect(const char *head, size_t len, unsigned https_port, char *out, size_t cap);

struct rewrite {
    const char *client_ip;
    int trusted;        /* keep and extend incoming X-Forwarded-* */
    int add_keep_alive; /* HTTP/1.0 peer that should keep the connection */
    int add_close;      /* tell the peer this connection ends after this message */
    int upgrade;        /* keep Upgrade and send Connection: upgrade (a protocol switch) */
    int keep_underscores; /* forward header names containing '_' (dropped by default) */
    int https;            /* the client came over TLS: X-Forwarded-Proto is https */
};

#define HTTP_REWRITE_TOO_LARGE (-1)
#define HTTP_REWRITE_MALFORMED (-2)

/* Rewrites the head at the start of `data` (head_len bytes, followed by `body_len` more bytes)
 * in place. Returns the new head length, HTTP_REWRITE_TOO_LARGE when it would not fit in `cap`,
 * or HTTP_REWRITE_MALFORMED for a line llhttp lets through that we refuse (obs-fold).
 *
 * llhttp runs compiled in strict mode (LLHTTP_STRICT_MODE) and no lenient flag is ever set:
 * llhttp_init clears them and nothing here calls llhttp_set_lenient_*. */
long http_rewrite_request(char *data, size_t head_len, size_t body_len, size_t cap, const struct rewrite *rw);
/* The same for a head http_scan_request just scanned (no other head scanned since). */
long http_rewrite_scanned_request(const struct request_info *info, char *data, size_t head_len, size_t body_len,
                                  size_t cap, const struct rewrite *rw);
long http_rewrite_response(char *data, size_t head_len, size_t body_len, size_t cap, const struct rewrite *rw);

#endif
