/* log.h: leveled key=value log lines, one per event, on stderr or to the
 * embedder's callback (phx_set_log in phx.h). The level and the sink are
 * process-wide globals, like the allocator hooks of mem.c. Never log secrets,
 * full tokens or payloads at info or above. */
#ifndef PHX_LOG_H
#define PHX_LOG_H

#include "phx.h" /* phx_log_level_t, phx_set_log, phx_set_log_level */

/* The current level (a phx_log_level_t): lines above it are not formatted. */
extern int phx_log_level;

/* Parses "error", "warn", "info", "debug". Returns the level or -1. */
int phx_log_level_parse(const char *s);
const char *phx_log_level_name(int level);
void phx_log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats `len` bytes of `s` (a topic, a socket id: anything a client may
 * choose) as one value of a key=value line into `out` (`cap` bytes, at
 * least 8): as is when every byte is printable ASCII other than space, '"',
 * '\\' and '=', else in double quotes with those bytes as \xNN; cut to fit
 * with "..." at the end. NULL is "-". Returns `out`. */
const char *phx_log_value(char *out, size_t cap, const char *s, size_t len);

#define PHX_LOG_AT(lvl, ...)                                                                       \
    do {                                                                                           \
        if ((lvl) <= phx_log_level)                                                                \
            phx_log_write((lvl), __VA_ARGS__);                                                     \
    } while (0)
#define PHX_LOG_ERROR(...) PHX_LOG_AT(PHX_LOG_LEVEL_ERROR, __VA_ARGS__)
#define PHX_LOG_WARN(...) PHX_LOG_AT(PHX_LOG_LEVEL_WARN, __VA_ARGS__)
#define PHX_LOG_INFO(...) PHX_LOG_AT(PHX_LOG_LEVEL_INFO, __VA_ARGS__)
#define PHX_LOG_DEBUG(...) PHX_LOG_AT(PHX_LOG_LEVEL_DEBUG, __VA_ARGS__)

/* A broken invariant is a bug: abort with file and line in every build. */
#define PHX_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            phx_assert_fail(#cond, __FILE__, __LINE__);                                            \
    } while (0)
void phx_assert_fail(const char *cond, const char *file, int line) __attribute__((noreturn));

#endif /* PHX_LOG_H */
