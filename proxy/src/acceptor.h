/* A listening socket that hands each accepted connection to its owner, in batches. When accept
 * fails for want of descriptors or memory (EMFILE, ENFILE, ENOMEM, ENOBUFS, ...) the socket
 * would be reported readable again at once: it leaves epoll behind a backoff timer (10 ms,
 * doubling to 1 s) instead, so a cooperative unikernel never spins on it. The client, admin
 * and redirect listeners are all one of these. */
#ifndef UPROXY_ACCEPTOR_H
#define UPROXY_ACCEPTOR_H

#include <sys/socket.h>

#include "loop.h"
#include "net.h"

typedef void (*accept_fn)(int fd, const struct sockaddr_storage *peer);

struct acceptor {
    struct watcher w;
    struct timer backoff;
    unsigned backoff_ms;
    int batch;        /* accepts per readiness event */
    const char *role; /* in the log line of a pause */
    accept_fn on_accept;
};

/* Listens on addr. 0, or -1 with errno. */
int acceptor_open(struct acceptor *a, const struct net_addr *addr, int backlog, int batch, const char *role,
                  accept_fn on_accept);
/* Stops accepting for good. */
void acceptor_close(struct acceptor *a);

#endif
