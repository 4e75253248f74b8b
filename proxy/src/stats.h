/* Process-wide counters and the latency histogram. Counters are cumulative since start so that
 * clients derive rates from differences. Latency uses log-bucketed histograms (4 buckets per
 * power of two of microseconds, so any percentile is within ~19% of the true value) over a
 * recent window: two slots of STATS_WINDOW_MS each, the older one dropped as time passes. */
#ifndef UPROXY_STATS_H
#define UPROXY_STATS_H

#include <stdint.h>

#define HIST_BUCKETS 160
#define STATS_WINDOW_MS 10000

struct histogram {
    uint32_t counts[2][HIST_BUCKETS];
    uint64_t slot_started_ms; /* start of slot `current` */
    int current;
};

void histogram_record(struct histogram *h, uint64_t now_ms, uint64_t micros);
/* Percentile (0 < p < 1) over the window, in milliseconds; 0 when empty. */
double histogram_percentile(struct histogram *h, uint64_t now_ms, double p);

struct stats {
    uint64_t conn_active, conn_accepted, conn_rejected;
    uint64_t requests_total, requests_in_flight, retried;
    uint64_t by_class[5]; /* 1xx .. 5xx */
    uint64_t auth_accepted, denied_missing, denied_invalid, denied_expired;
    uint64_t acme_http01, acme_tls_alpn01; /* ACME challenges answered */
};

extern struct stats stats;

void stats_count_response(int status);

#endif
