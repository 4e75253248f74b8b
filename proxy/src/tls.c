#include "tls.h"

#include "acme.h"
#include "log.h"
#include "loop.h"
#include "stats.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* Sessions a client may resume by id (tickets need no server memory); bounded, oldest out. */
#define SESSION_CACHE_SIZE 20000
/* Session ticket keys are random at start and replaced this often; a ticket lives as long, so
 * one stolen key opens at most an hour of sessions. A client holding a ticket of the previous
 * key does a full handshake. */
#define TICKET_KEY_LIFETIME_S 3600
/* OpenSSL's ticket key blob: name, HMAC secret, AES key (16 bytes each). */
#define TICKET_KEYS_LEN 48

/* ECDHE and AEAD only. AES-128-GCM first in both versions: as strong as needed, and the
 * cheapest with AES-NI (OpenSSL would put AES-256 first for TLS 1.3). */
#define TLS13_CIPHERS "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305:"     \
    "ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384"
#define GROUPS "X25519:P-256:P-384"

struct tls_stats tls_stats;

static struct timer ticket_rotation;

/* One context per certificate. The first also answers clients whose SNI names none of them. */
static SSL_CTX *contexts[MAX_TLS_CERTS];
static size_t ncontexts;

/* The app data of every tls-alpn-01 challenge context: a connection served one of their
 * certificates closes after its handshake, whatever ALPN it ended with. */
static int challenge_mark;

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    static const unsigned char http11[] = "\x08http/1.1";
    (void)ssl;
    (void)arg;
    /* acme-tls/1 is only ever spoken with a challenge's certificate (pick_challenge). Offered
     * here, it is a validator asking for a name that has no challenge: it must not complete a
     * handshake with the serving certificate, whatever else it offers. */
    if (acme_protocols_offer_challenge(in, inlen))
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    if (SSL_select_next_proto((unsigned char **)out, outlen, http11, sizeof http11 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL; /* RFC 7301: no_application_protocol */
    return SSL_TLSEXT_ERR_OK;
}

/* SNI: the certificate whose names cover the requested one; the first when none does. */
static int pick_certificate(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    (void)arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    /* With one certificate the answer is the same whatever the name: no name check per
     * handshake (~9,000 instructions). */
    if (!name || ncontexts == 1)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < ncontexts; i++) {
        if (X509_check_host(SSL_CTX_get0_certificate(contexts[i]), name, 0, 0, NULL) == 1) {
            if (i > 0)
                SSL_set_SSL_CTX(ssl, contexts[i]);
            return SSL_TLSEXT_ERR_OK;
        }
    }
    return SSL_TLSEXT_ERR_OK;
}

/* tls-alpn-01 (RFC 8737), before anything else reads the ClientHello: one that offers
 * acme-tls/1 for a name with a challenge moves to that challenge's context (its certificate,
 * its ALPN). Everything else goes on untouched; with no challenge registered, at no cost. */
static int pick_challenge(SSL *ssl, int *alert, void *arg)
{
    (void)arg;
    if (acme_tls_alpn01_count() == 0)
        return SSL_CLIENT_HELLO_SUCCESS;
    const unsigned char *alpn, *sni;
    size_t alpn_len, sni_len, name_len;
    const char *name;
    if (!SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &alpn, &alpn_len) ||
        !acme_alpn_offers_challenge(alpn, alpn_len) ||
        !SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &sni, &sni_len) ||
        acme_server_name(sni, sni_len, &name, &name_len) < 0)
        return SSL_CLIENT_HELLO_SUCCESS;
    SSL_CTX *challenge = acme_tls_alpn01_find(name, name_len);
    if (!challenge)
        return SSL_CLIENT_HELLO_SUCCESS; /* alpn_select refuses acme-tls/1 */
    /* The SSL takes its own reference: a challenge deleted now is freed after this handshake. */
    if (SSL_set_SSL_CTX(ssl, challenge) != challenge) {
        *alert = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    /* The validator closes once the handshake is done: a TLS 1.3 ticket would be wasted work. */
    SSL_set_num_tickets(ssl, 0);
    return SSL_CLIENT_HELLO_SUCCESS;
}

static int alpn_select_challenge(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                                 unsigned int inlen, void *arg)
{
    static const unsigned char acme_tls1[] = "\x0a" ACME_TLS_PROTOCOL; /* its length, then the name */
    (void)ssl;
    (void)arg;
    if (SSL_select_next_proto((unsigned char **)out, outlen, acme_tls1, sizeof acme_tls1 - 1, in, inlen) !=
        OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    return SSL_TLSEXT_ERR_OK;
}

/* OpenSSL asks the SSL's current context for an SNI callback and falls back to the first
 * serving context's: a challenge context has this one, so pick_certificate never moves the
 * handshake off the challenge certificate. */
static int keep_challenge(SSL *ssl, int *alert, void *arg)
{
    (void)ssl;
    (void)alert;
    (void)arg;
    return SSL_TLSEXT_ERR_OK;
}

/* A context with everything but its certificate: versions, ciphers, groups, sessions. */
static SSL_CTX *new_context(char *err, size_t errcap)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        snprintf(err, errcap, "out of memory");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    long options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE;
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* Clients that close without close_notify are the norm for HTTP: an end, not an attack. */
    options |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
    SSL_CTX_set_options(ctx, options);
    /* Partial writes from a buffer that moves (the connection's buffers are compacted), and no
     * TLS buffers held by an idle connection. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    /* One read() per burst of records rather than two per record (header, then body): 5 fewer
     * system calls per new connection, 1 fewer per keep-alive request. What is read ahead is
     * seen through tls_has_pending. */
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_sess_set_cache_size(ctx, SESSION_CACHE_SIZE);
    SSL_CTX_set_timeout(ctx, TICKET_KEY_LIFETIME_S);
    /* One TLS 1.3 ticket per handshake, not OpenSSL's two: a client resumes with one, and each
     * costs an encryption and a record on every new connection. */
    SSL_CTX_set_num_tickets(ctx, 1);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"uproxy", 6);
    if (SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 || SSL_CTX_set_ciphersuites(ctx, TLS13_CIPHERS) != 1 ||
        SSL_CTX_set1_groups_list(ctx, GROUPS) != 1) {
        snprintf(err, errcap, "this OpenSSL lacks the ciphers or groups uproxy requires");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* A context that serves clients: http/1.1, and tls-alpn-01 challenges looked for first. */
static SSL_CTX *serving_context(char *err, size_t errcap)
{
    SSL_CTX *ctx = new_context(err, errcap);
    if (ctx) {
        SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
        SSL_CTX_set_client_hello_cb(ctx, pick_challenge, NULL);
    }
    return ctx;
}

/* Why the last certificate or key OpenSSL read was refused; the queue is left empty. */
static void openssl_reason(char *err, size_t errcap, const char *what)
{
    /* use_pem drops the error of reading past the last certificate: with none left, there was
     * no certificate at all. */
    char why[160] = "no PEM certificate in it";
    if (ERR_peek_last_error())
        ERR_error_string_n(ERR_peek_last_error(), why, sizeof why);
    snprintf(err, errcap, "%s must hold a PEM certificate chain (leaf first) and its private key: %s", what, why);
    ERR_clear_error();
}

static SSL_CTX *context_from_file(const char *path, char *err, size_t errcap)
{
    SSL_CTX *ctx = serving_context(err, errcap);
    if (!ctx)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1 || SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char what[300];
        snprintf(what, sizeof what, "'%s'", path);
        openssl_reason(err, errcap, what);
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* The chain (leaf first) and key from PEM text, as the admin API receives them. Without a key
 * in the text, `current` (the key of the certificate being replaced) is paired with the new
 * chain: a VM guest's key arrives once, in its boot image, and a renewal sends only public
 * bytes over a network the other guests share. */
static int use_pem(SSL_CTX *ctx, const char *pem, size_t len, EVP_PKEY *current)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (!bio)
        return -1;
    X509 *leaf = PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL);
    int ok = leaf && SSL_CTX_use_certificate(ctx, leaf) == 1;
    X509_free(leaf);
    X509 *extra;
    while (ok && (extra = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1) {
            X509_free(extra);
            ok = 0;
        }
    }
    ERR_clear_error(); /* the end of the chain reads as an error */
    EVP_PKEY *key = NULL;
    if (ok && BIO_reset(bio) == 1)
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    if (!key && current) {
        ERR_clear_error();
        ok = ok && SSL_CTX_use_PrivateKey(ctx, current) == 1;
    } else {
        ok = ok && key && SSL_CTX_use_PrivateKey(ctx, key) == 1;
    }
    ok = ok && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(key);
    BIO_free(bio);
    return ok ? 0 : -1;
}

/* New random ticket keys, the same for every certificate (a session resumes whichever SNI
 * context issued it). The same call exists in OpenSSL 1.1.1 and 3.x. */
static int set_ticket_keys(void)
{
    unsigned char keys[TICKET_KEYS_LEN];
    if (RAND_bytes(keys, sizeof keys) != 1)
        return -1;
    for (size_t i = 0; i < ncontexts; i++)
        SSL_CTX_set_tlsext_ticket_keys(contexts[i], keys, sizeof keys);
    OPENSSL_cleanse(keys, sizeof keys);
    return 0;
}

static void rotate_ticket_keys(struct timer *t)
{
    if (set_ticket_keys() < 0)
        log_error("tls_ticket_keys", "error=\"no random bytes: the keys stay as they were\"");
    loop_timer_set(t, TICKET_KEY_LIFETIME_S * 1000u);
}

int tls_init(const struct config *cfg, char *err, size_t errcap)
{
    for (size_t i = 0; i < cfg->ntls_certs; i++) {
        char why[600]; /* room for a 300-byte path and OpenSSL's reason */
        SSL_CTX *ctx = context_from_file(cfg->tls_certs[i], why, sizeof why);
        if (!ctx) {
            snprintf(err, errcap, "--tls-cert: %s", why);
            return -1;
        }
        contexts[ncontexts++] = ctx;
    }
    if (ncontexts == 0)
        return 0;
    SSL_CTX_set_tlsext_servername_callback(contexts[0], pick_certificate);
    if (loop_timer_init(&ticket_rotation, rotate_ticket_keys) < 0 || set_ticket_keys() < 0) {
        snprintf(err, errcap, "--tls-cert: no memory or no random bytes for session ticket keys");
        return -1;
    }
    loop_timer_set(&ticket_rotation, TICKET_KEY_LIFETIME_S * 1000u);
    return 0;
}

int tls_enabled(void) { return ncontexts > 0; }

size_t tls_certificates(void) { return ncontexts; }

int tls_replace(size_t index, const char *pem, size_t len, char *err, size_t errcap)
{
    if (index > ncontexts || index >= MAX_TLS_CERTS) {
        snprintf(err, errcap, "certificate %zu does not exist; replace 0 to %zu, or add %zu", index,
                 ncontexts ? ncontexts - 1 : 0, ncontexts);
        return -1;
    }
    SSL_CTX *ctx = serving_context(err, errcap);
    if (!ctx)
        return -1;
    EVP_PKEY *current = index < ncontexts ? SSL_CTX_get0_privatekey(contexts[index]) : NULL;
    if (use_pem(ctx, pem, len, current) < 0) {
        openssl_reason(err, errcap, current ? "the body (without a key: one for the current key)" : "the body");
        SSL_CTX_free(ctx);
        return -1;
    }
    /* Connections that use the old context hold a reference to it: they finish with it. */
    SSL_CTX *old = index < ncontexts ? contexts[index] : NULL;
    contexts[index] = ctx;
    if (!old)
        ncontexts++;
    set_ticket_keys(); /* all contexts share keys: renewing them costs one full handshake per client */
    if (index == 0)
        SSL_CTX_set_tlsext_servername_callback(ctx, pick_certificate);
    SSL_CTX_free(old);
    return 0;
}

/* RFC 8737 3: the critical id-pe-acmeIdentifier extension, whose value is the SHA-256 of the
 * key authorization as an OCTET STRING of 32 bytes (DER: 04 20, then the digest). */
static int has_acme_identifier(X509 *cert)
{
    ASN1_OBJECT *oid = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1);
    int at = oid ? X509_get_ext_by_OBJ(cert, oid, -1) : -1;
    ASN1_OBJECT_free(oid);
    X509_EXTENSION *ext = at >= 0 ? X509_get_ext(cert, at) : NULL;
    if (!ext || X509_EXTENSION_get_critical(ext) != 1)
        return 0;
    const ASN1_OCTET_STRING *value = X509_EXTENSION_get_data(ext);
    const unsigned char *d = ASN1_STRING_get0_data(value);
    return ASN1_STRING_length(value) == 34 && d[0] == 0x04 && d[1] == 0x20;
}

/* What makes the certificate unfit to answer name's challenge, or NULL. */
static const char *challenge_refused(X509 *cert, const char *name, size_t name_len)
{
    if (!has_acme_identifier(cert))
        return "the certificate lacks the critical acmeIdentifier extension (1.3.6.1.5.5.7.1.31) with the "
               "key authorization's SHA-256 (RFC 8737)";
    unsigned flags = X509_CHECK_FLAG_NO_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
    if (X509_check_host(cert, name, name_len, flags, NULL) != 1)
        return "the certificate's subjectAltName does not name the challenge's DNS name";
    return NULL;
}

struct ssl_ctx_st *tls_challenge_context(const char *pem, size_t len, const char *name, size_t name_len, char *err,
                                         size_t errcap)
{
    SSL_CTX *ctx = new_context(err, errcap);
    if (!ctx)
        return NULL;
    if (use_pem(ctx, pem, len, NULL) < 0) {
        openssl_reason(err, errcap, "the body");
        SSL_CTX_free(ctx);
        return NULL;
    }
    const char *refused = challenge_refused(SSL_CTX_get0_certificate(ctx), name, name_len);
    ERR_clear_error();
    if (refused) {
        snprintf(err, errcap, "%s", refused);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select_challenge, NULL);
    SSL_CTX_set_tlsext_servername_callback(ctx, keep_challenge);
    /* Its own session context: a session of the serving certificates, offered with acme-tls/1,
     * is not resumed (a resumed handshake would show no certificate at all). */
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"uproxy-acme", 11);
    SSL_CTX_set_app_data(ctx, &challenge_mark);
    return ctx;
}

/* "name","name",... of the certificate's subjectAltName DNS and IP entries. */
static void write_names(X509 *cert, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        char text[64] = "";
        if (g->type == GEN_DNS) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.dNSName);
            int dlen = ASN1_STRING_length(g->d.dNSName);
            for (int k = 0; k < dlen && k < (int)sizeof text - 1; k++)
                text[k] = (d[k] >= '!' && d[k] <= '~' && d[k] != '"' && d[k] != '\\') ? (char)d[k] : '?';
        } else if (g->type == GEN_IPADD && ASN1_STRING_length(g->d.iPAddress) == 4) {
            const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
            snprintf(text, sizeof text, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
        }
        if (!text[0])
            continue;
        int m = snprintf(out + n, cap - n, "%s\"%s\"", n ? "," : "", text);
        if (m < 0 || (size_t)m >= cap - n)
            break;
        n += (size_t)m;
    }
    GENERAL_NAMES_free(names);
    ERR_clear_error();
}

/* Text for people, JSON-escaped into out: the issuer's commonName, or its whole name on one
 * line (as `openssl x509 -issuer` writes it, in UTF-8) when it has none. */
static void write_issuer(X509 *cert, char *out, size_t cap)
{
    const X509_NAME *issuer = X509_get_issuer_name(cert);
    int at = X509_NAME_get_index_by_NID(issuer, NID_commonName, -1);
    unsigned char *cn = NULL;
    int cn_len = at >= 0 ? ASN1_STRING_to_UTF8(&cn, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(issuer, at))) : -1;
    size_t n = 0;
    if (cn_len >= 0) {
        n = json_escape_utf8(out, 0, cap - 1, (const char *)cn, (size_t)cn_len);
    } else {
        BIO *bio = BIO_new(BIO_s_mem());
        char *text = NULL;
        if (bio && X509_NAME_print_ex(bio, issuer, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
            long len = BIO_get_mem_data(bio, &text);
            n = json_escape_utf8(out, 0, cap - 1, text, len > 0 ? (size_t)len : 0);
        }
        BIO_free(bio);
    }
    out[n] = '\0';
    OPENSSL_free(cn);
    ERR_clear_error();
}

/* The serial number in upper-case hex, as `openssl x509 -serial` prints it ("" for one longer
 * than TLS_SERIAL_MAX_BYTES; RFC 5280 allows 20). */
static void write_serial(X509 *cert, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
    const unsigned char *d = ASN1_STRING_get0_data(serial);
    int len = ASN1_STRING_length(serial);
    size_t n = 0;
    out[0] = '\0';
    if (len < 0 || len > TLS_SERIAL_MAX_BYTES)
        return;
    if (ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER)
        out[n++] = '-';
    if (len == 0) {
        out[n++] = '0';
        out[n++] = '0';
    }
    for (int i = 0; i < len; i++) {
        out[n++] = hex[d[i] >> 4];
        out[n++] = hex[d[i] & 15];
    }
    out[n] = '\0';
}

int tls_describe(size_t index, struct tls_description *d)
{
    if (index >= ncontexts)
        return -1;
    X509 *cert = SSL_CTX_get0_certificate(contexts[index]);
    struct tm tm;
    write_names(cert, d->names, sizeof d->names);
    write_issuer(cert, d->issuer, sizeof d->issuer);
    write_serial(cert, d->serial);
    d->not_after = ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1 ? (long long)timegm(&tm) : 0;
    return 0;
}

SSL *tls_accept(int fd)
{
    SSL *ssl = SSL_new(contexts[0]);
    if (!ssl)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    /* Counted in progress until its first handshake ends; the mark is the session's own, not
     * OpenSSL's state, which a refused renegotiation also puts back "in init". */
    SSL_set_app_data(ssl, &tls_stats);
    tls_stats.in_progress++;
    return ssl;
}

/* 1 when OpenSSL only waits for the socket; the error queue is left empty either way, so the
 * next call's SSL_get_error sees only its own. */
static int waits(SSL *ssl, int rc)
{
    int e = SSL_get_error(ssl, rc);
    ERR_clear_error();
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

int tls_handshake(SSL *ssl)
{
    int rc = SSL_do_handshake(ssl);
    if (rc == 1) {
        SSL_set_app_data(ssl, NULL);
        tls_stats.in_progress--;
        tls_stats.handshakes++;
        if (SSL_session_reused(ssl))
            tls_stats.resumed++;
        if (tls_answered_challenge(ssl)) {
            const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
            stats.acme_tls_alpn01++;
            log_event("acme_challenge", "type=tls-alpn-01 name=%s", name ? name : "-");
        }
        return 1;
    }
    if (waits(ssl, rc))
        return 0;
    tls_stats.failed++;
    return -1;
}

ssize_t tls_recv(SSL *ssl, void *buf, size_t len)
{
    int rc = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (rc > 0)
        return rc;
    int e = SSL_get_error(ssl, rc);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN)
        return 0;
    errno = ECONNRESET;
    return -1;
}

ssize_t tls_send(SSL *ssl, const void *buf, size_t len)
{
    int rc = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int)len);
    if (rc > 0)
        return rc;
    if (waits(ssl, rc)) {
        errno = EAGAIN;
        return -1;
    }
    errno = EPIPE;
    return -1;
}

int tls_answered_challenge(const SSL *ssl)
{
    return SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) == &challenge_mark;
}

int tls_wants_write(const SSL *ssl) { return SSL_want_write(ssl); }

int tls_has_pending(const SSL *ssl) { return SSL_has_pending(ssl); }

void tls_close_notify(SSL *ssl)
{
    if (SSL_is_init_finished(ssl)) {
        /* Corked, the alert waits for the FIN of the shutdown that follows, and both leave in
         * one packet instead of two. (Only there: a ticket held back for the first response
         * would also hold back the ACK of the client's Finished, and a client with Nagle's
         * algorithm then waits 40 ms for it before sending its request.) */
        int on = 1;
        setsockopt(SSL_get_fd(ssl), IPPROTO_TCP, TCP_CORK, &on, sizeof on);
        SSL_shutdown(ssl);
    }
    ERR_clear_error();
}

void tls_free(SSL *ssl)
{
    if (SSL_get_app_data(ssl))
        tls_stats.in_progress--;
    SSL_free(ssl);
}
