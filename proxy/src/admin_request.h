/* The parts of an admin request that need no socket and no live state: who may ask, and the
 * backend a POST /backends or the token a PUT /tokens/NAME describes. Pure, so the fuzzer drives them as the listener does. */
#ifndef UPROXY_ADMIN_REQUEST_H
#define UPROXY_ADMIN_REQUEST_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "sha256.h"

enum admin_auth { ADMIN_AUTH_OK, ADMIN_AUTH_MISSING, ADMIN_AUTH_INVALID, ADMIN_AUTH_DUPLICATE };

/* The verdict on the head's `Authorization: Bearer <token>` against the token's SHA-256. Two
 * Authorization lines are refused rather than one of them picked: a proxy in front may have
 * checked the other. */
enum admin_auth admin_authorize(const char *head, size_t len, const uint8_t hash[SHA256_LEN]);

/* Reads the body of POST /backends ({"name":…,"address":…,"weight":N}) into spec, with the
 * rules of --backend and those of where a backend may be (config_backend_refused). Returns 0,
 * or -1 with what was wrong in err. */
int admin_parse_backend(const char *body, size_t len, const struct config *cfg, struct backend_spec *spec,
                        char *err, size_t errcap);

/* Reads the body of PUT /tokens/NAME ({"sha256":HEX,"expires":UNIX_SECONDS}, expires optional,
 * 0 for none) with the rules of --token into spec. Returns 0, or -1 with what was wrong in err. */
int admin_parse_token(const char *name, size_t name_len, const char *body, size_t len, struct token_spec *spec,
                      char *err, size_t errcap);

#endif
