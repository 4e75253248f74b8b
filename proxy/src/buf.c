#include "buf.h"

#include <stdlib.h>
#include <string.h>

#define MAX_CACHED 1024

static size_t buf_cap;
static struct buf *free_list;
static size_t free_count;

void buf_pool_init(size_t cap) { buf_cap = cap; }

struct buf *buf_get(void)
{
    struct buf *b = free_list;
    if (b) {
        free_list = b->next_free;
        free_count--;
    } else {
        b = malloc(sizeof *b + buf_cap);
        if (!b)
            return NULL;
    }
    b->start = b->parsed = b->end = 0;
    b->cap = buf_cap;
    b->next_free = NULL;
    return b;
}

void buf_put(struct buf *b)
{
    if (!b)
        return;
    if (free_count >= MAX_CACHED) {
        free(b);
        return;
    }
    b->next_free = free_list;
    free_list = b;
    free_count++;
}

void buf_compact(struct buf *b)
{
    if (b->start == 0)
        return;
    size_t n = b->end - b->start;
    if (n)
        memmove(b->data, b->data + b->start, n);
    b->parsed -= b->start;
    b->end = n;
    b->start = 0;
}
