#include "balance.h"

#include <errno.h>
#include <sys/random.h>
#include <time.h>

#include "loop.h"
#include "runtime.h"
#include "upstream.h"

#define LATENCY_HALF_LIFE_MS 1000

static enum algorithm algorithm;
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    /* xorshift64*: fast, and good enough to spread load (not for secrets). */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1DULL;
}

void balance_init(enum algorithm alg)
{
    algorithm = alg;
    if (getrandom(&rng_state, sizeof rng_state, GRND_NONBLOCK) != (ssize_t)sizeof rng_state) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        rng_state = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32);
    }
    if (rng_state == 0)
        rng_state = 0x9E3779B97F4A7C15ULL;
}

int balance_has_room(const struct backend *b)
{
    unsigned max = runtime.cfg->backend_max_connections;
    return !max || b->idle_connections || b->active_connections < max;
}

/* `avoid`: a backend that just failed this request (NULL for none). */
static int usable(const struct backend *b, const struct backend *avoid)
{
    return b->state == BACKEND_UP && b != avoid && balance_has_room(b);
}

/* Smooth weighted round-robin over the usable backends for which `eligible` holds. */
static struct backend *smooth_rr(int (*eligible)(const struct backend *, long), long arg, const struct backend *avoid)
{
    struct backend *best = NULL;
    long total = 0;
    for (size_t i = 0; i < nbackends; i++) {
        struct backend *b = backends[i];
        if (!usable(b, avoid) || !eligible(b, arg))
            continue;
        b->current_weight += (long)b->weight;
        total += (long)b->weight;
        if (!best || b->current_weight > best->current_weight)
            best = b;
    }
    if (best)
        best->current_weight -= total;
    return best;
}

static int any_backend(const struct backend *b, long arg)
{
    (void)b;
    (void)arg;
    return 1;
}

/* Load in thousandths of a request per unit of weight, so weights compare without floats. */
static long load_of(const struct backend *b) { return (long)b->in_flight * 1000 / (long)b->weight; }

static int has_load(const struct backend *b, long load) { return load_of(b) == load; }

static struct backend *least_conn(const struct backend *avoid)
{
    long min = -1;
    for (size_t i = 0; i < nbackends; i++) {
        const struct backend *b = backends[i];
        if (usable(b, avoid) && (min < 0 || load_of(b) < min))
            min = load_of(b);
    }
    return min < 0 ? NULL : smooth_rr(has_load, min, avoid);
}

static struct backend *weighted_random(const struct backend *avoid, const struct backend *exclude)
{
    uint64_t total = 0;
    for (size_t i = 0; i < nbackends; i++)
        if (usable(backends[i], avoid) && backends[i] != exclude)
            total += backends[i]->weight;
    if (total == 0)
        return NULL;
    uint64_t r = rng_next() % total;
    for (size_t i = 0; i < nbackends; i++) {
        struct backend *b = backends[i];
        if (!usable(b, avoid) || b == exclude)
            continue;
        if (r < b->weight)
            return b;
        r -= b->weight;
    }
    return NULL;
}

/* The latency estimate halves for every second without a new sample, so a backend that lost
 * once (one slow answer) is tried again soon instead of being starved by a stale figure. */
static double decayed_latency(const struct backend *b)
{
    if (b->ewma_latency_ms <= 0)
        return 0.001; /* unmeasured: score as the fastest so it gets measured */
    uint64_t idle_s = (loop_now_ms() - b->ewma_at_ms) / LATENCY_HALF_LIFE_MS;
    double latency = b->ewma_latency_ms / (double)(1ull << (idle_s < 40 ? idle_s : 40));
    return latency > 0.001 ? latency : 0.001;
}

/* Weight is capacity: a backend of weight 4 may carry four times the in-flight load. */
static double p2c_score(const struct backend *b)
{
    return (double)(b->in_flight + 1) * decayed_latency(b) / (double)b->weight;
}

static struct backend *p2c(const struct backend *avoid)
{
    struct backend *a = weighted_random(avoid, NULL);
    if (!a)
        return NULL;
    struct backend *b = weighted_random(avoid, a);
    if (!b)
        return a;
    return p2c_score(b) < p2c_score(a) ? b : a;
}

struct backend *balance_pick(const struct backend *avoid)
{
    switch (algorithm) {
    case ALG_LEAST_CONN: return least_conn(avoid);
    case ALG_P2C: return p2c(avoid);
    default: return smooth_rr(any_backend, 0, avoid);
    }
}
