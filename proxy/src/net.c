#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int accept4_missing;
static int socket_flags_missing;

int net_parse_addr(const char *text, struct net_addr *out, const char **why)
{
    char host[64];
    const char *colon, *host_start = text;
    size_t host_len;
    memset(out, 0, sizeof *out);
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':') {
            *why = "expected [IPV6]:PORT";
            return -1;
        }
        host_start = text + 1;
        host_len = (size_t)(close - host_start);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (!colon) {
            *why = "expected HOST:PORT";
            return -1;
        }
        host_len = (size_t)(colon - text);
    }
    if (host_len == 0 || host_len >= sizeof host) {
        *why = "host is empty or too long";
        return -1;
    }
    memcpy(host, host_start, host_len);
    host[host_len] = '\0';
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno || port < 0 || port > 65535) {
        *why = "port must be a number from 0 to 65535";
        return -1;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&out->sa;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&out->sa;
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        out->len = sizeof *v4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        out->len = sizeof *v6;
        return 0;
    }
    *why = "host must be a numeric IPv4 or IPv6 address (no DNS inside a unikernel)";
    return -1;
}

unsigned net_addr_port(const struct net_addr *a)
{
    if (a->sa.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port);
    return ntohs(((const struct sockaddr_in *)&a->sa)->sin_port);
}

int net_addr_unspecified(const struct net_addr *a)
{
    if (a->sa.ss_family == AF_INET6)
        return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == htonl(INADDR_ANY);
}

int net_addr_loopback(const struct net_addr *a)
{
    if (a->sa.ss_family == AF_INET6)
        return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr);
    return (ntohl(((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr) >> 24) == 127;
}

int net_addr_same_ip(const struct net_addr *a, const struct net_addr *b)
{
    if (a->sa.ss_family != b->sa.ss_family)
        return 0;
    if (a->sa.ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)&a->sa)->sin6_addr, &((const struct sockaddr_in6 *)&b->sa)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return ((const struct sockaddr_in *)&a->sa)->sin_addr.s_addr == ((const struct sockaddr_in *)&b->sa)->sin_addr.s_addr;
}

void net_format_ip(const struct sockaddr_storage *sa, char *out, size_t cap)
{
    out[0] = '\0';
    if (sa->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, out, (socklen_t)cap);
    else if (sa->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, out, (socklen_t)cap);
}

void net_format_addr(const struct net_addr *a, char *out, size_t cap)
{
    char ip[64];
    net_format_ip(&a->sa, ip, sizeof ip);
    if (a->sa.ss_family == AF_INET6)
        snprintf(out, cap, "[%s]:%u", ip, ntohs(((const struct sockaddr_in6 *)&a->sa)->sin6_port));
    else
        snprintf(out, cap, "%s:%u", ip, ntohs(((const struct sockaddr_in *)&a->sa)->sin_port));
}

int net_set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -1;
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    return 0;
}

void net_set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void net_set_keepalive(int fd)
{
    int on = 1, idle = 30, interval = 10, count = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

/* The flags in socket() itself save three fcntl calls per upstream connection and health
 * check; a stack that rejects them (EINVAL) gets the fcntl path from then on. */
static int new_socket(int family)
{
    if (!socket_flags_missing) {
        int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd >= 0 || errno != EINVAL)
            return fd;
        socket_flags_missing = 1;
    }
    int fd = socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    if (net_set_nonblock(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int net_listen(const struct net_addr *a, int backlog)
{
    int fd = new_socket(a->sa.ss_family);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    net_set_keepalive(fd);
    if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0 || listen(fd, backlog) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int net_accept(int lfd, struct sockaddr_storage *peer, socklen_t *peer_len)
{
    int fd;
    *peer_len = sizeof *peer;
    if (!accept4_missing) {
        fd = accept4(lfd, (struct sockaddr *)peer, peer_len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0 || (errno != ENOSYS && errno != EINVAL))
            goto done;
        accept4_missing = 1;
    }
    fd = accept(lfd, (struct sockaddr *)peer, peer_len);
    if (fd >= 0 && net_set_nonblock(fd) < 0) {
        close(fd);
        errno = EBADF;
        return -1;
    }
done:
    if (fd >= 0)
        net_set_nodelay(fd);
    return fd;
}

int net_connect(const struct net_addr *a)
{
    int fd = new_socket(a->sa.ss_family);
    if (fd < 0)
        return -1;
    net_set_nodelay(fd);
    if (connect(fd, (const struct sockaddr *)&a->sa, a->len) < 0 && errno != EINPROGRESS) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

int net_connect_result(int fd)
{
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return errno;
    return err;
}
