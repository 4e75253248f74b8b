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

static void log_line(int fd, const char *level, const char *event, const char *fmt, va_list ap)
{
    char line[1024];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s event=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level, event);
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
