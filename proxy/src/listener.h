/* The client listener: accepts in batches, answers 503 over --max-connections, and backs off
 * (10 ms doubling to 1 s) instead of spinning when accept fails. */
#ifndef UPROXY_LISTENER_H
#define UPROXY_LISTENER_H

int listener_open(void);
/* At shutdown: stops accepting for good. */
void listener_close(void);

#endif
