/* SHA-256 of tokens, through OpenSSL, which every build of the proxy links for TLS (the host,
 * the static VM binary and the Unikraft kernel alike). */
#ifndef UPROXY_SHA256_H
#define UPROXY_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_LEN 32

void sha256(const void *data, size_t len, uint8_t out[SHA256_LEN]);

/* The digest of everything read from `fd` until end of file; 0, or -1 with errno set. */
int sha256_fd(int fd, uint8_t out[SHA256_LEN]);

/* Compares two digests in time independent of where they differ. */
int sha256_equal(const uint8_t a[SHA256_LEN], const uint8_t b[SHA256_LEN]);

/* Parses 64 hex digits; returns 0 on success, -1 otherwise. */
int sha256_from_hex(const char *hex, size_t len, uint8_t out[SHA256_LEN]);

#endif
