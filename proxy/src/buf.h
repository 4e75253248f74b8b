/* Fixed-size I/O buffers from a LIFO free list. A connection holds a buffer only while it has
 * bytes in flight, so idle keep-alive connections cost no buffer memory, and the most recently
 * released (cache-warm) buffer is handed out first.
 *
 * Layout of a buffer in use: [0, start) already sent or consumed, [start, parsed) parsed and
 * ready to forward, [parsed, end) received but not parsed yet, [end, cap) free. */
#ifndef UPROXY_BUF_H
#define UPROXY_BUF_H

#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>

struct buf {
    size_t start, parsed, end, cap;
    struct buf *next_free;
    char data[];
};

void buf_pool_init(size_t cap);
struct buf *buf_get(void);
void buf_put(struct buf *b);
/* Moves unsent bytes to the front, keeping `parsed` consistent. */
void buf_compact(struct buf *b);
static inline size_t buf_free_space(const struct buf *b) { return b->cap - b->end; }
static inline size_t buf_pending(const struct buf *b) { return b->parsed - b->start; }

/* Drops consumed bytes so the buffer can take more: reset when empty, compact when full. */
static inline void buf_tidy(struct buf *b)
{
    if (b->start == b->end)
        b->start = b->parsed = b->end = 0;
    else if (b->end == b->cap && b->start > 0)
        buf_compact(b);
}

/* Sends [start, upto) of b to fd. Returns bytes sent, 0 when the socket is full, -1 on error.
 * Inline: it is on every request's path, twice. */
static inline long buf_send(struct buf *b, int fd, size_t upto)
{
    if (upto <= b->start)
        return 0;
    ssize_t n = send(fd, b->data + b->start, upto - b->start, MSG_NOSIGNAL);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : -1;
    b->start += (size_t)n;
    return n;
}

#endif
