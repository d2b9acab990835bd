/* backend.h: channel logic in the application's own backend, over HTTP
 * (docs/backend.md). phxd POSTs one JSON call per connect, join, client
 * event and leave to a URL and carries out the answer: the reply, assigns
 * kept for later calls, pushes to the socket, broadcasts, presence, stop.
 *
 * Calls go out through the non-blocking HTTP client (http/client.h) on the
 * server's loop, at most backend_max_inflight at a time per URL with a
 * bounded queue behind. Answers come later: a join or event defers its
 * channel's answer (phx_channel_defer), so the calls of one channel are
 * made one at a time, in the order the client sent them, while other
 * channels and sockets go on. A connect defers the handshake the same way
 * (phx_connect_defer).
 *
 * Anything but a well-formed 2xx answer is a failure: a join or event is
 * answered error {"reason":"unavailable"}, a connect refused (403, counted
 * as backend_unavailable). A circuit breaker per URL fails calls at once
 * while most recent ones failed. Leave calls are best-effort and go in
 * batches when several end in one loop turn. */
#ifndef PHX_BACKEND_H
#define PHX_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "json.h"
#include "loop.h"
#include "phx.h"

typedef struct phx_backend phx_backend_t;
typedef struct phx_backend_target phx_backend_target_t;

/* Creates the backend of `ep` on `loop` (cfg: the backend_* settings).
 * Nothing is connected until the first call. Returns 0 or PHX_ERR_NOMEM. */
int phx_backend_new(phx_backend_t **out, phx_loop_t *loop, phx_endpoint_t *ep);
/* The target for `url` (NULL: cfg.backend_url), made on first use and
 * shared by every rule naming the same URL. NULL with one line in `err`
 * when the URL is not http:// or https:// (or none is configured). */
phx_backend_target_t *phx_backend_target(phx_backend_t *b, const char *url, char *err);
/* Sends the leave calls still waiting, lets the calls in flight finish
 * for at most a second, then closes every connection; `done` runs once
 * everything is closed (true returned), or never when there was nothing
 * to close (false). */
bool phx_backend_close(phx_backend_t *b, void (*done)(void *arg), void *arg);
/* Frees a closed (or never used) backend. NULL is a no-op. */
void phx_backend_free(phx_backend_t *b);

/* ---- the calls (channel rules and the connect step use these) ---- */

/* The connect callback of --connect backend (user: the backend): the
 * default Phoenix.Token check first when a secret is configured, then the
 * call. */
int phx_backend_connect(phx_connect_t *c, void *user);
/* A join of `ch` handled by the backend at `t`: defers the channel's
 * answer (PHX_DEFER), or answers at once when the call cannot be made. */
phx_result_t phx_backend_join(phx_backend_target_t *t, phx_channel_t *ch, const char *topic,
                              const phx_payload_t *params, phx_reply_t *reply);
/* A client event of `ch` handled by the backend at `t`. */
phx_result_t phx_backend_event(phx_backend_target_t *t, phx_channel_t *ch, const char *event,
                               const phx_payload_t *payload, phx_reply_t *reply);
/* `ch` ends (its rule's terminate): the call in flight is forgotten, and
 * when `leave` the leave call goes out (library reasons "left",
 * "duplicate_join" -> "leave"; "stop", "crash", and any end of a socket
 * disconnected by its id -> "kicked"; the rest -> "closed"). */
void phx_backend_end(phx_backend_target_t *t, phx_channel_t *ch, const char *reason, bool leave);

/* ---- the answer, parsed (pure; the fuzz target's entry) ---- */

typedef enum {
    PHX_BACKEND_CONNECT = 0,
    PHX_BACKEND_JOIN,
    PHX_BACKEND_EVENT,
} phx_backend_call_t;

/* The members of an answer that phxd reads, as spans of the body (type
 * PHX_JSON_INVALID: absent). Unknown members are ignored. */
typedef struct phx_backend_answer {
    bool is_ok;                /* connect/join: status "ok"; event: reply.status "ok" */
    bool has_reply;            /* event: a reply (not null) */
    phx_json_span_t response;  /* join: response; event: reply.response (object) */
    phx_json_span_t assigns;   /* object */
    phx_json_span_t push;      /* array of {"event","payload"|"payload_base64"} */
    phx_json_span_t broadcast; /* array of {"topic","event","payload"|...} */
    phx_json_span_t broadcast_from;
    phx_json_span_t stop;      /* event: object (its reason is not used) */
    phx_json_span_t presence;  /* object, or null (event: untrack) */
    phx_json_span_t socket_id; /* connect: string */
    phx_json_span_t user_id;   /* connect: string or number */
} phx_backend_answer_t;

/* Lists in one answer (push, broadcast, broadcast_from) hold at most this
 * many entries each. */
#define PHX_BACKEND_MAX_LIST 1000
/* A socket's assigns set by backends, as JSON, are at most this large
 * (and an answer's assigns hold at most PHX_BACKEND_MAX_LIST members, so
 * merging them stays cheap). */
#define PHX_BACKEND_MAX_ASSIGNS (64 * 1024)

/* Parses `body` (borrowed; the spans point into it) as the answer to a
 * call of `type`, within `lim`. Returns NULL, or why it is refused (a
 * static string: "not JSON", "not an object", "status must be ok or
 * error", ...). Every list entry is checked too (events not reserved,
 * payloads objects or base64, topics non-empty strings). */
const char *phx_backend_answer_parse(const uint8_t *body, size_t len, phx_backend_call_t type,
                                     const phx_json_limits_t *lim, phx_backend_answer_t *out);

/* A push entry {"event", "payload" | "payload_base64"} of an answer: the
 * event (not reserved) decoded into `ev`, a base64 payload into `bin`, and
 * *payload pointing at one of them or at the JSON object. Returns NULL or
 * why it is refused. Dispose `ev` and `bin` either way. */
const char *phx_backend_push_parse(const uint8_t *obj, size_t len, phx_buf_t *ev, phx_buf_t *bin,
                                   phx_payload_t *payload);

#endif /* PHX_BACKEND_H */
