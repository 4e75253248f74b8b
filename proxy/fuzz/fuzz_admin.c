/* libFuzzer harness over the admin listener's request path: llhttp parse (strict) of the head
 * and its Content-Length body, the Authorization verdict, the POST /backends body read into
 * a backend with every rule of where a backend may be, the PUT /tokens/NAME body read into
 * a token, and the ACME routes' tokens, key authorizations and names through the challenge
 * store. The raw input also goes to the readers of the ClientHello's ALPN and server_name
 * extensions that pick a tls-alpn-01 challenge: bytes from anyone, like the rest. Nothing here
 * opens a socket. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acme.h"
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

/* PUT /acme/http-01/TOKEN as admin_acme.c takes it: a key authorization admitted is
 * "TOKEN." and a thumbprint, and the store gives back exactly those bytes for that token. */
static void fuzz_http01(const char *token, size_t token_len, const char *body, size_t len)
{
    const char *why;
    size_t key_len = acme_token_valid(token, token_len) ? acme_key_authorization(token, token_len, body, len, &why) : 0;
    if (key_len == 0)
        return;
    if (key_len > ACME_KEY_AUTH_MAX || key_len > len || body[token_len] != '.' ||
        !acme_token_valid(body + token_len + 1, key_len - token_len - 1) || acme_http01_put(token, token_len, body, key_len) != 1)
        abort();
    size_t found_len = 0;
    const char *found = acme_http01_find(token, token_len, &found_len);
    if (!found || found_len != key_len || memcmp(found, body, key_len) != 0 || acme_http01_remove(token, token_len) != 0 ||
        acme_http01_find(token, token_len, &found_len))
        abort();
}

/* A tls-alpn-01 name admitted is a DNS name (it reaches the logs and the JSON unescaped). */
static void fuzz_name(const char *name, size_t len)
{
    if (!acme_name_valid(name, len))
        return;
    if (len > ACME_NAME_MAX || name[0] == '.' || name[len - 1] == '.' || memmem(name, len, "..", 2))
        abort();
    static const char dns[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-";
    for (size_t i = 0; i < len; i++)
        if (!memchr(dns, name[i], sizeof dns - 1))
            abort();
}

static void fuzz_acme(const struct request_info *info, const char *body, size_t len)
{
    static const char http01[] = "/acme/http-01/", tls_alpn01[] = "/acme/tls-alpn-01/";
    if (info->path_len >= sizeof http01 - 1 && memcmp(info->path, http01, sizeof http01 - 1) == 0)
        fuzz_http01(info->path + sizeof http01 - 1, info->path_len - (sizeof http01 - 1), body, len);
    if (info->path_len >= sizeof tls_alpn01 - 1 && memcmp(info->path, tls_alpn01, sizeof tls_alpn01 - 1) == 0)
        fuzz_name(info->path + sizeof tls_alpn01 - 1, info->path_len - (sizeof tls_alpn01 - 1));
}

/* The ClientHello readers stay inside the extension, and a name they find is a valid one. */
static void fuzz_client_hello(const uint8_t *data, size_t size)
{
    (void)acme_alpn_offers_challenge(data, size);
    const char *name;
    size_t len;
    if (acme_server_name(data, size, &name, &len) == 0) {
        if ((const uint8_t *)name < data || (const uint8_t *)name + len > data + size)
            abort();
        fuzz_name(name, len);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size > ADMIN_IN)
        return 0;
    fuzz_client_hello(data, size);
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
        fuzz_acme(&info, in + head, body);
    }
    free(in);
    return 0;
}
