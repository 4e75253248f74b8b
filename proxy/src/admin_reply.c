#include "admin_reply.h"

#include <stdio.h>
#include <string.h>

#include "log.h"

void admin_reply_error(struct admin_reply *r, int status, const char *reason, const char *msg)
{
    r->status = status;
    r->reason = reason;
    char escaped[512];
    size_t n = json_escape(escaped, 0, sizeof escaped - 1, msg, strlen(msg));
    escaped[n] = '\0';
    snprintf(r->json, sizeof r->json, "{\"error\":\"%s\"}", escaped);
}
