/* log.c: formats one log line per event, on stderr by default:
 *   2026-11-28T23:19:32.123Z warn conn=812 event=ws_close code=1009
 * or, after phx_set_log(), hands the message part to the embedder's
 * callback with its level. */
#include "log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int phx_log_level = PHX_LOG_LEVEL_INFO;

/* The embedder's sink (phx_set_log), or NULL for stderr. */
static phx_log_cb log_cb;
static void *log_user;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void phx_set_log(phx_log_cb cb, void *user)
{
    log_cb = cb;
    log_user = cb != NULL ? user : NULL;
}

int phx_set_log_level(int level)
{
    if (level < PHX_LOG_LEVEL_ERROR || level > PHX_LOG_LEVEL_DEBUG)
        return PHX_ERR_INVALID;
    phx_log_level = level;
    return 0;
}

int phx_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, level_names[i]) == 0)
            return i;
    return -1;
}

const char *phx_log_level_name(int level)
{
    return level >= 0 && level < 4 ? level_names[level] : "?";
}

void phx_log_write(int level, const char *fmt, ...)
{
    char line[1024];
    int n = 0;
    if (log_cb == NULL) {
        struct timeval tv;
        struct tm tm;
        gettimeofday(&tv, NULL);
        gmtime_r(&tv.tv_sec, &tm);
        n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), phx_log_level_name(level));
    }
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    if (log_cb != NULL) {
        line[len] = '\0';
        log_cb(level, line, log_user);
        return;
    }
    line[len++] = '\n';
    /* One write per line so lines from several processes do not interleave. */
    fwrite(line, 1, len, stderr);
}

/* The bytes `ch` takes in a value (4 for \xNN inside quotes). */
static size_t value_width(unsigned char ch, bool quoted)
{
    return quoted && (ch < ' ' || ch >= 0x7f || ch == '"' || ch == '\\') ? 4 : 1;
}

const char *phx_log_value(char *out, size_t cap, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    if (s == NULL) {
        snprintf(out, cap, "-");
        return out;
    }
    bool quoted = len == 0;
    for (size_t i = 0; i < len && !quoted; i++) {
        unsigned char ch = (unsigned char)s[i];
        quoted = ch <= ' ' || ch >= 0x7f || ch == '"' || ch == '\\' || ch == '=';
    }
    size_t room = cap - 1 - (quoted ? 2 : 0), total = 0;
    for (size_t i = 0; i < len; i++)
        total += value_width((unsigned char)s[i], quoted);
    size_t limit = total <= room ? room : room - 3; /* room for "..." */
    size_t n = 0;
    if (quoted)
        out[n++] = '"';
    size_t used = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        size_t w = value_width(ch, quoted);
        if (used + w > limit)
            break;
        used += w;
        if (w == 4) {
            out[n++] = '\\';
            out[n++] = 'x';
            out[n++] = hex[ch >> 4];
            out[n++] = hex[ch & 15];
        } else {
            out[n++] = (char)ch;
        }
    }
    if (total > room) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    if (quoted)
        out[n++] = '"';
    out[n] = '\0';
    return out;
}

void phx_assert_fail(const char *cond, const char *file, int line)
{
    if (log_cb != NULL) {
        char msg[512];
        snprintf(msg, sizeof(msg), "event=assertion_failed cond=\"%s\" file=%s line=%d", cond, file,
                 line);
        log_cb(PHX_LOG_LEVEL_ERROR, msg, log_user);
    }
    fprintf(stderr, "phxd: assertion failed: %s (%s:%d)\n", cond, file, line);
    abort();
}
