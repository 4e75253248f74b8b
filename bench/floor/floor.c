// floor: the least work a token-checking relay can do per request. The bench runs it next to
// the real proxies as a reference ("what one core can do here at all"); it is NOT a proxy.
//
// It does no HTTP parsing. Each chunk read from a client is searched for the exact line
// "X-Auth-Token: <token>\r\n": a chunk without it is answered with a fixed 401 (keep-alive), a
// chunk with it is sent to that client's own upstream connection as it is (the token is not
// stripped). Every chunk from upstream goes back to the client as it is. Balancing is
// round-robin per client connection (one upstream connection each, opened on accept), not per
// request. This is only right when each request arrives whole in one chunk, as the bench's
// small GETs do: a body spread over several chunks would be denied chunk by chunk.
//
// usage: FLOOR_TOKEN=<token> floor PORT BACKEND_PORT...   (everything on 127.0.0.1)
// The token comes from the environment so that it never shows in a process listing.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_BACKENDS 16
#define CHUNK 16384
#define MAX_EVENTS 256
#define MAX_TOKEN 200

// One side of a client <-> upstream pair. `pending` holds what a send could not take at once.
// While either side has pending bytes the pair reads nothing (backpressure), so `pending`
// never holds more than one chunk and no data is dropped.
struct end {
  int fd;
  int is_client;
  struct end *peer;
  struct pair *pair;
  size_t pending_len;
  char pending[CHUNK];
};

struct pair {
  struct end client, upstream;
  int closed;
  struct pair *next_dead;
};

static const char UNAUTHORIZED[] = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";

static int epfd;
static struct sockaddr_in backends[MAX_BACKENDS];
static int backend_count, next_backend;
static char needle[MAX_TOKEN + 32];
static size_t needle_len;
static struct pair *dead; // closed in this epoll batch; freed after it, as later events may name them
static unsigned long accepted, closed_on_error;
static volatile sig_atomic_t stopping;

static void on_signal(int sig) { (void)sig; stopping = 1; }

static struct sockaddr_in loopback(int port) {
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  return a;
}

static int parse_port(const char *s) {
  char *end;
  long p = strtol(s, &end, 10);
  if (*s == '\0' || *end != '\0' || p < 1 || p > 65535) {
    fprintf(stderr, "floor: \"%s\" is not a port (1-65535)\n", s);
    exit(2);
  }
  return (int)p;
}

static void set_nodelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Reading is on only while nothing waits to be sent in either direction; writing only while
// this side has pending bytes. Called when that state changes, which is rare.
static void watch(struct end *e, int op) {
  int readable = e->pending_len == 0 && e->peer->pending_len == 0;
  struct epoll_event ev = {.events = (readable ? EPOLLIN : 0) | (e->pending_len ? EPOLLOUT : 0), .data.ptr = e};
  epoll_ctl(epfd, op, e->fd, &ev);
}

static void close_pair(struct pair *p, int is_error) {
  if (p->closed) return;
  p->closed = 1;
  closed_on_error += is_error;
  close(p->client.fd);
  close(p->upstream.fd);
  p->next_dead = dead;
  dead = p;
}

// Sends what the socket takes now and keeps the rest for EPOLLOUT. `to` has nothing pending
// here: no side of a pair is read while the other has pending bytes.
static int send_or_keep(struct end *to, const char *data, size_t len) {
  ssize_t n = send(to->fd, data, len, MSG_NOSIGNAL);
  if (n < 0 && errno != EAGAIN) return -1;
  size_t sent = n < 0 ? 0 : (size_t)n;
  if (sent == len) return 0;
  memcpy(to->pending, data + sent, len - sent);
  to->pending_len = len - sent;
  watch(to, EPOLL_CTL_MOD);
  watch(to->peer, EPOLL_CTL_MOD);
  return 0;
}

static int flush_pending(struct end *e) {
  ssize_t n = send(e->fd, e->pending, e->pending_len, MSG_NOSIGNAL);
  if (n < 0) return errno == EAGAIN ? 0 : -1;
  memmove(e->pending, e->pending + n, e->pending_len - (size_t)n);
  e->pending_len -= (size_t)n;
  if (e->pending_len == 0) {
    watch(e, EPOLL_CTL_MOD);
    watch(e->peer, EPOLL_CTL_MOD);
  }
  return 0;
}

// One recv per readiness: level-triggered epoll reports the socket again if more is queued.
static void relay(struct end *from) {
  static char buf[CHUNK];
  ssize_t n = recv(from->fd, buf, sizeof buf, 0);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    close_pair(from->pair, n < 0);
    return;
  }
  int ok;
  if (from->is_client && !memmem(buf, (size_t)n, needle, needle_len)) {
    ok = send_or_keep(from, UNAUTHORIZED, sizeof UNAUTHORIZED - 1);
  } else {
    ok = send_or_keep(from->peer, buf, (size_t)n);
  }
  if (ok < 0) close_pair(from->pair, 1);
}

// Field by field rather than a struct literal: a literal would zero (and so touch) `pending`,
// adding 32 KiB of RSS per connection that is almost never used.
static void init_end(struct end *e, int fd, int is_client, struct end *peer, struct pair *p) {
  e->fd = fd;
  e->is_client = is_client;
  e->peer = peer;
  e->pair = p;
  e->pending_len = 0;
}

// The upstream connect is non-blocking: a request sent before it completes gets EAGAIN and
// waits in `pending` for EPOLLOUT like any partial send; a refused connect shows as EPOLLERR.
static void open_pair(int client_fd) {
  struct pair *p = malloc(sizeof *p);
  int up = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  struct sockaddr_in *b = &backends[next_backend++ % backend_count];
  if (!p || up < 0 || (connect(up, (struct sockaddr *)b, sizeof *b) < 0 && errno != EINPROGRESS)) {
    perror("floor: upstream connect");
    closed_on_error++;
    if (up >= 0) close(up);
    close(client_fd);
    free(p);
    return;
  }
  set_nodelay(client_fd);
  set_nodelay(up);
  p->closed = 0;
  init_end(&p->client, client_fd, 1, &p->upstream, p);
  init_end(&p->upstream, up, 0, &p->client, p);
  watch(&p->client, EPOLL_CTL_ADD);
  watch(&p->upstream, EPOLL_CTL_ADD);
}

// Accepts until the backlog is empty. Out of fds is fatal rather than retried: the listener
// would stay readable and the loop would spin.
static void accept_all(int listener) {
  for (;;) {
    int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EAGAIN || errno == ECONNABORTED || errno == EINTR) return;
      perror("floor: accept");
      exit(1);
    }
    accepted++;
    open_pair(fd);
  }
}

static void handle(struct end *e, uint32_t events) {
  if (e->pair->closed) return;
  if (e->pending_len && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && flush_pending(e) < 0) {
    close_pair(e->pair, 1);
    return;
  }
  int readable = e->pending_len == 0 && e->peer->pending_len == 0;
  if (readable && (events & (EPOLLIN | EPOLLERR | EPOLLHUP))) relay(e);
  // A hang-up while this side is paused would be reported on every wait: end the pair.
  else if (!readable && (events & (EPOLLERR | EPOLLHUP))) close_pair(e->pair, 1);
}

static int listen_on(int port) {
  struct sockaddr_in a = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
    fprintf(stderr, "floor: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
    exit(1);
  }
  return fd;
}

int main(int argc, char **argv) {
  const char *token = getenv("FLOOR_TOKEN");
  if (argc < 3 || argc - 2 > MAX_BACKENDS) {
    fprintf(stderr, "usage: FLOOR_TOKEN=<token> %s PORT BACKEND_PORT... (1-%d backends)\n", argv[0], MAX_BACKENDS);
    return 2;
  }
  if (!token || !*token || strlen(token) > MAX_TOKEN) {
    fprintf(stderr, "floor: set FLOOR_TOKEN to the client token (1-%d characters)\n", MAX_TOKEN);
    return 2;
  }
  needle_len = (size_t)snprintf(needle, sizeof needle, "X-Auth-Token: %s\r\n", token);
  int port = parse_port(argv[1]);
  for (backend_count = 0; backend_count < argc - 2; backend_count++) backends[backend_count] = loopback(parse_port(argv[2 + backend_count]));

  // SIGTERM/SIGINT are blocked except inside epoll_pwait, so a stop request cannot slip in
  // between the `stopping` check and the wait.
  sigset_t stop_signals, during_wait;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, &during_wait);
  struct sigaction sa = {.sa_handler = on_signal};
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);

  int listener = listen_on(port);
  epfd = epoll_create1(0);
  struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &lev);
  struct epoll_event events[MAX_EVENTS];
  while (!stopping) {
    int n = epoll_pwait(epfd, events, MAX_EVENTS, -1, &during_wait);
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == NULL) accept_all(listener);
      else handle(events[i].data.ptr, events[i].events);
    }
    for (struct pair *p = dead, *next; p; p = next) {
      next = p->next_dead;
      free(p);
    }
    dead = NULL;
  }
  fprintf(stderr, "floor: stopped; %lu connections accepted, %lu closed on an error\n", accepted, closed_on_error);
  return 0;
}
