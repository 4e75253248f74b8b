#include "request.h"

#include <string.h>

/* Any non-zero return from a callback stops llhttp with an error; -1 is valid for all of them. */
#define STOP (-1)

static int fail(struct request *r, int status)
{
    r->state = REQUEST_ERROR;
    r->error = status;
    return STOP;
}

/* Keeps the path: the URL up to '?' (or '#'), so `/?x` is routed as `/`. llhttp may hand the
 * URL over in pieces (a head split across reads), hence the appending. */
static int on_url(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = (struct request *)p;

    for (size_t i = 0; i < len && !r->path_ended; i++) {
        if (at[i] == '?' || at[i] == '#')
            r->path_ended = 1;
        else if (r->path_len < REQUEST_PATH_MAX)
            r->path[r->path_len++] = at[i];
        else
            r->path_truncated = 1;
    }
    r->path[r->path_len] = '\0';
    return 0;
}

static int on_headers_complete(llhttp_t *p)
{
    struct request *r = (struct request *)p;

    r->head_done = 1;
    r->head_method = p->method == HTTP_HEAD;
    /* llhttp would stop at an upgrade request and hand the connection over. This server only
     * speaks HTTP/1.1, and a server may ignore Upgrade (RFC 9110 7.8): parse on as usual.
     * CONNECT cannot be ignored that way: it is answered, then the connection closed. */
    if (p->method != HTTP_CONNECT)
        p->upgrade = 0;
    r->keep_alive = llhttp_should_keep_alive(p) && p->method != HTTP_CONNECT;
    /* Refused before its first byte is read rather than after a megabyte of it. */
    if ((p->flags & F_CONTENT_LENGTH) && p->content_length > REQUEST_BODY_MAX)
        return fail(r, 413);
    return 0;
}

/* Body bytes (chunked ones already decoded by llhttp) are not used: only counted. */
static int on_body(llhttp_t *p, const char *at, size_t len)
{
    struct request *r = (struct request *)p;

    (void)at;
    r->body_bytes += len;
    return r->body_bytes > REQUEST_BODY_MAX ? fail(r, 413) : 0;
}

/* Pausing here leaves the next pipelined request unparsed until this one is answered. */
static int on_message_complete(llhttp_t *p)
{
    ((struct request *)p)->state = REQUEST_READY;
    return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

static void reset_message(struct request *r)
{
    r->state = REQUEST_MORE;
    r->error = 0;
    r->head_done = 0;
    r->keep_alive = 0;
    r->head_method = 0;
    r->head_bytes = 0;
    r->body_bytes = 0;
    r->path_len = 0;
    r->path_truncated = 0;
    r->path_ended = 0;
    r->path[0] = '\0';
}

void request_init(struct request *r)
{
    /* Strict mode is compiled in (LLHTTP_STRICT_MODE); no lenient flag is ever set. */
    llhttp_init(&r->parser, HTTP_REQUEST, &settings);
    reset_message(r);
}

void request_next(struct request *r)
{
    reset_message(r);
    llhttp_resume(&r->parser);
}

/* One llhttp_execute(); returns the bytes it used. */
static size_t execute(struct request *r, const char *data, size_t len)
{
    llhttp_errno_t rc = llhttp_execute(&r->parser, data, len);

    if (rc == HPE_OK)
        return len;
    if (rc == HPE_PAUSED && r->state == REQUEST_READY)
        return (size_t)(llhttp_get_error_pos(&r->parser) - data);
    /* llhttp's own errors (bad syntax or framing, e.g. Content-Length with Transfer-Encoding,
     * a bad chunk size) are 400; ours set their status already. */
    if (r->state != REQUEST_ERROR)
        fail(r, 400);
    return len;
}

size_t request_parse(struct request *r, const char *data, size_t len)
{
    size_t used = 0;

    while (used < len && r->state == REQUEST_MORE) {
        size_t n = len - used;
        size_t took;

        /* While in a head, feed only what it may still grow by, so an endless head is
         * refused at REQUEST_HEAD_MAX bytes whatever the reads look like. */
        if (!r->head_done && n > REQUEST_HEAD_MAX - r->head_bytes)
            n = REQUEST_HEAD_MAX - r->head_bytes;
        took = execute(r, data + used, n);
        used += took;
        if (!r->head_done && r->state == REQUEST_MORE) {
            r->head_bytes += took;
            if (r->head_bytes >= REQUEST_HEAD_MAX)
                fail(r, 431);
        }
    }
    return used;
}

int request_path_is(const struct request *r, const char *path)
{
    return !r->path_truncated && strcmp(r->path, path) == 0;
}
