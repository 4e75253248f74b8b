/*
 * The backend's request parsing: llhttp (strict mode, never lenient) frames every request,
 * so a body's bytes (Content-Length or chunked) are always the parser's to skip and can never
 * be taken for the next request. server.c only feeds bytes in and answers what comes out.
 *
 * A connection's parser stops after each complete request (REQUEST_READY) so the response
 * goes out before the next pipelined request is looked at; request_next() lets it continue.
 * On REQUEST_ERROR the connection is answered with `error` and closed: after a framing error
 * nothing later on it can be trusted.
 */
#ifndef BACKEND_REQUEST_H
#define BACKEND_REQUEST_H

#include <llhttp.h>
#include <stddef.h>

/* A head (request line and headers) longer than this is answered 431. */
#define REQUEST_HEAD_MAX 8192
/* Bodies are read and dropped; one longer than this is answered 413. */
#define REQUEST_BODY_MAX (1024 * 1024)
/* The routes are short: a longer path is kept truncated (and so matches none of them). */
#define REQUEST_PATH_MAX 128

enum request_state { REQUEST_MORE, REQUEST_READY, REQUEST_ERROR };

struct request {
    llhttp_t parser; /* first member: llhttp's callbacks cast back to the request */
    enum request_state state;
    int error;       /* the status to answer on REQUEST_ERROR: 400, 413 or 431 */
    int head_done;   /* the current request's head is complete */
    int keep_alive;  /* when REQUEST_READY: the connection stays open after the response */
    int head_method; /* a HEAD request: the response has no body */
    size_t head_bytes;
    unsigned long long body_bytes;
    size_t path_len;
    int path_truncated; /* longer than path[] holds */
    int path_ended;     /* the query string (or fragment) began: later URL bytes are not path */
    char path[REQUEST_PATH_MAX + 1]; /* the request target up to '?', NUL-terminated */
};

void request_init(struct request *r);
/* Parses up to len bytes; returns how many it used. Stops early at the end of a request
 * (REQUEST_READY: the rest belongs to the next one) or at an error (REQUEST_ERROR). */
size_t request_parse(struct request *r, const char *data, size_t len);
/* After the response to a REQUEST_READY request: go on with the next one. */
void request_next(struct request *r);
/* 1 when the request's path (without the query string) is exactly `path`. */
int request_path_is(const struct request *r, const char *path);

#endif
