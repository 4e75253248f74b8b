#include "listener.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "runtime.h"
#include "stats.h"
#include "tls.h"

#define ACCEPT_BATCH 64
#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000

static struct watcher listener;
static struct timer accept_backoff_timer;
static unsigned accept_backoff_ms;

static void resume_accept(struct timer *t)
{
    (void)t;
    if (!runtime.shutting_down)
        loop_watch(&listener, EPOLLIN);
}

/* A failing accept (EMFILE, ENFILE, ENOMEM, ...) would fail again at once: the listener leaves
 * epoll behind a timer rather than keep a cooperative unikernel spinning. */
static void pause_accept(int err)
{
    accept_backoff_ms = accept_backoff_ms ? accept_backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
    if (accept_backoff_ms > ACCEPT_BACKOFF_MAX_MS)
        accept_backoff_ms = ACCEPT_BACKOFF_MAX_MS;
    log_error("accept_paused", "error=\"%s\" retry_ms=%u", strerror(err), accept_backoff_ms);
    loop_watch(&listener, 0);
    loop_timer_set(&accept_backoff_timer, accept_backoff_ms);
}

static void reject(int fd)
{
    static const char busy[] = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                               "Content-Length: 32\r\nConnection: close\r\n\r\n{\"error\":\"too many connections\"}";
    char sink[4096];
    stats.conn_rejected++;
    /* A TLS client could not read a plain answer: it only sees the connection close. */
    if (!tls_enabled() && send(fd, busy, sizeof busy - 1, MSG_NOSIGNAL) < 0) {
        /* Nothing more to tell a client we cannot serve. */
    }
    /* close() with unread bytes sends a reset that can destroy the 503 before the client reads
     * it. The FIN goes out first and the request that already arrived is dropped, so the close
     * is orderly; anything arriving later meets a client that has already seen the end. */
    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 4; i++)
        if (recv(fd, sink, sizeof sink, MSG_DONTWAIT) <= 0)
            break;
    close(fd);
}

static void accept_event(struct watcher *w, uint32_t events)
{
    (void)events;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage peer;
        socklen_t len;
        int fd = net_accept(w->fd, &peer, &len);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            pause_accept(errno);
            return;
        }
        accept_backoff_ms = 0;
        if (tls_enabled() && tls_stats.in_progress >= runtime.cfg->max_handshakes) {
            /* Handshakes cost CPU: past the bound a new client is closed at once, before any. */
            stats.conn_rejected++;
            close(fd);
        } else if (conn_count() >= runtime.cfg->max_connections)
            reject(fd);
        else
            conn_accept(fd, &peer);
    }
}

int listener_open(void)
{
    if (loop_timer_init(&accept_backoff_timer, resume_accept) < 0)
        return -1;
    int fd = net_listen(&runtime.cfg->listen, 1024);
    if (fd < 0)
        return -1;
    loop_watcher_init(&listener, fd, accept_event);
    return loop_watch(&listener, EPOLLIN);
}

void listener_close(void)
{
    loop_timer_clear(&accept_backoff_timer);
    loop_close(&listener);
}
