/* Backend health: the state machine (pure, so it can be reasoned about and tested alone) and
 * the active check that feeds it.
 *
 * A backend starts `down` and is probed at once. The first successful check takes it `up`
 * (a fresh fleet must not wait rise × interval); after that it goes down after `fall`
 * consecutive failures and up again after `rise` consecutive successes. `draining` is set
 * by the operator and is left alone by checks.
 *
 * The check sends `GET <path>` with `Connection: close` and reads until the backend closes,
 * so the backend, not the proxy, holds the TIME_WAIT (it costs memory on lwip). */
#ifndef UPROXY_HEALTH_H
#define UPROXY_HEALTH_H

#include <stdint.h>

#include "loop.h"

enum backend_state { BACKEND_DOWN, BACKEND_UP, BACKEND_DRAINING };

struct health_sm {
    int seen_success;
    unsigned ok_streak, fail_streak;
};

/* Feeds one check result; returns the state the backend should be in now. */
enum backend_state health_next(struct health_sm *sm, enum backend_state current, int ok,
                               unsigned fall, unsigned rise);
const char *backend_state_name(enum backend_state s);

struct backend;

struct health_check {
    struct watcher w;
    struct timer timer; /* next check, or the running check's deadline */
    struct backend *backend;
    int running;
    int sent;
    char status[16]; /* first bytes of the response: "HTTP/1.1 200" */
    unsigned status_len;
    unsigned long read_total;
};

/* A request to the backend failed the way a check would (refused, timed out, closed before
 * answering): counted like a failed check, so repeated failures take the backend down before
 * the next probe. */
void health_passive_failure(struct backend *b, const char *why);
/* 0, or -1 when its timer cannot be reserved (see loop.h). */
int health_init(struct backend *b);
/* Stops the checks for good: the backend is about to be freed. */
void health_release(struct backend *b);
void health_start(struct backend *b);
void health_stop(struct backend *b);

#endif
