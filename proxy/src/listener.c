#include "listener.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "acceptor.h"
#include "conn.h"
#include "log.h"
#include "loop.h"
#include "net.h"
#include "runtime.h"
#include "stats.h"
#include "tls.h"

#define ACCEPT_BATCH 64

static struct acceptor listener;

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

static void accepted(int fd, const struct sockaddr_storage *peer)
{
    if (tls_enabled() && tls_stats.in_progress >= runtime.cfg->max_handshakes) {
        /* Handshakes cost CPU: past the bound a new client is closed at once, before any. */
        stats.conn_rejected++;
        close(fd);
    } else if (conn_count() >= runtime.cfg->max_connections) {
        reject(fd);
    } else {
        conn_accept(fd, peer);
    }
}

int listener_open(void)
{
    return acceptor_open(&listener, &runtime.cfg->listen, 1024, ACCEPT_BATCH, "client", accepted);
}

void listener_close(void)
{
    acceptor_close(&listener);
}
