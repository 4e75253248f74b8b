/* The event loop: one epoll instance, level-triggered, plus a min-heap of timers whose clock is
 * CLOCK_MONOTONIC read once per iteration. Nothing here blocks except epoll_wait.
 *
 * A watcher's interest set is explicit: loop_watch(w, 0) removes the fd from epoll entirely,
 * which is how a component that cannot consume an event (a full buffer facing EPOLLHUP) stops
 * it from being reported again. On Unikraft an unconsumed event spins the cooperative
 * scheduler forever, so "drop interest, never ignore" is a rule, not an optimisation. */
#ifndef UPROXY_LOOP_H
#define UPROXY_LOOP_H

#include <stdint.h>

struct watcher;
typedef void (*watcher_fn)(struct watcher *w, uint32_t events);

struct watcher {
    int fd;
    uint32_t interest; /* 0 when not registered in epoll */
    watcher_fn on_event;
};

struct timer;
typedef void (*timer_fn)(struct timer *t);

/* Every timer has its heap slot reserved when it is initialised, so arming one needs no memory
 * and cannot fail (a connection without its deadline would wait forever): an object whose timer
 * cannot be reserved is refused when it is created, where saying no is still possible.
 *
 * Moving an armed timer later (the common case: every exchange pushes its connection's
 * deadline out) only records the new deadline; the heap keeps the old, earlier key and the
 * timer is re-filed when that key comes up. Moving it earlier re-files it at once. */
struct timer {
    uint64_t when_ms; /* heap key: never later than due_ms */
    uint64_t due_ms;  /* when it really fires */
    int heap_index;   /* -1 when not armed */
    timer_fn on_fire;
};

int loop_init(void);
void loop_watcher_init(struct watcher *w, int fd, watcher_fn fn);
/* Sets the interest set (EPOLLIN/EPOLLOUT bits); 0 unregisters. Returns 0 or -1. */
int loop_watch(struct watcher *w, uint32_t events);
/* Unregisters and closes the fd; any event for it still queued in this iteration is dropped. */
void loop_close(struct watcher *w);

/* Reserves the timer's slot: 0, or -1 when there is no memory for it. */
int loop_timer_init(struct timer *t, timer_fn fn);
/* Clears the timer and gives its slot back: for an object about to be freed. */
void loop_timer_release(struct timer *t);
void loop_timer_set(struct timer *t, uint64_t delay_ms);
void loop_timer_clear(struct timer *t);

/* Objects freed while handling an epoll batch are parked until the batch is done, so a later
 * event in the same batch never touches freed memory. */
void loop_defer_free(void *p, void (*free_fn)(void *));

uint64_t loop_now_ms(void);
uint64_t loop_now_us(void);
uint64_t loop_start_ms(void);

/* Runs until loop_stop(); `before_wait` runs once per iteration (signal flags, shutdown). */
void loop_run(void (*before_wait)(void));
void loop_stop(void);

#endif
