/* Choosing a backend for a request, among backends in state `up` only.
 *
 * - round-robin: smooth weighted round-robin (nginx's): over any window of sum(weights)
 *   picks, each backend gets exactly its weight, interleaved rather than in bursts.
 * - least-conn: fewest in-flight requests per unit of weight; ties broken by the smooth
 *   round-robin so weights still hold when the load is light.
 * - p2c: two distinct backends drawn at random (weighted), the one with the lower
 *   (in_flight + 1) × EWMA latency / weight wins.
 *
 * Adding an algorithm means one pick function and one case in balance_pick. */
#ifndef UPROXY_BALANCE_H
#define UPROXY_BALANCE_H

#include "config.h"

struct backend;

void balance_init(enum algorithm alg);
/* 0 when the backend is at --backend-max-connections with no idle pooled connection to reuse:
 * it then takes no request, so slow clients cannot fill every slot it has (its health checks
 * and other clients keep room). */
int balance_has_room(const struct backend *b);
/* A backend to send a request to, never `avoid` (one that just failed this request; NULL for
 * none); NULL when no backend is usable. */
struct backend *balance_pick(const struct backend *avoid);

#endif
