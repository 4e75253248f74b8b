#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int access_fd = -1;

static void write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

void log_format_time(char out[LOG_TIME_LEN + 1])
{
    /* An access log writes a line per request: the calendar part is redone once a second. */
    static time_t cached_sec = -1;
    static char cached[20];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    if (ts.tv_sec != cached_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        snprintf(cached, sizeof cached, "%04u-%02u-%02uT%02u:%02u:%02u", (unsigned)(tm.tm_year + 1900) % 10000u,
                 (unsigned)(tm.tm_mon + 1) % 100u, (unsigned)tm.tm_mday % 100u, (unsigned)tm.tm_hour % 100u,
                 (unsigned)tm.tm_min % 100u, (unsigned)tm.tm_sec % 100u);
        cached_sec = ts.tv_sec;
    }
    snprintf(out, LOG_TIME_LEN + 1, "%s.%03uZ", cached, (unsigned)(ts.tv_nsec / 1000000) % 1000u);
}

static void log_line(int fd, const char *level, const char *event, const char *fmt, va_list ap)
{
    char line[1024];
    char now[LOG_TIME_LEN + 1];
    log_format_time(now);
    int n = snprintf(line, sizeof line, "ts=%s level=%s event=%s", now, level, event);
    if (n < 0 || (size_t)n >= sizeof line - 2)
        return;
    if (fmt && fmt[0]) {
        line[n++] = ' ';
        int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
        if (m < 0)
            return;
        n += m;
        if ((size_t)n > sizeof line - 2)
            n = sizeof line - 2;
    }
    line[n++] = '\n';
    write_all(fd, line, (size_t)n);
}

void log_event(const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(STDOUT_FILENO, "info", event, fmt, ap);
    va_end(ap);
}

void log_error(const char *event, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_line(STDOUT_FILENO, "error", event, fmt, ap);
    va_end(ap);
}

int access_log_open(const char *path)
{
    if (strcmp(path, "-") == 0) {
        access_fd = STDOUT_FILENO;
        return 0;
    }
    access_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return access_fd < 0 ? -1 : 0;
}

int access_log_enabled(void) { return access_fd >= 0; }

void access_log_write(const char *line, size_t len)
{
    if (access_fd >= 0)
        write_all(access_fd, line, len);
}

size_t json_escape(char *out, size_t len, size_t cap, const char *s, size_t slen)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < slen; i++) {
        unsigned char c = (unsigned char)s[i];
        if (len + 6 >= cap)
            break;
        if (c == '"' || c == '\\') {
            out[len++] = '\\';
            out[len++] = (char)c;
        } else if (c < 0x20 || c >= 0x7f) {
            memcpy(out + len, "\\u00", 4);
            out[len + 4] = hex[c >> 4];
            out[len + 5] = hex[c & 15];
            len += 6;
        } else {
            out[len++] = (char)c;
        }
    }
    return len;
}

/* The length of the well-formed UTF-8 sequence of two to four bytes at s (RFC 3629: no
 * overlong forms, no surrogates, nothing past U+10FFFF), or 0. */
static size_t utf8_sequence(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    if (n == 0 || c > 0xf4 || n > len)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f) || (c == 0xf0 && s[1] < 0x90) ||
        (c == 0xf4 && s[1] > 0x8f))
        return 0;
    return n;
}

size_t json_escape_utf8(char *out, size_t len, size_t cap, const char *s, size_t slen)
{
    for (size_t i = 0; i < slen;) {
        size_t n = utf8_sequence((const unsigned char *)s + i, slen - i);
        if (n == 0) {
            size_t next = json_escape(out, len, cap, s + i, 1);
            if (next == len)
                break; /* full */
            len = next;
            i++;
            continue;
        }
        if (len + n + 6 >= cap)
            break;
        memcpy(out + len, s + i, n);
        len += n;
        i += n;
    }
    return len;
}
