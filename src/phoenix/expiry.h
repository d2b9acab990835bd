/* expiry.h: token lifetime on live sockets (cfg.expire_sockets). Each
 * socket whose connect set an expiry sits in a binary heap ordered by its
 * next event: the warning (phx_token_expiring pushed on every joined
 * channel, expiry_warning_s before), then the expiry itself (close 4001).
 * One loop hook serves the whole heap, so a socket costs one heap entry
 * and no timer. Times are wall-clock unix milliseconds, the clock tokens
 * are signed with. The in-band refresh (access_token) moves an entry. */
#ifndef PHX_EXPIRY_H
#define PHX_EXPIRY_H

#include <stdbool.h>
#include <stdint.h>

#include "loop.h"
#include "phx.h"

typedef struct phx_expiry_entry {
    phx_socket_t *sock;
    int64_t expires_ms;
    int64_t last_refresh_ms; /* the last access_token push handled */
    bool is_warned;
} phx_expiry_entry_t;

typedef struct phx_expiry {
    phx_loop_t *loop;
    const phx_config_t *cfg;
    phx_expiry_entry_t *heap;
    uint32_t n, cap;
    bool is_hooked;
} phx_expiry_t;

/* Sets up `x` (memory only; the hook is added by phx_expiry_start). */
void phx_expiry_init(phx_expiry_t *x, phx_loop_t *loop, const phx_config_t *cfg);
/* Takes part in the loop's deadline timer. */
void phx_expiry_start(phx_expiry_t *x);
/* Frees the heap and leaves the loop (every socket must be gone). */
void phx_expiry_dispose(phx_expiry_t *x);

/* Tracks `s` until `expires_ms`, or moves it there (a refresh: the warning
 * comes again before the new expiry). Returns 0 or PHX_ERR_NOMEM. */
int phx_expiry_track(phx_expiry_t *x, phx_socket_t *s, int64_t expires_ms);
/* Stops tracking `s` (no-op when it is not tracked). */
void phx_expiry_untrack(phx_expiry_t *x, phx_socket_t *s);
/* The tracked expiry of `s` (unix ms), or 0. */
int64_t phx_expiry_of(const phx_expiry_t *x, const phx_socket_t *s);
/* Whether `s` may refresh now (at most once per refresh_interval_s); when
 * it may, the refresh is counted. */
bool phx_expiry_may_refresh(phx_expiry_t *x, phx_socket_t *s, int64_t now_ms);

/* The wall clock in unix milliseconds. */
int64_t phx_wall_ms(void);

#endif /* PHX_EXPIRY_H */
