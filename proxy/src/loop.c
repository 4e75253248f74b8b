#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define MAX_WAIT_MS 1000
#define WAIT_BACKOFF_MAX_MS 1000

struct deferred {
    void *p;
    void (*free_fn)(void *);
};

static int epfd = -1;
static int running;
static uint64_t now_us, start_us;

static struct timer **heap;
static int heap_len, heap_cap, heap_reserved;

static struct deferred *graveyard;
static int grave_len, grave_cap;

/* Fds closed during the current batch: their queued events are skipped. */
static int *closed_fds;
static int closed_len, closed_cap;

static uint64_t read_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t loop_now_us(void) { return now_us; }
uint64_t loop_now_ms(void) { return now_us / 1000u; }
uint64_t loop_start_ms(void) { return start_us / 1000u; }

int loop_init(void)
{
    epfd = epoll_create1(EPOLL_CLOEXEC);
    now_us = start_us = read_clock_us();
    return epfd < 0 ? -1 : 0;
}

void loop_watcher_init(struct watcher *w, int fd, watcher_fn fn)
{
    w->fd = fd;
    w->interest = 0;
    w->on_event = fn;
}

int loop_watch(struct watcher *w, uint32_t events)
{
    if (events == w->interest)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = w};
    int rc;
    if (events == 0)
        rc = epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, &ev);
    else if (w->interest == 0)
        rc = epoll_ctl(epfd, EPOLL_CTL_ADD, w->fd, &ev);
    else
        rc = epoll_ctl(epfd, EPOLL_CTL_MOD, w->fd, &ev);
    if (rc == 0)
        w->interest = events;
    return rc;
}

static int grow(void **arr, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 64;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p)
        return -1;
    *arr = p;
    *cap = ncap;
    return 0;
}

void loop_close(struct watcher *w)
{
    if (w->fd < 0)
        return;
    if (w->interest)
        epoll_ctl(epfd, EPOLL_CTL_DEL, w->fd, NULL);
    w->interest = 0;
    if (grow((void **)&closed_fds, &closed_cap, closed_len + 1, sizeof *closed_fds) == 0)
        closed_fds[closed_len++] = w->fd;
    close(w->fd);
    w->fd = -1;
}

void loop_defer_free(void *p, void (*free_fn)(void *))
{
    if (grow((void **)&graveyard, &grave_cap, grave_len + 1, sizeof *graveyard) != 0) {
        /* Out of memory for bookkeeping: leaking beats a use-after-free. */
        return;
    }
    graveyard[grave_len].p = p;
    graveyard[grave_len].free_fn = free_fn;
    grave_len++;
}

/* --- timers: binary min-heap on when_ms --- */

static void heap_swap(int i, int j)
{
    struct timer *t = heap[i];
    heap[i] = heap[j];
    heap[j] = t;
    heap[i]->heap_index = i;
    heap[j]->heap_index = j;
}

static void heap_up(int i)
{
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (heap[parent]->when_ms <= heap[i]->when_ms)
            break;
        heap_swap(i, parent);
        i = parent;
    }
}

static void heap_down(int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < heap_len && heap[l]->when_ms < heap[m]->when_ms)
            m = l;
        if (r < heap_len && heap[r]->when_ms < heap[m]->when_ms)
            m = r;
        if (m == i)
            return;
        heap_swap(i, m);
        i = m;
    }
}

int loop_timer_init(struct timer *t, timer_fn fn)
{
    t->when_ms = t->due_ms = 0;
    t->heap_index = -1;
    t->on_fire = fn;
    if (grow((void **)&heap, &heap_cap, heap_reserved + 1, sizeof *heap) != 0)
        return -1;
    heap_reserved++;
    return 0;
}

void loop_timer_clear(struct timer *t)
{
    int i = t->heap_index;
    if (i < 0)
        return;
    heap_len--;
    if (i != heap_len) {
        heap[i] = heap[heap_len];
        heap[i]->heap_index = i;
        heap_up(i);
        heap_down(heap[i]->heap_index);
    }
    t->heap_index = -1;
}

void loop_timer_release(struct timer *t)
{
    loop_timer_clear(t);
    heap_reserved--;
}

void loop_timer_set(struct timer *t, uint64_t delay_ms)
{
    uint64_t when = loop_now_ms() + delay_ms;
    t->due_ms = when;
    if (t->heap_index >= 0) {
        if (when < t->when_ms) {
            t->when_ms = when;
            heap_up(t->heap_index);
        }
        return;
    }
    if (heap_len == heap_cap)
        abort(); /* a timer armed without its slot reserved by loop_timer_init: a bug, never a deadline lost */
    t->when_ms = when;
    t->heap_index = heap_len;
    heap[heap_len++] = t;
    heap_up(t->heap_index);
}

static int next_timeout_ms(void)
{
    if (heap_len == 0)
        return MAX_WAIT_MS;
    uint64_t now = loop_now_ms();
    if (heap[0]->when_ms <= now)
        return 0;
    uint64_t d = heap[0]->when_ms - now;
    return d > MAX_WAIT_MS ? MAX_WAIT_MS : (int)d;
}

static void fire_timers(void)
{
    uint64_t now = loop_now_ms();
    while (heap_len > 0 && heap[0]->when_ms <= now) {
        struct timer *t = heap[0];
        if (t->due_ms > now) {
            t->when_ms = t->due_ms; /* moved later since it was filed */
            heap_down(0);
            continue;
        }
        loop_timer_clear(t);
        t->on_fire(t);
    }
}

static void bury_dead(void)
{
    for (int i = 0; i < grave_len; i++)
        graveyard[i].free_fn(graveyard[i].p);
    grave_len = 0;
    closed_len = 0;
}

static int closed_in_batch(int fd, struct watcher *w)
{
    if (w->fd != fd)
        return 1;
    for (int i = 0; i < closed_len; i++)
        if (closed_fds[i] == fd)
            return 1;
    return 0;
}

void loop_stop(void) { running = 0; }

/* epoll_wait failed for want of memory (Unikraft allocates in it): a pause that doubles while
 * the failures last (up to a second), then the loop goes on. Only a broken epoll descriptor
 * ends the loop. */
static unsigned wait_backoff_ms;

static int wait_failed(int err)
{
    if (err == EINTR)
        return 0;
    if (err == EBADF || err == EINVAL || err == EFAULT)
        return -1;
    wait_backoff_ms = wait_backoff_ms ? wait_backoff_ms * 2 : 10;
    if (wait_backoff_ms > WAIT_BACKOFF_MAX_MS)
        wait_backoff_ms = WAIT_BACKOFF_MAX_MS;
    struct timespec pause = {.tv_sec = wait_backoff_ms / 1000, .tv_nsec = (long)(wait_backoff_ms % 1000) * 1000000L};
    nanosleep(&pause, NULL);
    return 0;
}

void loop_run(void (*before_wait)(void))
{
    struct epoll_event events[MAX_EVENTS];
    int fds[MAX_EVENTS];
    running = 1;
    while (running) {
        before_wait();
        if (!running)
            break;
        int n = epoll_wait(epfd, events, MAX_EVENTS, next_timeout_ms());
        now_us = read_clock_us();
        if (n < 0 && wait_failed(errno) < 0)
            break;
        if (n >= 0)
            wait_backoff_ms = 0;
        for (int i = 0; i < n; i++)
            fds[i] = ((struct watcher *)events[i].data.ptr)->fd;
        for (int i = 0; i < n; i++) {
            struct watcher *w = events[i].data.ptr;
            /* A watcher closed earlier in this batch (its memory parked in the graveyard, or
             * its fd number reused by a fresh accept) must not see the stale event. */
            if (closed_in_batch(fds[i], w))
                continue;
            w->on_event(w, events[i].events);
        }
        fire_timers();
        bury_dead();
    }
}
