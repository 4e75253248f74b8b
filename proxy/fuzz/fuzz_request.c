/* libFuzzer harness over the proxy's request path: llhttp parse (strict) -> auth -> the plain
 * listener's 308 -> header rewrite into the forward buffer, then the same for a backend
 * response. The input is split at an input-chosen point so incremental parsing (a head arriving in two reads) is covered, and
 * buffers are exactly `cap` bytes so AddressSanitizer catches any write past them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"

#define MAX_HEADERS 100
#define CAP (16384 + 1024)

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    struct token_spec t;
    memset(&t, 0, sizeof t);
    strcpy(t.name, "fuzz");
    sha256("fuzz-token", 10, t.hash);
    auth_init(&t, 1);
    http_init(CAP);
}

/* Feeds data in two parts like two reads; returns bytes up to the end of the head, or 0. */
static size_t parse_head(struct http_msg *m, const char *data, size_t len, size_t split)
{
    size_t n, total = 0;
    if (m->parser.lenient_flags != 0)
        abort(); /* the proxy never runs llhttp leniently */
    enum http_progress r = http_execute(m, data, split, &n);
    total += n;
    if (r == HTTP_NEED_MORE) {
        r = http_execute(m, data + split, len - split, &n);
        total = split + n;
    }
    return r == HTTP_HEAD_DONE ? total : 0;
}

/* Parses the rest of the message, as the proxy does while forwarding a body. */
static void drain_body(struct http_msg *m, const char *data, size_t len)
{
    size_t n;
    while (len > 0) {
        enum http_progress r = http_execute(m, data, len, &n);
        if (r != HTTP_NEED_MORE && r != HTTP_MSG_DONE && r != HTTP_LAST_CHUNK)
            return;
        if ((n == 0 && r != HTTP_LAST_CHUNK) || r == HTTP_MSG_DONE)
            return;
        data += n;
        len -= n;
    }
}

static size_t lines_in(const char *p, size_t n, char c)
{
    size_t count = 0;
    for (size_t i = 0; i < n; i++)
        count += p[i] == c;
    return count;
}

static void request_path(const uint8_t *input, size_t size, size_t split)
{
    char *buf = malloc(CAP);
    memcpy(buf, input, size);
    struct http_msg m;
    http_msg_init(&m, HTTP_REQUEST, MAX_HEADERS);
    size_t head = parse_head(&m, buf, size, split);
    if (head) {
        struct request_info info;
        http_scan_request(buf, head, &info);
        if (info.token_count == 1)
            (void)auth_check(info.token, info.token_len);
        (void)http_upgrade_allowed(&info.scan, (size & 8) ? "websocket,h2c" : "websocket");
        char redirect[512];
        size_t r = http_https_redirect(buf, head, (size & 32) ? 443 : 8443, redirect, sizeof redirect);
        if (r && (lines_in(redirect, r, '\n') != 5 || lines_in(redirect, r, '\r') != 5 || memchr(redirect, '\0', r)))
            abort(); /* a Location that could carry a header of the client's making */
        http_scan_request(buf, head, &info);
        struct rewrite rw = {.client_ip = "127.0.0.1", .trusted = (size & 1) != 0, .add_keep_alive = (size & 2) != 0,
                             .upgrade = (size & 4) != 0, .keep_underscores = (size & 16) != 0};
        long n = http_rewrite_request(buf, head, size - head, CAP, &rw);
        if (n > 0)
            drain_body(&m, buf + n, size - head);
    }
    free(buf);
}

static void response_path(const uint8_t *input, size_t size, size_t split)
{
    char *buf = malloc(CAP);
    memcpy(buf, input, size);
    struct http_msg m;
    http_msg_init(&m, HTTP_RESPONSE, MAX_HEADERS);
    m.skip_body = (size & 4) != 0;
    size_t head = parse_head(&m, buf, size, split);
    if (head) {
        struct rewrite rw = {.client_ip = "127.0.0.1", .add_close = (size & 8) != 0, .upgrade = (size & 16) != 0};
        long n = http_rewrite_response(buf, head, size - head, CAP, &rw);
        if (n > 0)
            drain_body(&m, buf + n, size - head);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size < 2 || size > CAP - 1)
        return 0;
    size_t split = data[0] % (size - 1);
    request_path(data + 1, size - 1, split);
    response_path(data + 1, size - 1, split);
    return 0;
}
