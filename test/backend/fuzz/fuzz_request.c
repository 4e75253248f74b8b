/* libFuzzer harness for the default backend's request parsing (templates/backend/src/request.c),
 * driven the way server.c drives it: the input (after 4 bytes that choose two cut points) is
 * one connection's bytes, parsed request after request until an error or a request that
 * closes the connection.
 *
 * It is parsed twice: in one piece, and in three pieces cut at the chosen points, as reads
 * could deliver it. Where a read ends must never change where a request ends, so both runs
 * must see the same requests (path, keep-alive, HEAD) and end the same way; any difference
 * aborts. Each piece sits in a buffer of exactly its size, so AddressSanitizer catches a read
 * past it, and the path is checked to stay within its bound and NUL-terminated. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"

/* More than a head and a body cap: inputs past it say nothing new. */
#define MAX_INPUT (64 * 1024)

struct outcome {
    uint64_t digest; /* FNV-1a over every request seen and the ending */
    unsigned requests;
};

static void mix(struct outcome *o, const void *data, size_t len)
{
    const unsigned char *p = data;

    for (size_t i = 0; i < len; i++)
        o->digest = (o->digest ^ p[i]) * 1099511628211ULL;
}

static void check_path(const struct request *r)
{
    if (r->path_len > REQUEST_PATH_MAX || r->path[r->path_len] != '\0' || strlen(r->path) != r->path_len)
        abort();
}

static void record_request(struct outcome *o, const struct request *r)
{
    int flags[3] = {r->keep_alive, r->head_method, r->path_truncated};

    check_path(r);
    o->requests++;
    mix(o, r->path, r->path_len + 1);
    mix(o, flags, sizeof(flags));
}

/* Parses one piece as server.c would; returns 0 once the connection would be closed. */
static int feed(struct request *r, struct outcome *o, const char *piece, size_t len)
{
    size_t at = 0;

    while (at < len) {
        at += request_parse(r, piece + at, len - at);
        if (r->state == REQUEST_MORE) {
            if (at != len)
                abort(); /* server.c relies on the parser taking all it does not stop at */
            return 1;
        }
        if (r->state == REQUEST_ERROR) {
            if (r->error != 400 && r->error != 413 && r->error != 431)
                abort();
            mix(o, &r->error, sizeof(r->error));
            return 0;
        }
        record_request(o, r);
        if (!r->keep_alive)
            return 0;
        request_next(r);
    }
    return 1;
}

static struct outcome run(const char *data, size_t len, const size_t *cuts, size_t ncuts)
{
    struct outcome o = {.digest = 14695981039346656037ULL, .requests = 0};
    struct request r;
    size_t start = 0;

    request_init(&r);
    for (size_t k = 0; k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        char *piece = malloc(end - start + 1);
        int open;

        memcpy(piece, data + start, end - start);
        open = feed(&r, &o, piece, end - start);
        free(piece);
        if (!open)
            return o;
        start = end;
    }
    mix(&o, "open", 4); /* still waiting for more: a request cut short is not one */
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size)
{
    size_t cuts[2];
    size_t len;
    struct outcome whole, pieces;

    if (size < 4 || size - 4 > MAX_INPUT)
        return 0;
    len = size - 4;
    cuts[0] = ((size_t)input[0] << 8 | input[1]) % (len + 1);
    cuts[1] = ((size_t)input[2] << 8 | input[3]) % (len + 1);
    if (cuts[0] > cuts[1]) {
        size_t t = cuts[0];
        cuts[0] = cuts[1];
        cuts[1] = t;
    }
    whole = run((const char *)input + 4, len, NULL, 0);
    pieces = run((const char *)input + 4, len, cuts, 2);
    if (whole.digest != pieces.digest || whole.requests != pieces.requests)
        abort();
    return 0;
}
