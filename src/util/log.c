/* log.c: formats one log line per event on stderr:
 *   2026-11-28T23:19:32.123Z warn conn=812 event=ws_close code=1009 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

int phx_log_level = PHX_LOG_LEVEL_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), phx_log_level_name(level));
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    /* One write per line so lines from several processes do not interleave. */
    fwrite(line, 1, len, stderr);
}

void phx_assert_fail(const char *cond, const char *file, int line)
{
    fprintf(stderr, "phxd: assertion failed: %s (%s:%d)\n", cond, file, line);
    abort();
}
