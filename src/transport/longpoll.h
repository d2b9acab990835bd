/* longpoll.h: the LongPoll transport (<socket_path>/longpoll, docs/protocol.md
 * section 5). A session holds a Phoenix socket, a bounded buffer of
 * outgoing messages and at most one parked GET; GET opens (410 + token) and
 * polls, POST publishes (JSON or an NDJSON batch), OPTIONS answers CORS.
 * Session tokens are Phoenix.Tokens signed with the server secret under a
 * salt of their own, naming a random 128-bit session id. */
#ifndef PHX_LONGPOLL_H
#define PHX_LONGPOLL_H

#include <stdbool.h>
#include <stdint.h>

#include "endpoint.h"
#include "http.h"
#include "phx.h"
#include "tcp.h"

typedef struct phx_longpoll phx_longpoll_t;

/* Creates the LongPoll state of `ep` (borrowed) and hooks it into the
 * endpoint's loop. Returns 0, PHX_ERR_NOMEM or PHX_ERR_INVALID (with
 * `err`). */
int phx_longpoll_new(phx_longpoll_t **out, phx_endpoint_t *ep, char *err);
/* Frees it; every session must have ended (phx_longpoll_stop). */
void phx_longpoll_free(phx_longpoll_t *lp);
/* Routes <socket_path>/longpoll[/] to LongPoll. The head of a POST with a
 * body is judged before the body is read: only a live session takes it
 * (no session: {"status":410}; origin refused: 403; undecodable query:
 * 400; all closing). Returns 0 or PHX_ERR_NOMEM. */
int phx_longpoll_add_route(phx_router_t *r, phx_longpoll_t *lp);
/* A complete request for <socket_path>/longpoll on `c` (c->http). */
void phx_longpoll_request(phx_longpoll_t *lp, phx_conn_t *c);
/* Answers parked GETs that have messages (once per loop turn). */
void phx_longpoll_flush(phx_longpoll_t *lp);
/* Ends sessions idle since before `now` - 1.5 windows; returns the time of
 * the next expiry (0 when there is no session). */
uint64_t phx_longpoll_sweep(phx_longpoll_t *lp, uint64_t now);
/* Ends up to `n` sessions (drain); returns how many ended. */
size_t phx_longpoll_drain(phx_longpoll_t *lp, size_t n);
/* Ends every session (server shutdown). */
void phx_longpoll_stop(phx_longpoll_t *lp);
/* Live sessions (metrics, tests). */
size_t phx_longpoll_session_count(const phx_longpoll_t *lp);

#endif /* PHX_LONGPOLL_H */
