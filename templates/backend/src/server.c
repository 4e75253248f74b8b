/*
 * uproxy's default backend: a small single-threaded HTTP/1.1 server.
 *
 *   backend --listen ADDR:PORT --name NAME
 *
 * GET /        an HTML page naming this instance and showing its memory use
 * GET /health  "ok"
 *
 * Built on poll() and plain sockets only, so the same file runs as a host process, in a
 * Linux microVM and as a Unikraft unikernel (musl + lwip + posix-poll). Memory use comes from
 * getrusage(); /proc is read only when it exists, because a unikernel has none.
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
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CLIENTS 256
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

/* Resident memory in KiB: current from /proc when there is one, else the peak from getrusage. */
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
    if (getrusage(RUSAGE_SELF, &usage) == 0)
        return usage.ru_maxrss;
    return -1;
}

static void respond(struct client *c, int status, const char *reason, const char *type, const char *body)
{
    size_t body_len = strlen(body);
    int n = snprintf(c->out, sizeof(c->out),
             "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nX-Backend: %s\r\n%s\r\n%s",
             status, reason, type, body_len, srv.name,
             c->close_after_write ? "Connection: close\r\n" : "", body);

    c->out_len = (n < 0 || (size_t)n >= sizeof(c->out)) ? 0 : (size_t)n;
    c->out_sent = 0;
    if (c->out_len == 0)
        c->close_after_write = 1;
}

static void serve_page(struct client *c)
{
    char body[2048];
    const char *what = "resident";
    long kib = memory_kib(&what);

    snprintf(body, sizeof(body),
         "<!doctype html>\n<html><head><title>%s</title></head><body>\n"
         "<h1>Hello from %s</h1>\n"
         "<p>Instance: <b>%s</b> (pid %ld)</p>\n"
         "<p>Memory: %ld KiB %s</p>\n"
         "<p>Requests served: %llu; up %lld s</p>\n"
         "</body></html>\n",
         srv.name, srv.name, srv.name, (long)getpid(), kib, what, srv.requests,
         (long long)(time(NULL) - srv.started));
    respond(c, 200, "OK", "text/html; charset=utf-8", body);
}

/* Finds a header's value in the request head (case-insensitive name); 1 when it contains `token`. */
static int header_has(const char *head, const char *name, const char *token)
{
    size_t name_len = strlen(name);
    const char *line = strstr(head, "\r\n");

    while (line != NULL && line[2] != '\r') {
        line += 2;
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':') {
            const char *end = strstr(line, "\r\n");
            size_t len = end ? (size_t)(end - line) : strlen(line);
            char value[256];

            if (len >= sizeof(value))
                len = sizeof(value) - 1;
            memcpy(value, line, len);
            value[len] = '\0';
            return strcasestr(value + name_len + 1, token) != NULL;
        }
        line = strstr(line, "\r\n");
    }
    return 0;
}

static long content_length(const char *head)
{
    const char *p = strcasestr(head, "\r\ncontent-length:");

    return p == NULL ? 0 : strtol(p + 17, NULL, 10);
}

/* Handles one complete request at the start of the input buffer; returns the bytes it used, 0 if incomplete. */
static size_t handle_request(struct client *c)
{
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    char method[16], path[512], version[16];
    size_t head_len;
    long body_len;

    if (end == NULL)
        return 0;
    *end = '\0';
    head_len = (size_t)(end - c->in) + 4;
    body_len = content_length(c->in);
    if (body_len < 0 || (size_t)body_len > sizeof(c->in) - head_len) {
        c->close_after_write = 1;
        respond(c, 413, "Payload Too Large", "text/plain", "request body too large\n");
        return c->in_len;
    }
    if (c->in_len < head_len + (size_t)body_len) {
        *end = '\r';
        return 0;
    }
    srv.requests++;
    if (sscanf(c->in, "%15s %511s %15s", method, path, version) != 3) {
        c->close_after_write = 1;
        respond(c, 400, "Bad Request", "text/plain", "bad request line\n");
        return head_len + (size_t)body_len;
    }
    c->close_after_write = header_has(c->in, "Connection", "close") ||
                   (strcmp(version, "HTTP/1.0") == 0 && !header_has(c->in, "Connection", "keep-alive"));
    if (strcmp(path, "/health") == 0)
        respond(c, 200, "OK", "text/plain", "ok\n");
    else if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0)
        serve_page(c);
    else
        respond(c, 404, "Not Found", "text/plain", "not found\n");
    return head_len + (size_t)body_len;
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

/* Answers every complete request already buffered, one response at a time. */
static void process_input(struct client *c)
{
    while (c->fd >= 0 && c->out_len == 0 && c->in_len > 0) {
        size_t used = handle_request(c);

        if (used == 0) {
            if (c->in_len == sizeof(c->in)) {
                c->close_after_write = 1;
                respond(c, 431, "Request Header Fields Too Large", "text/plain", "request head too large\n");
                c->in_len = 0;
            } else {
                return;
            }
        } else {
            memmove(c->in, c->in + used, c->in_len - used);
            c->in_len -= used;
        }
        flush_output(c);
    }
}

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
