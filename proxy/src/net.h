/* Socket helpers in the spirit of Redis' anet.c: every socket is non-blocking and close-on-exec,
 * created without any call Unikraft's lwip lacks (accept4 falls back to accept + fcntl). */
#ifndef UPROXY_NET_H
#define UPROXY_NET_H

#include <stddef.h>
#include <sys/socket.h>

struct net_addr {
    struct sockaddr_storage sa;
    socklen_t len;
};

/* Parses "HOST:PORT" or "[V6]:PORT" with a numeric host. Returns 0 or -1 with `why` set. */
int net_parse_addr(const char *text, struct net_addr *out, const char **why);
/* Writes "ip:port" (or "[ip]:port") into out. */
void net_format_addr(const struct net_addr *a, char *out, size_t cap);
/* Writes the bare ip of a peer into out. */
void net_format_ip(const struct sockaddr_storage *sa, char *out, size_t cap);

unsigned net_addr_port(const struct net_addr *a);
/* 0.0.0.0 or :: */
int net_addr_unspecified(const struct net_addr *a);
/* 127.0.0.0/8 or ::1 */
int net_addr_loopback(const struct net_addr *a);
/* The same address family and IP (ports aside). */
int net_addr_same_ip(const struct net_addr *a, const struct net_addr *b);

int net_listen(const struct net_addr *a, int backlog);
/* Accepts one connection; returns the fd, or -1 with errno (EAGAIN when none is pending). */
int net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *peer_len);
/* Starts a non-blocking connect; returns the fd (connection may still be in progress). */
int net_connect(const struct net_addr *a);
/* After EPOLLOUT on a connecting socket: 0 if connected, else the socket error. */
int net_connect_result(int fd);
int net_set_nonblock(int fd);
void net_set_nodelay(int fd);
/* TCP keepalive probes after 30 s idle, every 10 s, 3 lost ones end the connection: a peer that
 * vanished (a VM powered off, a cable pulled) cannot hold a connection slot for ever. Accepted
 * connections inherit it from their listener. Best effort: a stack without an option skips it. */
void net_set_keepalive(int fd);

#endif
