#include "acceptor.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>

#include "log.h"

#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000

static struct acceptor *of_watcher(struct watcher *w)
{
    return (struct acceptor *)((char *)w - offsetof(struct acceptor, w));
}

static void resume(struct timer *t)
{
    struct acceptor *a = (struct acceptor *)((char *)t - offsetof(struct acceptor, backoff));
    if (a->w.fd >= 0)
        loop_watch(&a->w, EPOLLIN);
}

static void pause_accepting(struct acceptor *a, int err)
{
    a->backoff_ms = a->backoff_ms ? a->backoff_ms * 2 : BACKOFF_MIN_MS;
    if (a->backoff_ms > BACKOFF_MAX_MS)
        a->backoff_ms = BACKOFF_MAX_MS;
    log_error("accept_paused", "error=\"%s\" retry_ms=%u role=%s", strerror(err), a->backoff_ms, a->role);
    loop_watch(&a->w, 0);
    loop_timer_set(&a->backoff, a->backoff_ms);
}

static void on_readable(struct watcher *w, uint32_t events)
{
    (void)events;
    struct acceptor *a = of_watcher(w);
    for (int i = 0; i < a->batch && a->w.fd >= 0; i++) {
        struct sockaddr_storage peer;
        socklen_t len;
        int fd = net_accept(w->fd, &peer, &len);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            pause_accepting(a, errno);
            return;
        }
        a->backoff_ms = 0;
        a->on_accept(fd, &peer);
    }
}

int acceptor_open(struct acceptor *a, const struct net_addr *addr, int backlog, int batch, const char *role,
                  accept_fn on_accept)
{
    a->backoff_ms = 0;
    a->batch = batch;
    a->role = role;
    a->on_accept = on_accept;
    if (loop_timer_init(&a->backoff, resume) < 0)
        return -1;
    int fd = net_listen(addr, backlog);
    if (fd < 0)
        return -1;
    loop_watcher_init(&a->w, fd, on_readable);
    return loop_watch(&a->w, EPOLLIN);
}

void acceptor_close(struct acceptor *a)
{
    loop_timer_clear(&a->backoff);
    loop_close(&a->w);
}
