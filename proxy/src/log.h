/* Lifecycle log lines on stdout (logfmt: `ts=... event=NAME key=value ...`) and the optional
 * JSON-lines access log. Lines are written with one write(2) each so they never interleave
 * and never sit in a stdio buffer when the process is killed. */
#ifndef UPROXY_LOG_H
#define UPROXY_LOG_H

#include <stddef.h>

void log_event(const char *event, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_error(const char *event, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The wall-clock time as RFC 3339 UTC with milliseconds (2026-01-31T23:59:59.123Z): the first
 * field of every line of both logs, by which `uproxy logs` interleaves machines. */
#define LOG_TIME_LEN 24
void log_format_time(char out[LOG_TIME_LEN + 1]);

/* Opens the access log ("-" means stdout). Returns 0 or -1 with errno set. */
int access_log_open(const char *path);
int access_log_enabled(void);
void access_log_write(const char *line, size_t len);

/* Appends `s` to `out` as the inside of a JSON string, bounded by `cap`; returns new length. */
size_t json_escape(char *out, size_t len, size_t cap, const char *s, size_t slen);
/* The same, but well-formed UTF-8 stays as it is (text meant for people, such as a
 * certificate's issuer); other bytes above 0x7e are escaped as json_escape does. */
size_t json_escape_utf8(char *out, size_t len, size_t cap, const char *s, size_t slen);

#endif
