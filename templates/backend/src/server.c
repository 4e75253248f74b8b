/*
 * uproxy's default backend: a small single-threaded HTTP/1.1 server.
 *
 *   backend --listen ADDR:PORT --name NAME
 *
 * GET /        an HTML page naming this instance and showing its memory use (when known)
 * GET /health  "ok"
 * (routed on the path: a query string such as `/?x` is ignored)
 *
 * Built on poll() and plain sockets only, so the same file runs as a host process, in a
 * Linux microVM and as a Unikraft unikernel (musl + lwip + posix-poll). Memory use comes from
 * /proc when it exists, else getrusage(); a unikernel has no /proc and its getrusage() says 0,
 * so there the page leaves memory out.
 *
 * Requests are parsed by llhttp in request.c: this file only moves bytes and answers. Keep
 * it that way when you add routes: framing a request by hand (reading Content-Length and
 * ignoring Transfer-Encoding, say) lets a body be read as a request behind the proxy.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "request.h"

#define MAX_CLIENTS 256
/* Input waits here only while the answer to the request before it is being sent: llhttp
 * keeps no bytes of its own (heads are bounded by REQUEST_HEAD_MAX in request.c). */
#define IN_BUFFER 8192
#define OUT_BUFFER 8192
#define NAME_MAX_LEN 64
#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000

struct client {
    int fd;
    size_t in_len;
    size_t out_len;
    size_t out_sent;
    int close_after_write;
    struct request req;
    char in[IN_BUFFER];
    char out[OUT_BUFFER];
};

struct server {
    int listen_fd;
    unsigned accept_backoff_ms;
    long long accept_resume_ms; /* 0 while accepting */
    char name[NAME_MAX_LEN];
    unsigned long long requests;
    time_t started;
    struct client clients[MAX_CLIENTS];
};

static struct server srv;

static void usage(const char *program)
{
    fprintf(stderr, "usage: %s --listen ADDR:PORT --name NAME\n", program);
}

static int parse_listen(const char *text, struct sockaddr_in *addr)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    size_t host_len;
    long port;
    char *end;

    if (colon == NULL || colon == text)
        return -1;
    host_len = (size_t)(colon - text);
    if (host_len >= sizeof(host))
        return -1;
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535)
        return -1;
    memset(addr, 0, sizeof(*addr));
    addr->sin_family = AF_INET;
    addr->sin_port = htons((unsigned short)port);
    return inet_pton(AF_INET, host, &addr->sin_addr) == 1 ? 0 : -1;
}

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL, 0);

    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static int open_listener(const struct sockaddr_in *addr)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, 128) < 0 ||
        set_nonblocking(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Resident memory in KiB: current from /proc when there is one, else the peak from getrusage;
 * 0 when neither knows (Unikraft's getrusage() fills in zeros). */
static long memory_kib(const char **what)
{
    struct rusage usage;
    FILE *statm = fopen("/proc/self/statm", "r");
    long pages_total, pages_resident;

    if (statm != NULL) {
        int matched = fscanf(statm, "%ld %ld", &pages_total, &pages_resident);

        fclose(statm);
        if (matched == 2) {
            *what = "resident";
            return pages_resident * (sysconf(_SC_PAGESIZE) / 1024);
        }
    }
    *what = "peak resident";
    if (getrusage(RUSAGE_SELF, &usage) == 0 && usage.ru_maxrss > 0)
        return usage.ru_maxrss;
    return 0;
}

/* A response to HEAD has the headers of the GET response and no body (RFC 9110 9.3.2). */
static void respond(struct client *c, int status, const char *reason, const char *type, const char *body)
{
    size_t body_len = strlen(body);
    int n = snprintf(c->out, sizeof(c->out),
             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nX-Backend: %s\r\n%s\r\n%s",
             status, reason, type, body_len, srv.name,
             c->close_after_write ? "Connection: close\r\n" : "", c->req.head_method ? "" : body);

    c->out_len = (n < 0 || (size_t)n >= sizeof(c->out)) ? 0 : (size_t)n;
    c->out_sent = 0;
    if (c->out_len == 0)
        c->close_after_write = 1;
}

static void serve_page(struct client *c)
{
    char body[2048];
    char memory[64] = "";
    const char *what = "resident";
    long kib = memory_kib(&what);

    /* An unknown figure is left out rather than shown as 0. */
    if (kib > 0)
        snprintf(memory, sizeof(memory), "<p>Memory: %ld KiB %s</p>\n", kib, what);
    snprintf(body, sizeof(body),
         "<!doctype html>\n<html><head><title>%s</title></head><body>\n"
         "<h1>Hello from %s</h1>\n"
         "<p>Instance: <b>%s</b> (pid %ld)</p>\n"
         "%s"
         "<p>Requests served: %llu; up %lld s</p>\n"
         "</body></html>\n",
         srv.name, srv.name, srv.name, (long)getpid(), memory, srv.requests,
         (long long)(time(NULL) - srv.started));
    respond(c, 200, "OK", "text/html; charset=utf-8", body);
}

static void route(struct client *c)
{
    if (request_path_is(&c->req, "/health"))
        respond(c, 200, "OK", "text/plain", "ok\n");
    else if (request_path_is(&c->req, "/") || request_path_is(&c->req, "/index.html"))
        serve_page(c);
    else
        respond(c, 404, "Not Found", "text/plain", "not found\n");
}

/* After a framing error nothing later on the connection can be trusted: answer and close. */
static void refuse(struct client *c, int status)
{
    c->close_after_write = 1;
    c->in_len = 0;
    if (status == 413)
        respond(c, 413, "Content Too Large", "text/plain", "request body too large\n");
    else if (status == 431)
        respond(c, 431, "Request Header Fields Too Large", "text/plain", "request head too large\n");
    else
        respond(c, 400, "Bad Request", "text/plain", "bad request\n");
}

/* Answers the request the parser stopped at (complete, or refused). */
static void answer(struct client *c)
{
    if (c->req.state == REQUEST_ERROR) {
        refuse(c, c->req.error);
        return;
    }
    srv.requests++;
    c->close_after_write = !c->req.keep_alive;
    route(c);
    request_next(&c->req);
}

static void drop_client(struct client *c)
{
    close(c->fd);
    c->fd = -1;
}

static void flush_output(struct client *c)
{
    while (c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                drop_client(c);
            return;
        }
        c->out_sent += (size_t)n;
    }
    c->out_len = c->out_sent = 0;
    if (c->close_after_write)
        drop_client(c);
}

/* Parses what is buffered and answers each complete request in turn. A response not yet
 * sent stops this until it is (run() then calls it again), so answers keep their order. */
static void process_input(struct client *c)
{
    while (c->fd >= 0 && c->out_len == 0 && c->in_len > 0) {
        size_t used = request_parse(&c->req, c->in, c->in_len);

        memmove(c->in, c->in + used, c->in_len - used);
        c->in_len -= used;
        if (c->req.state == REQUEST_MORE)
            return;
        answer(c);
        flush_output(c);
    }
}

/* The parser takes every byte unless it stopped at a request being answered, and then the
 * connection is polled for output, not input: the buffer has room whenever this runs. */
static void read_client(struct client *c)
{
    ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        drop_client(c);
        return;
    }
    if (n > 0)
        c->in_len += (size_t)n;
    process_input(c);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * When accept() fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS), the
 * connection stays queued and poll() reports the listener readable again at once: a 100% CPU
 * spin. Stop polling the listener for a while instead, doubling the pause while it lasts.
 */
static void pause_accept(int err)
{
    srv.accept_backoff_ms = srv.accept_backoff_ms ? srv.accept_backoff_ms * 2 : ACCEPT_BACKOFF_MIN_MS;
    if (srv.accept_backoff_ms > ACCEPT_BACKOFF_MAX_MS)
        srv.accept_backoff_ms = ACCEPT_BACKOFF_MAX_MS;
    srv.accept_resume_ms = now_ms() + srv.accept_backoff_ms;
    fprintf(stderr, "backend %s: accept failed (%s), retrying in %u ms\n", srv.name, strerror(err),
            srv.accept_backoff_ms);
}

/* How long poll() may wait: forever, or until the paused listener is polled again. */
static int poll_timeout(void)
{
    long long left;

    if (srv.accept_resume_ms == 0)
        return -1;
    left = srv.accept_resume_ms - now_ms();
    if (left > 0)
        return (int)left;
    srv.accept_resume_ms = 0;
    return -1;
}

static void accept_clients(void)
{
    for (;;) {
        int fd = accept(srv.listen_fd, NULL, NULL);
        int one = 1;
        int slot;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                pause_accept(errno);
            return;
        }
        srv.accept_backoff_ms = 0;
        for (slot = 0; slot < MAX_CLIENTS && srv.clients[slot].fd >= 0; slot++)
            ;
        if (slot == MAX_CLIENTS || set_nonblocking(fd) < 0) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        srv.clients[slot].fd = fd;
        srv.clients[slot].in_len = 0;
        srv.clients[slot].out_len = 0;
        srv.clients[slot].out_sent = 0;
        srv.clients[slot].close_after_write = 0;
        request_init(&srv.clients[slot].req);
    }
}

static void run(void)
{
    static struct pollfd fds[MAX_CLIENTS + 1];
    static int owner[MAX_CLIENTS + 1];

    for (;;) {
        nfds_t n = 0;
        int timeout = poll_timeout();

        /* poll() skips a negative descriptor: the listener, while accepting is paused. */
        fds[n].fd = srv.accept_resume_ms != 0 ? -1 : srv.listen_fd;
        fds[n].events = POLLIN;
        owner[n++] = -1;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = &srv.clients[i];

            if (c->fd < 0)
                continue;
            fds[n].fd = c->fd;
            fds[n].events = c->out_len > 0 ? POLLOUT : POLLIN;
            owner[n++] = i;
        }
        if (poll(fds, n, timeout) < 0) {
            if (errno == EINTR)
                continue;
            perror("poll");
            exit(1);
        }
        for (nfds_t k = 1; k < n; k++) {
            struct client *c = &srv.clients[owner[k]];

            if (fds[k].revents & (POLLERR | POLLNVAL))
                drop_client(c);
            else if (fds[k].revents & POLLOUT) {
                flush_output(c);
                process_input(c);
            } else if (fds[k].revents & (POLLIN | POLLHUP))
                read_client(c);
        }
        if (fds[0].revents & POLLIN)
            accept_clients();
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    const char *listen_arg = NULL;
    const char *name = "backend";

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_arg = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else {
            fprintf(stderr, "backend: unknown argument \"%s\"\n", argv[i]);
            usage(argv[0]);
            return 2;
        }
    }
    if (listen_arg == NULL || parse_listen(listen_arg, &addr) < 0) {
        fprintf(stderr, "backend: --listen needs an IPv4 ADDR:PORT such as 127.0.0.1:9001\n");
        usage(argv[0]);
        return 2;
    }
    if (strlen(name) >= sizeof(srv.name)) {
        fprintf(stderr, "backend: --name is longer than %d characters\n", NAME_MAX_LEN - 1);
        return 2;
    }
    strcpy(srv.name, name);
    srv.started = time(NULL);
    for (int i = 0; i < MAX_CLIENTS; i++)
        srv.clients[i].fd = -1;
    srv.listen_fd = open_listener(&addr);
    if (srv.listen_fd < 0) {
        fprintf(stderr, "backend: cannot listen on %s: %s\n", listen_arg, strerror(errno));
        return 1;
    }
    fprintf(stderr, "backend %s listening on %s\n", srv.name, listen_arg);
    run();
    return 0;
}
