/*
 * uproxy's default backend: a small single-threaded HTTP/1.1 server.
 *
 *   backend --listen ADDR:PORT --name NAME [--idle-timeout-ms N] [--header-timeout-ms N]
 *
 * GET /        an HTML page naming this instance and showing its memory use (when known)
 * GET /health  "ok"
 * (routed on the path: a query string such as `/?x` is ignored)
 *
 * Built on poll() and plain sockets only, so the same file runs as a host process, in a
 * Linux microVM and as a Unikraft unikernel (musl + lwip + posix-poll). Memory use comes from
 * /proc when it exists, else getrusage(); a native Unikraft kernel has neither (its
 * getrusage() says 0), so there the page shows what its allocator has free, and where nothing
 * knows, leaves memory out.
 *
 * It defends itself, since a peer can vanish without a FIN (a VM powered off) or never send:
 * - a connection silent for --idle-timeout-ms (default 60 s) is closed, and so is a request
 *   body or a response that makes no progress for that long; a request head must be complete
 *   --header-timeout-ms (default 10 s) after its first byte;
 * - TCP keepalive on every connection (probes after 30 s idle, every 10 s, 3 of them);
 * - client buffers are allocated per connection, so memory follows load, and the table of
 *   connections is as large as the network stack allows (MAX_CLIENTS below);
 * - a transient failure of poll() or accept() (no memory, no descriptors) pauses and retries,
 *   doubling the pause up to 1 s; only an error that can never pass (EBADF, EINVAL, EFAULT)
 *   ends the program.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "request.h"

#ifdef __Unikraft__
#include <uk/config.h>
#if CONFIG_LIBUKALLOC
#include <uk/alloc.h>
#define HAVE_UK_ALLOC 1
#endif
#endif

/*
 * How many connections the server holds at once. Under Unikraft, lwip has one netconn per
 * socket, CONFIG_LWIP_NUM_TCPCON of them (the Kraftfile's LWIP_NUM_TCPCON), and the listener
 * takes one: TCPCON - 1 clients is all it can ever accept. Elsewhere (host, microVM, static
 * build) 256, or -DMAX_CLIENTS=N. While the table is full the listener is not polled and new
 * connections wait in the accept queue. The table itself is pointers: a client's buffers
 * (8 KiB) are allocated when it connects and freed when it goes.
 */
#ifndef MAX_CLIENTS
#if defined(CONFIG_LWIP_NUM_TCPCON)
#define MAX_CLIENTS (CONFIG_LWIP_NUM_TCPCON - 1)
#else
#define MAX_CLIENTS 256
#endif
#endif
/* Input waits here only while the answer to the request before it is being sent: llhttp
 * keeps no bytes of its own (heads are bounded by REQUEST_HEAD_MAX in request.c, whatever
 * this holds). The largest response is the page: a 2 KB body and its head. */
#define IN_BUFFER 4096
#define OUT_BUFFER 3072
#define NAME_MAX_LEN 64
#define BACKOFF_MIN_MS 10
#define BACKOFF_MAX_MS 1000
/*
 * 60 s: longer than any idle connection the proxy keeps to a backend (it closes pooled ones
 * after --upstream-idle-timeout-ms, 4 s by default), so the proxy always closes first and
 * never sends a request on a connection this end is closing. What this timeout catches is a
 * peer that is gone: a proxy VM powered off with QMP quit sends no FIN.
 */
#define IDLE_TIMEOUT_MS_DEFAULT 60000
/* As the proxy's --header-timeout-ms: a head trickled in byte by byte holds a slot no longer. */
#define HEADER_TIMEOUT_MS_DEFAULT 10000
/* TCP keepalive, as the proxy sets it: a silent peer is probed after 30 s, dropped ~30 s later. */
#define KEEPALIVE_IDLE_S 30
#define KEEPALIVE_INTERVAL_S 10
#define KEEPALIVE_COUNT 3

struct client {
    int fd;
    size_t in_len;
    size_t out_len;
    size_t out_sent;
    int close_after_write;
    long long deadline_ms; /* when the connection is closed unless it makes progress */
    long long head_started_ms; /* the first byte of the request head being read, 0 if none */
    struct request req;
    char in[IN_BUFFER];
    char out[OUT_BUFFER];
};

struct server {
    int listen_fd;
    unsigned accept_backoff_ms;
    long long accept_resume_ms; /* 0 while accepting */
    unsigned poll_backoff_ms;
    unsigned idle_timeout_ms;
    unsigned header_timeout_ms;
    int clients_open;
    /* A fatal error ends run() and main() returns: under Unikraft returning from main powers
     * the VM off (QEMU exits, so uproxy replaces it), while exit() would stop only the program
     * and leave the VM up, halted. */
    int failed;
    char name[NAME_MAX_LEN];
    unsigned long long requests;
    time_t started;
    struct client *clients[MAX_CLIENTS]; /* NULL: a free slot */
};

/* A client fits in two 4 KiB pages with the 32-byte header of Unikraft's malloc over its page
 * allocator, which rounds up to a power of two pages: 8 KiB a connection (two 8 KiB buffers
 * took 32). */
_Static_assert(sizeof(struct client) <= 8192 - 32, "struct client outgrew two pages");

static struct server srv;

/* A line on stderr, after the wall-clock time in RFC 3339 UTC (2026-01-31T23:59:59.123Z), by
 * which `uproxy logs` interleaves this machine's lines with the others'. One write(2), so a
 * line is never split or left in a buffer. */
static void log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_line(const char *fmt, ...)
{
    char line[512];
    struct timespec ts;
    struct tm tm;
    va_list ap;
    int n, m;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = snprintf(line, sizeof(line), "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ ", (unsigned)(tm.tm_year + 1900) % 10000u,
                 (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
                 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u, (unsigned)(ts.tv_nsec / 1000000) % 1000u);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    n += m > 0 ? m : 0;
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* A failed write has nowhere else to be reported. */
    (void)!write(STDERR_FILENO, line, (size_t)n);
}

static void usage(const char *program)
{
    fprintf(stderr,
            "usage: %s --listen ADDR:PORT --name NAME [--idle-timeout-ms N] [--header-timeout-ms N]\n"
            "  --idle-timeout-ms N    close a connection silent (or a body or response stalled) for\n"
            "                         N ms (default %d)\n"
            "  --header-timeout-ms N  close a connection whose request head is not complete N ms\n"
            "                         after its first byte (default %d)\n",
            program, IDLE_TIMEOUT_MS_DEFAULT, HEADER_TIMEOUT_MS_DEFAULT);
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

/* Best effort: a stack without one of these options still serves, only without it. */
static void set_keepalive(int fd)
{
    int on = 1, idle = KEEPALIVE_IDLE_S, interval = KEEPALIVE_INTERVAL_S, count = KEEPALIVE_COUNT;

    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

static int open_listener(const struct sockaddr_in *addr)
{
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    /* Linux hands these to every accepted socket; lwip only SO_KEEPALIVE (accept_clients sets
     * them again on each connection). */
    set_keepalive(fd);
    if (bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0 || listen(fd, 128) < 0 ||
        set_nonblocking(fd) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Memory for the page, in KiB, and what the figure is: resident (current, from /proc), else
 * peak resident (getrusage), else free in a Unikraft kernel's heap (its allocator's count);
 * 0 when nothing knows (Unikraft's getrusage() fills in zeros). */
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
#ifdef HAVE_UK_ALLOC
    {
        /* Every registered allocator's free bytes (Unikraft 0.16: uk_alloc_availmem_total). */
        long long free_bytes = (long long)uk_alloc_availmem_total();

        if (free_bytes > 0) {
            *what = "free in the unikernel's heap";
            return (long)(free_bytes / 1024);
        }
    }
#endif
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
    char memory[128] = "";
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
         "<p>Open connections: %d</p>\n"
         "</body></html>\n",
         srv.name, srv.name, srv.name, (long)getpid(), memory, srv.requests,
         (long long)(time(NULL) - srv.started), srv.clients_open);
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

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * After any progress on a connection, when it is closed unless it makes more: a request head
 * has until --header-timeout-ms after its first byte; a response being sent, a request body
 * being read and a connection waiting for its next request have --idle-timeout-ms from now.
 */
static void set_deadline(struct client *c)
{
    long long now = now_ms();

    if (c->out_len == 0 && !c->req.head_done && c->req.head_bytes > 0) {
        if (c->head_started_ms == 0)
            c->head_started_ms = now;
        c->deadline_ms = c->head_started_ms + srv.header_timeout_ms;
    } else
        c->deadline_ms = now + srv.idle_timeout_ms;
}

/* Answers the request the parser stopped at (complete, or refused). */
static void answer(struct client *c)
{
    c->head_started_ms = 0; /* the next request's head starts its own clock */
    if (c->req.state == REQUEST_ERROR) {
        refuse(c, c->req.error);
        return;
    }
    srv.requests++;
    c->close_after_write = !c->req.keep_alive;
    route(c);
    request_next(&c->req);
}

/* Closes the connection; run() frees the client once it is done with it this round. */
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
        set_deadline(c);
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
            break;
        answer(c);
        flush_output(c);
    }
    if (c->fd >= 0)
        set_deadline(c);
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

/* The next pause of a transient failure: 10 ms, doubling up to 1 s while failures last. */
static unsigned next_backoff(unsigned previous)
{
    unsigned next = previous ? previous * 2 : BACKOFF_MIN_MS;

    return next > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : next;
}

/* Errors that no waiting cures: a bug, not a shortage. Anything else (ENOMEM, ENOBUFS, EMFILE,
 * ENFILE, and whatever a small network stack reports under load) is retried after a pause. */
static int fatal_error(int err)
{
    return err == EBADF || err == EINVAL || err == EFAULT || err == ENOTSOCK || err == EOPNOTSUPP;
}

/*
 * When accept() fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), the
 * connection stays queued and poll() reports the listener readable again at once: a 100% CPU
 * spin. Stop polling the listener for a while instead, doubling the pause while it lasts.
 */
static void pause_accept(int err)
{
    srv.accept_backoff_ms = next_backoff(srv.accept_backoff_ms);
    srv.accept_resume_ms = now_ms() + srv.accept_backoff_ms;
    log_line("backend %s: accept failed (%s), retrying in %u ms", srv.name, strerror(err),
            srv.accept_backoff_ms);
}

/* How long poll() may wait: until the paused listener is polled again or the first client
 * deadline, whichever is sooner; forever when there is neither. */
static int poll_timeout(void)
{
    long long now = now_ms();
    long long until = 0;

    if (srv.accept_resume_ms != 0 && srv.accept_resume_ms <= now)
        srv.accept_resume_ms = 0;
    if (srv.accept_resume_ms != 0)
        until = srv.accept_resume_ms;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = srv.clients[i];

        if (c != NULL && (until == 0 || c->deadline_ms < until))
            until = c->deadline_ms;
    }
    if (until == 0)
        return -1;
    if (until <= now)
        return 0;
    return until - now > 24 * 3600 * 1000LL ? 24 * 3600 * 1000 : (int)(until - now);
}

static void accept_clients(void)
{
    while (srv.clients_open < MAX_CLIENTS) {
        /* The memory first: without it the connection waits in the queue, not accepted and
         * dropped. */
        struct client *c = malloc(sizeof(*c));
        int fd = c != NULL ? accept(srv.listen_fd, NULL, NULL) : -1;
        int err = c != NULL ? errno : ENOMEM;
        int one = 1;
        int slot;

        if (fd < 0) {
            free(c);
            if (err == EINTR || err == ECONNABORTED || err == EPROTO)
                continue;
            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (fatal_error(err)) {
                log_line("backend %s: accept: %s", srv.name, strerror(err));
                srv.failed = 1;
                return;
            }
            pause_accept(err);
            return;
        }
        srv.accept_backoff_ms = 0;
        if (set_nonblocking(fd) < 0) {
            close(fd);
            free(c);
            continue;
        }
        for (slot = 0; srv.clients[slot] != NULL; slot++)
            ;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        set_keepalive(fd);
        c->fd = fd;
        c->in_len = 0;
        c->out_len = 0;
        c->out_sent = 0;
        c->close_after_write = 0;
        c->head_started_ms = 0;
        request_init(&c->req);
        set_deadline(c);
        srv.clients[slot] = c;
        srv.clients_open++;
    }
}

/* Closes the connections whose deadline has passed. */
static void expire_clients(void)
{
    long long now = now_ms();

    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = srv.clients[i];

        if (c != NULL && c->deadline_ms <= now) {
            drop_client(c);
            free(c);
            srv.clients[i] = NULL;
            srv.clients_open--;
        }
    }
}

/* poll() failed: a transient shortage (Unikraft 0.16's poll() allocates on every call and can
 * fail with ENOMEM under load) is waited out, the pause doubling up to 1 s while it lasts. */
static void poll_failed(int err)
{
    struct timespec pause;

    if (fatal_error(err)) {
        log_line("backend %s: poll: %s", srv.name, strerror(err));
        srv.failed = 1;
        return;
    }
    srv.poll_backoff_ms = next_backoff(srv.poll_backoff_ms);
    log_line("backend %s: poll failed (%s), retrying in %u ms", srv.name, strerror(err),
            srv.poll_backoff_ms);
    pause.tv_sec = srv.poll_backoff_ms / 1000;
    pause.tv_nsec = (long)(srv.poll_backoff_ms % 1000) * 1000000L;
    nanosleep(&pause, NULL);
}

static void run(void)
{
    static struct pollfd fds[MAX_CLIENTS + 1];
    static int owner[MAX_CLIENTS + 1];

    while (!srv.failed) {
        nfds_t n = 0;
        int timeout = poll_timeout();

        /* poll() skips a negative descriptor: the listener, while accepting is paused or the
         * table is full. */
        fds[n].fd = srv.accept_resume_ms != 0 || srv.clients_open >= MAX_CLIENTS ? -1 : srv.listen_fd;
        fds[n].events = POLLIN;
        fds[n].revents = 0;
        owner[n++] = -1;
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = srv.clients[i];

            if (c == NULL)
                continue;
            fds[n].fd = c->fd;
            fds[n].events = c->out_len > 0 ? POLLOUT : POLLIN;
            fds[n].revents = 0;
            owner[n++] = i;
        }
        if (poll(fds, n, timeout) < 0) {
            if (errno != EINTR)
                poll_failed(errno);
            continue;
        }
        srv.poll_backoff_ms = 0;
        for (nfds_t k = 1; k < n; k++) {
            struct client *c = srv.clients[owner[k]];

            if (fds[k].revents & (POLLERR | POLLNVAL))
                drop_client(c);
            else if (fds[k].revents & POLLOUT) {
                flush_output(c);
                if (c->fd >= 0)
                    process_input(c);
            } else if (fds[k].revents & (POLLIN | POLLHUP))
                read_client(c);
            if (c->fd < 0) {
                free(c);
                srv.clients[owner[k]] = NULL;
                srv.clients_open--;
            }
        }
        expire_clients();
        if (fds[0].revents & POLLIN)
            accept_clients();
    }
}

/* A positive number of milliseconds, or -1. */
static long parse_ms(const char *text)
{
    char *end;
    long v = strtol(text, &end, 10);

    return *text != '\0' && *end == '\0' && v >= 1 && v <= 24L * 3600 * 1000 ? v : -1;
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    const char *listen_arg = NULL;
    const char *name = "backend";

    srv.idle_timeout_ms = IDLE_TIMEOUT_MS_DEFAULT;
    srv.header_timeout_ms = HEADER_TIMEOUT_MS_DEFAULT;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc)
            listen_arg = argv[++i];
        else if (strcmp(argv[i], "--name") == 0 && i + 1 < argc)
            name = argv[++i];
        else if ((strcmp(argv[i], "--idle-timeout-ms") == 0 || strcmp(argv[i], "--header-timeout-ms") == 0) &&
                 i + 1 < argc) {
            long ms = parse_ms(argv[i + 1]);

            if (ms < 0) {
                fprintf(stderr, "backend: %s needs milliseconds from 1 to 86400000, got \"%s\"\n", argv[i],
                        argv[i + 1]);
                return 2;
            }
            if (strcmp(argv[i], "--idle-timeout-ms") == 0)
                srv.idle_timeout_ms = (unsigned)ms;
            else
                srv.header_timeout_ms = (unsigned)ms;
            i++;
        } else {
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
    srv.listen_fd = open_listener(&addr);
    if (srv.listen_fd < 0) {
        log_line("backend: cannot listen on %s: %s", listen_arg, strerror(errno));
        return 1;
    }
    log_line("backend %s listening on %s", srv.name, listen_arg);
    run();
    return srv.failed ? 1 : 0;
}
