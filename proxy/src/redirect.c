#include "redirect.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "acme.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "runtime.h"
#include "stats.h"

#define REDIRECT_IN 4096
#define REDIRECT_OUT 4096
/* RFC 8555 8.3: where a CA fetches an http-01 challenge's key authorization. */
#define CHALLENGE_PREFIX "/.well-known/acme-challenge/"
#define CHALLENGE_PREFIX_LEN (sizeof CHALLENGE_PREFIX - 1)

struct redirect_conn {
    struct watcher w;
    struct timer timer;
    struct http_msg req;
    char in[REDIRECT_IN];
    size_t in_len, parsed;
    char out[REDIRECT_OUT];
    size_t out_len, out_sent;
    int answered; /* what the client sends from now on is read and dropped until it closes */
};

static struct acceptor listener;

static const char bad_request[] = "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: 29\r\n"
                                  "Connection: close\r\n\r\n{\"error\":\"malformed request\"}";

static void destroy(struct redirect_conn *r)
{
    loop_timer_release(&r->timer);
    loop_close(&r->w);
    loop_defer_free(r, free);
}

/* The answer to a request under CHALLENGE_PREFIX, written into r->out: 200 with the key
 * authorization to GET or HEAD of exactly a registered token's path, 404 to anything else
 * there (never a redirect: a CA follows it, and would only find the TLS listener). Any Host
 * will do: the CA names the domain it validates, which may not be one this proxy knows. */
static size_t answer_challenge(struct redirect_conn *r, const char *token, size_t token_len)
{
    int method = r->req.parser.method;
    size_t key_auth_len = 0;
    const char *key_auth = method == HTTP_GET || method == HTTP_HEAD ? acme_http01_find(token, token_len, &key_auth_len) : NULL;
    int head_only = method == HTTP_HEAD;
    int n;
    if (key_auth) {
        stats.acme_http01++;
        n = snprintf(r->out, sizeof r->out,
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%.*s",
                     key_auth_len, head_only ? 0 : (int)key_auth_len, key_auth);
    } else {
        static const char none[] = "no such ACME challenge\n";
        n = snprintf(r->out, sizeof r->out,
                     "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     sizeof none - 1, head_only ? "" : none);
    }
    /* Tokens are public (the CA hands them out); anything else a client put there is not logged. */
    if (acme_token_valid(token, token_len))
        log_event("acme_challenge", "type=http-01 token=%.*s status=%d", (int)token_len, token, key_auth ? 200 : 404);
    else
        log_event("acme_challenge", "type=http-01 status=404");
    return n > 0 && (size_t)n < sizeof r->out ? (size_t)n : 0;
}

/* The answer to a whole, valid head: an ACME challenge's, or the 308 (0 without a valid Host). */
static size_t answer(struct redirect_conn *r)
{
    struct request_info info;
    http_scan_request(r->in, r->parsed, &info);
    if (!info.scan.malformed && info.path_len >= CHALLENGE_PREFIX_LEN &&
        memcmp(info.path, CHALLENGE_PREFIX, CHALLENGE_PREFIX_LEN) == 0)
        return answer_challenge(r, info.path + CHALLENGE_PREFIX_LEN, info.path_len - CHALLENGE_PREFIX_LEN);
    return http_https_redirect(r->in, r->parsed, net_addr_port(&runtime.cfg->listen), r->out, sizeof r->out);
}

/* Queues the answer once a whole head is in, or a 400 for what is no request. */
static void parse(struct redirect_conn *r)
{
    size_t n;
    enum http_progress p = http_execute(&r->req, r->in + r->parsed, r->in_len - r->parsed, &n);
    r->parsed += n;
    if (p == HTTP_NEED_MORE && r->in_len < REDIRECT_IN)
        return;
    int valid = p == HTTP_HEAD_DONE && r->req.parser.http_major == 1;
    size_t len = valid ? answer(r) : 0;
    if (len == 0) {
        memcpy(r->out, bad_request, sizeof bad_request - 1);
        len = sizeof bad_request - 1;
    }
    r->out_len = len;
}

static void flush(struct redirect_conn *r)
{
    while (r->out_sent < r->out_len) {
        ssize_t n = send(r->w.fd, r->out + r->out_sent, r->out_len - r->out_sent, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            destroy(r);
            return;
        }
        r->out_sent += (size_t)n;
    }
    /* Answered: the client closes first, or the timer ends it (see conn.c's linger for why). */
    shutdown(r->w.fd, SHUT_WR);
    r->out_len = r->out_sent = 0;
    r->answered = 1;
}

static void on_event(struct watcher *w, uint32_t events)
{
    struct redirect_conn *r = (struct redirect_conn *)((char *)w - offsetof(struct redirect_conn, w));
    if (events & (EPOLLERR | EPOLLHUP)) {
        destroy(r);
        return;
    }
    if (events & EPOLLIN) {
        char sink[512];
        ssize_t n = r->answered ? recv(w->fd, sink, sizeof sink, 0) : recv(w->fd, r->in + r->in_len, REDIRECT_IN - r->in_len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            destroy(r);
            return;
        }
        if (n > 0 && !r->answered) {
            r->in_len += (size_t)n;
            parse(r);
        }
    }
    if (r->out_len)
        flush(r);
    if (r->w.fd >= 0 && loop_watch(&r->w, r->out_len ? EPOLLOUT : EPOLLIN) < 0)
        destroy(r);
}

static void on_timeout(struct timer *t)
{
    destroy((struct redirect_conn *)((char *)t - offsetof(struct redirect_conn, timer)));
}

static void accepted(int fd, const struct sockaddr_storage *peer)
{
    (void)peer;
    struct redirect_conn *r = calloc(1, sizeof *r);
    if (!r || loop_timer_init(&r->timer, on_timeout) < 0) {
        free(r);
        close(fd);
        return;
    }
    loop_watcher_init(&r->w, fd, on_event);
    http_msg_init(&r->req, HTTP_REQUEST, runtime.cfg->max_headers);
    if (loop_watch(&r->w, EPOLLIN) < 0) {
        destroy(r);
        return;
    }
    loop_timer_set(&r->timer, runtime.cfg->header_timeout_ms);
}

int redirect_listen(void)
{
    return acceptor_open(&listener, &runtime.cfg->redirect, 64, 16, "redirect", accepted);
}

void redirect_close(void)
{
    acceptor_close(&listener);
}
