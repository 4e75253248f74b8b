#include "stats.h"

#include <string.h>

struct stats stats;

void stats_count_response(int status)
{
    int cls = status / 100;
    if (cls >= 1 && cls <= 5)
        stats.by_class[cls - 1]++;
    stats.requests_total++;
}

static int bucket_of(uint64_t us)
{
    if (us < 4)
        return (int)us;
    int log2 = 63 - __builtin_clzll(us);
    int sub = (int)((us >> (log2 - 2)) & 3);
    int b = log2 * 4 + sub;
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

/* Middle of a bucket's range, in microseconds. */
static double bucket_value(int b)
{
    if (b < 4)
        return b;
    int log2 = b / 4, sub = b % 4;
    double low = (double)(1ull << log2) * (1.0 + sub / 4.0);
    double width = (double)(1ull << log2) / 4.0;
    return low + width / 2.0;
}

static void rotate(struct histogram *h, uint64_t now_ms)
{
    if (h->slot_started_ms == 0) {
        h->slot_started_ms = now_ms;
        return;
    }
    uint64_t age = now_ms - h->slot_started_ms;
    if (age < STATS_WINDOW_MS)
        return;
    h->current ^= 1;
    memset(h->counts[h->current], 0, sizeof h->counts[h->current]);
    if (age >= 2 * STATS_WINDOW_MS)
        memset(h->counts[h->current ^ 1], 0, sizeof h->counts[0]);
    h->slot_started_ms = now_ms;
}

void histogram_record(struct histogram *h, uint64_t now_ms, uint64_t micros)
{
    rotate(h, now_ms);
    h->counts[h->current][bucket_of(micros)]++;
}

double histogram_percentile(struct histogram *h, uint64_t now_ms, double p)
{
    uint64_t total = 0;
    rotate(h, now_ms);
    for (int b = 0; b < HIST_BUCKETS; b++)
        total += (uint64_t)h->counts[0][b] + h->counts[1][b];
    if (total == 0)
        return 0;
    uint64_t rank = (uint64_t)(p * (double)total);
    if (rank >= total)
        rank = total - 1;
    uint64_t seen = 0;
    for (int b = 0; b < HIST_BUCKETS; b++) {
        seen += (uint64_t)h->counts[0][b] + h->counts[1][b];
        if (seen > rank)
            return bucket_value(b) / 1000.0;
    }
    return 0;
}
