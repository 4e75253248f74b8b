/* The admin listener: GET /healthz (no auth), GET /stats (JSON), GET /metrics (Prometheus
 * text). Every route but /healthz needs `Authorization: Bearer <token>`, whose SHA-256 is
 * compared in constant time. It is a separate socket: nothing of it exists on the client
 * listener. Off the hot path, so responses are built in heap buffers. */
#ifndef UPROXY_ADMIN_H
#define UPROXY_ADMIN_H

int admin_listen(void);
void admin_close(void);

#endif
