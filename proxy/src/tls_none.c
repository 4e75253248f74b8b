/* The TLS functions for builds without OpenSSL (see tls.h): a proxy built this way refuses
 * --tls-cert at start, so no connection ever carries an SSL object and none of the others runs. */
#include "tls.h"

#include <errno.h>
#include <stdio.h>

struct tls_stats tls_stats;

int tls_init(const struct config *cfg, char *err, size_t errcap)
{
    if (cfg->ntls_certs == 0)
        return 0;
    snprintf(err, errcap, "--tls-cert: this build of the proxy has no TLS (it was built without OpenSSL)");
    return -1;
}

int tls_enabled(void) { return 0; }

size_t tls_certificates(void) { return 0; }

int tls_replace(size_t index, const char *pem, size_t len, char *err, size_t errcap)
{
    (void)index;
    (void)pem;
    (void)len;
    snprintf(err, errcap, "this build of the proxy has no TLS (it was built without OpenSSL)");
    return -1;
}

int tls_describe(size_t index, char *names, size_t cap, long long *not_after)
{
    (void)index;
    (void)names;
    (void)cap;
    (void)not_after;
    return -1;
}

struct ssl_st *tls_accept(int fd)
{
    (void)fd;
    return NULL;
}

int tls_handshake(struct ssl_st *ssl)
{
    (void)ssl;
    return -1;
}

ssize_t tls_recv(struct ssl_st *ssl, void *buf, size_t len)
{
    (void)ssl;
    (void)buf;
    (void)len;
    errno = ENOTSUP;
    return -1;
}

ssize_t tls_send(struct ssl_st *ssl, const void *buf, size_t len)
{
    (void)ssl;
    (void)buf;
    (void)len;
    errno = ENOTSUP;
    return -1;
}

int tls_wants_write(const struct ssl_st *ssl)
{
    (void)ssl;
    return 0;
}

int tls_has_pending(const struct ssl_st *ssl)
{
    (void)ssl;
    return 0;
}

void tls_close_notify(struct ssl_st *ssl) { (void)ssl; }

void tls_free(struct ssl_st *ssl) { (void)ssl; }
