/* What an admin route answers: a status and a JSON body, which admin.c sends. */
#ifndef UPROXY_ADMIN_REPLY_H
#define UPROXY_ADMIN_REPLY_H

struct admin_reply {
    int status;
    const char *reason;
    char json[640];
};

/* {"error":"msg"}: msg may quote what the caller sent, so it is escaped. */
void admin_reply_error(struct admin_reply *r, int status, const char *reason, const char *msg);

#endif
