/* SHA-256 (FIPS 180-4), small and dependency-free so the proxy links statically and inside a
 * unikernel without OpenSSL. */
#ifndef UPROXY_SHA256_H
#define UPROXY_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

struct sha256 {
    uint32_t h[8];
    uint64_t total;
    uint8_t block[64];
    size_t used;
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
void sha256_final(struct sha256 *s, uint8_t out[SHA256_LEN]);
void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);

/* Compares two digests in time independent of where they differ. */
int sha256_equal(const uint8_t a[SHA256_LEN], const uint8_t b[SHA256_LEN]);

/* Parses 64 hex digits; returns 0 on success, -1 otherwise. */
int sha256_from_hex(const char *hex, size_t len, uint8_t out[SHA256_LEN]);

#endif
