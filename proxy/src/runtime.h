/* Process-wide state shared by the modules: the parsed configuration and the shutdown flag. */
#ifndef UPROXY_RUNTIME_H
#define UPROXY_RUNTIME_H

#include "config.h"

struct runtime {
    const struct config *cfg;
    int shutting_down;
};

extern struct runtime runtime;

#endif
