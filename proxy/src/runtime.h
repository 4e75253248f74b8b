/* Process-wide state shared by the modules: the parsed configuration and the shutdown flags. */
#ifndef UPROXY_RUNTIME_H
#define UPROXY_RUNTIME_H

#include "config.h"

struct runtime {
    const struct config *cfg;
    int shutting_down;
    int shutdown_requested; /* POST /shutdown: main starts the drain before the next wait */
};

extern struct runtime runtime;

#endif
