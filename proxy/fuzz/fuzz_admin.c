/* libFuzzer harness over the admin listener's request path: llhttp parse (strict) of the head
 * and its Content-Length body, the Authorization verdict, the POST /backends body read into
 * a backend with every rule of where a backend may be, and the PUT /tokens/NAME body read into
 * a token. Nothing here opens a socket. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_request.h"
#include "http.h"

#define ADMIN_IN 4096
#define MAX_HEADERS 100

static struct config cfg;

static void init_once(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    char hash[SHA256_LEN * 2 + 1];
    uint8_t digest[SHA256_LEN];
    sha256("fuzz-admin", 10, digest);
    for (int i = 0; i < SHA256_LEN; i++) {
        hash[2 * i] = "0123456789abcdef"[digest[i] >> 4];
        hash[2 * i + 1] = "0123456789abcdef"[digest[i] & 15];
    }
    hash[SHA256_LEN * 2] = '\0';
    char token[80 + SHA256_LEN * 2];
    strcpy(token, "t:");
    strcat(token, hash);
    char *argv[] = {"fuzz", "--listen", "127.0.0.1:8080", "--admin", "127.0.0.1:8081", "--admin-token-sha256", hash,
                    "--backend", "a=127.0.0.1:9000", "--token", token, "--backend-network", "127.0.0.0/8"};
    enum config_action action;
    char err[300];
    if (config_parse_argv(&cfg, sizeof argv / sizeof argv[0], argv, &action, err, sizeof err) < 0)
        abort();
    http_init(ADMIN_IN);
}

/* The name comes from the path, as the listener takes it; an admitted token must be one
 * --token would take too. */
static void fuzz_token(const struct request_info *info, const char *body, size_t len)
{
    const char *name = "t";
    size_t name_len = 1;
    if (info->path_len > 8 && memcmp(info->path, "/tokens/", 8) == 0) {
        name = info->path + 8;
        name_len = info->path_len - 8;
    }
    struct token_spec spec, again;
    char err[400], text[NAME_MAX_LEN + 100];
    if (admin_parse_token(name, name_len, body, len, &spec, err, sizeof err) < 0)
        return;
    int n = snprintf(text, sizeof text, "%s:", spec.name);
    for (int i = 0; i < SHA256_LEN; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%02x", spec.hash[i]);
    if (spec.expires)
        snprintf(text + n, sizeof text - (size_t)n, ":%lld", (long long)spec.expires);
    if (config_parse_token(text, &again, err, sizeof err) < 0 || memcmp(&spec, &again, sizeof spec) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size > ADMIN_IN)
        return 0;
    char *in = malloc(size ? size : 1);
    memcpy(in, data, size);
    struct http_msg m;
    size_t head;
    http_msg_init(&m, HTTP_REQUEST, MAX_HEADERS);
    if (http_execute(&m, in, size, &head) == HTTP_HEAD_DONE) {
        struct request_info info;
        http_scan_request(in, head, &info);
        (void)admin_authorize(in, head, cfg.admin_hash);
        size_t body = m.parser.content_length <= size - head ? (size_t)m.parser.content_length : size - head;
        struct backend_spec spec;
        char err[400];
        if (admin_parse_backend(in + head, body, &cfg, &spec, err, sizeof err) == 0 &&
            config_backend_refused(&cfg, &spec.addr) != NULL)
            abort(); /* a backend admitted where the rules say none may be */
        fuzz_token(&info, in + head, body);
    }
    free(in);
    return 0;
}
