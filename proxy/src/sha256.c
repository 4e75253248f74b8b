#include "sha256.h"

#include <errno.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN])
{
    SHA256(data, len, out);
}

int sha256_fd(int fd, uint8_t out[SHA256_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    unsigned char chunk[4096];
    while (ok) {
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            ok = n == 0 && EVP_DigestFinal_ex(ctx, out, NULL) == 1;
            break;
        }
        ok = EVP_DigestUpdate(ctx, chunk, (size_t)n) == 1;
    }
    int saved = errno;
    EVP_MD_CTX_free(ctx);
    errno = saved;
    return ok ? 0 : -1;
}

int sha256_equal(const uint8_t a[SHA256_LEN], const uint8_t b[SHA256_LEN])
{
    return CRYPTO_memcmp(a, b, SHA256_LEN) == 0;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int sha256_from_hex(const char *hex, size_t len, uint8_t out[SHA256_LEN])
{
    if (len != 2 * SHA256_LEN)
        return -1;
    for (size_t i = 0; i < SHA256_LEN; i++) {
        int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}
