/* The client listener (an acceptor, see acceptor.h): answers 503 over --max-connections and
 * closes a connection at once beyond --max-handshakes TLS handshakes in progress. */
#ifndef UPROXY_LISTENER_H
#define UPROXY_LISTENER_H

int listener_open(void);
/* At shutdown: stops accepting for good. */
void listener_close(void);

#endif
