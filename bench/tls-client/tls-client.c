/* The bench's load generator for TLS handshakes: CONNS connections at once, each a fresh TCP
 * connection that does a TLS 1.3 handshake (X25519, no certificate check, like wrk), sends one
 * request with `Connection: close`, reads the response and waits for the server to close.
 * Then the slot starts over, until SECONDS have passed or MAX_CONNECTIONS are done.
 *
 *   tls-client PORT CONNS SECONDS new|resume   (token from BENCH_TOKEN in the environment)
 *
 * `new`: no session is ever offered, every handshake is a full one. `resume`: each slot
 * offers the session (ticket) its previous connection got; its first connection is full.
 * wrk cannot do the first (it keeps the session of a closed connection in its SSL object).
 *
 * Prints one JSON line shaped like bench/lib/wrk-report.lua's, plus "resumed" (handshakes the
 * server resumed) and "protocol"/"group" of the first handshake. Latency is a connection's
 * whole life: connect() to the response's last byte. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 1024
#define MAX_SECONDS 120
/* Bounds the run (and the latency array) whatever the speed. */
#define MAX_CONNECTIONS 2000000
#define CONN_TIMEOUT_US 5000000

enum state { S_FREE, S_CONNECTING, S_HANDSHAKE, S_WRITE, S_READ, S_DRAIN };

struct slot {
    int fd;
    enum state state;
    SSL *ssl;
    SSL_SESSION *session;
    uint64_t started_us;
    size_t sent;
    char head[4096];
    size_t got;
    long body_left; /* -1 until the head is complete */
};

static struct {
    uint64_t requests, resumed, bytes, connect, read, write, status, timeout;
} counts;

static uint32_t *latencies;
static char request[512];
static size_t request_len;
static struct sockaddr_in target;
static SSL_CTX *ctx;
static int ep;
static int resume;
static const char *protocol = "-", *group = "-";

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void watch(struct slot *s, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* The session to offer next time: by the response's end the server's ticket has come. */
static void keep_session(struct slot *s)
{
    SSL_SESSION *next = SSL_get1_session(s->ssl);
    if (next && SSL_SESSION_is_resumable(next)) {
        SSL_SESSION_free(s->session);
        s->session = next;
    } else {
        SSL_SESSION_free(next);
    }
}

static void finish(struct slot *s)
{
    if (s->ssl) {
        /* The server has closed: nothing more is sent. Without this mark SSL_free would call
         * the session bad and make it unresumable. */
        SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN);
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    s->state = S_FREE;
    ERR_clear_error();
}

static int start(struct slot *s)
{
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->started_us = now_us();
    s->sent = s->got = 0;
    s->body_left = -1;
    s->ssl = NULL;
    if (connect(s->fd, (struct sockaddr *)&target, sizeof target) < 0 && errno != EINPROGRESS) {
        counts.connect++;
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    s->state = S_CONNECTING;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    return epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
}

/* SSL_get_error's verdict as the events to wait for; 0 when the connection failed. */
static uint32_t wants(struct slot *s, int rc)
{
    int e = SSL_get_error(s->ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return EPOLLIN;
    if (e == SSL_ERROR_WANT_WRITE)
        return EPOLLOUT;
    return 0;
}

/* Parses the status line and Content-Length once the head is complete. */
static int parse_head(struct slot *s)
{
    char *end = memmem(s->head, s->got, "\r\n\r\n", 4);
    if (!end)
        return s->got < sizeof s->head - 1 ? 0 : -1;
    *end = '\0';
    if (strncmp(s->head, "HTTP/1.1 200", 12) != 0 && strncmp(s->head, "HTTP/1.0 200", 12) != 0)
        counts.status++;
    char *cl = strcasestr(s->head, "\r\ncontent-length:");
    long length = cl ? strtol(cl + 17, NULL, 10) : 0;
    size_t body_seen = s->got - (size_t)(end + 4 - s->head);
    s->body_left = length - (long)body_seen;
    return 1;
}

static void step(struct slot *s, uint64_t t)
{
    for (;;) {
        int rc;
        uint32_t w;
        switch (s->state) {
        case S_CONNECTING: {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                counts.connect++;
                finish(s);
                return;
            }
            s->ssl = SSL_new(ctx);
            SSL_set_fd(s->ssl, s->fd);
            SSL_set_tlsext_host_name(s->ssl, "localhost");
            if (resume && s->session)
                SSL_set_session(s->ssl, s->session);
            SSL_set_connect_state(s->ssl);
            s->state = S_HANDSHAKE;
            continue;
        }
        case S_HANDSHAKE:
            rc = SSL_do_handshake(s->ssl);
            if (rc == 1) {
                if (SSL_session_reused(s->ssl))
                    counts.resumed++;
                if (protocol[0] == '-') {
                    protocol = SSL_get_version(s->ssl);
                    int nid = SSL_get_negotiated_group(s->ssl);
                    group = nid > 0 ? OBJ_nid2sn(nid) : "?";
                }
                s->state = S_WRITE;
                continue;
            }
            if ((w = wants(s, rc))) {
                watch(s, w);
                return;
            }
            counts.connect++;
            finish(s);
            return;
        case S_WRITE:
            rc = SSL_write(s->ssl, request + s->sent, (int)(request_len - s->sent));
            if (rc > 0) {
                s->sent += (size_t)rc;
                if (s->sent == request_len)
                    s->state = S_READ;
                continue;
            }
            if ((w = wants(s, rc))) {
                watch(s, w);
                return;
            }
            counts.write++;
            finish(s);
            return;
        case S_READ:
        case S_DRAIN: {
            char body[4096];
            int reading_head = s->state == S_READ && s->body_left < 0;
            char *into = reading_head ? s->head + s->got : body;
            int room = reading_head ? (int)(sizeof s->head - 1 - s->got) : (int)sizeof body;
            rc = SSL_read(s->ssl, into, room);
            if (rc > 0) {
                counts.bytes += (uint64_t)rc;
                if (s->state == S_DRAIN)
                    continue; /* bytes after the response: keep reading to the close */
                if (reading_head) {
                    s->got += (size_t)rc;
                    int h = parse_head(s);
                    if (h < 0) {
                        counts.read++;
                        finish(s);
                        return;
                    }
                    if (h == 0)
                        continue;
                } else {
                    s->body_left -= rc;
                }
                if (s->body_left <= 0) {
                    uint64_t us = t - s->started_us;
                    latencies[counts.requests++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
                    if (resume)
                        keep_session(s);
                    s->state = S_DRAIN;
                }
                continue;
            }
            if ((w = wants(s, rc))) {
                watch(s, w);
                return;
            }
            /* The server's close: the end of a complete exchange, or a cut-off response. */
            if (s->state != S_DRAIN)
                counts.read++;
            finish(s);
            return;
        }
        case S_FREE:
            return;
        }
    }
}

static int percentile_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t percentile(double p)
{
    if (!counts.requests)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(counts.requests - 1) + 0.5);
    return latencies[i];
}

int main(int argc, char **argv)
{
    if (argc != 5 || (strcmp(argv[4], "new") != 0 && strcmp(argv[4], "resume") != 0)) {
        fprintf(stderr, "usage: tls-client PORT CONNS SECONDS new|resume  (token in BENCH_TOKEN)\n");
        return 2;
    }
    int port = atoi(argv[1]), conns = atoi(argv[2]), seconds = atoi(argv[3]);
    resume = strcmp(argv[4], "resume") == 0;
    const char *token = getenv("BENCH_TOKEN");
    if (port <= 0 || port > 65535 || conns < 1 || conns > MAX_CONNS || seconds < 1 || seconds > MAX_SECONDS || !token ||
        strlen(token) > 200) {
        fprintf(stderr, "tls-client: PORT 1-65535, CONNS 1-%d, SECONDS 1-%d, BENCH_TOKEN set (≤ 200 bytes)\n", MAX_CONNS,
                MAX_SECONDS);
        return 2;
    }
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET / HTTP/1.1\r\nHost: localhost\r\nX-Auth-Token: %s\r\nConnection: close\r\n\r\n", token);
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)port);
    target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 || SSL_CTX_set1_groups_list(ctx, "X25519") != 1) {
        fprintf(stderr, "tls-client: this OpenSSL cannot do TLS 1.3 with X25519\n");
        return 1;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    /* A server that closes without close_notify must not make the session unresumable. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Sessions are kept by hand per slot (resume) or not at all (new). */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    latencies = malloc(sizeof *latencies * MAX_CONNECTIONS);
    struct slot *slots = calloc((size_t)conns, sizeof *slots);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (!latencies || !slots || ep < 0) {
        fprintf(stderr, "tls-client: out of memory\n");
        return 1;
    }
    for (int i = 0; i < conns; i++)
        slots[i].fd = -1;

    uint64_t t0 = now_us(), deadline = t0 + (uint64_t)seconds * 1000000u, t = t0;
    uint64_t started = 0;
    struct epoll_event events[MAX_CONNS];
    while (t < deadline) {
        for (int i = 0; i < conns; i++) {
            struct slot *s = &slots[i];
            if (s->state != S_FREE && t - s->started_us > CONN_TIMEOUT_US) {
                counts.timeout++;
                finish(s);
            }
            if (s->state == S_FREE && started < MAX_CONNECTIONS && start(s) == 0)
                started++;
        }
        if (started >= MAX_CONNECTIONS && counts.requests + counts.connect + counts.read + counts.write + counts.timeout >= started)
            break;
        int n = epoll_wait(ep, events, MAX_CONNS, 100);
        t = now_us();
        for (int i = 0; i < n; i++)
            step(events[i].data.ptr, t);
    }
    uint64_t duration = now_us() - t0;
    for (int i = 0; i < conns; i++) {
        finish(&slots[i]);
        SSL_SESSION_free(slots[i].session);
    }

    uint64_t sum = 0;
    for (uint64_t i = 0; i < counts.requests; i++)
        sum += latencies[i];
    qsort(latencies, counts.requests, sizeof *latencies, percentile_cmp);
    printf("{\"requests\":%llu,\"duration_us\":%llu,\"bytes\":%llu,"
           "\"errors\":{\"connect\":%llu,\"read\":%llu,\"write\":%llu,\"status\":%llu,\"timeout\":%llu},"
           "\"latency_us\":{\"min\":%u,\"mean\":%.2f,\"max\":%u,\"p50\":%u,\"p90\":%u,\"p99\":%u,\"p999\":%u},"
           "\"resumed\":%llu,\"protocol\":\"%s\",\"group\":\"%s\"}\n",
           (unsigned long long)counts.requests, (unsigned long long)duration, (unsigned long long)counts.bytes,
           (unsigned long long)counts.connect, (unsigned long long)counts.read, (unsigned long long)counts.write,
           (unsigned long long)counts.status, (unsigned long long)counts.timeout, percentile(0), counts.requests ? (double)sum / (double)counts.requests : 0.0,
           percentile(100), percentile(50), percentile(90), percentile(99), percentile(99.9), (unsigned long long)counts.resumed,
           protocol, group);
    return 0;
}
