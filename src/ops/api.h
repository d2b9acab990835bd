/* api.h: the server-side HTTP API on the main listener, for backends that
 * publish through phxd. Authenticated with a bearer key (--api-key); with
 * no key configured every /api/ path is 404.
 *   POST /api/broadcast  {"topic","event","payload"} (or "payload_base64"
 *                        for a binary payload) -> 202 {"recipients":N}
 *   POST /api/broadcast  {"messages":[{"topic","event","payload"}, ...]}:
 *                        a batch of 1 to PHX_API_MAX_BATCH messages, each
 *                        as above; the whole batch is checked before any of
 *                        it is sent (a fault anywhere sends nothing: 400
 *                        naming messages[i]), then sent in order -> 202
 *                        {"recipients":N,"messages":M}, N summed over all
 *   POST /api/disconnect {"id":"users_socket:42"} -> 202 {"sockets":N}; an
 *                        id that is not a socket id (room:lobby) is 400
 * 400 bad JSON or fields, 401 bad key, 405 not POST, 413 body too large.
 * A field not listed above is refused, never ignored: 400
 * {"error":"unknown field \"except\""}. */
#ifndef PHX_API_H
#define PHX_API_H

#include <stdbool.h>
#include <stddef.h>

#include "endpoint.h"
#include "http.h"
#include "json.h"
#include "phx.h"
#include "tcp.h"

/* The most messages one batch broadcast may hold (400 beyond). */
#define PHX_API_MAX_BATCH 1000

/* Routes /api/ to the API of `ep` (borrowed) when its configuration has a
 * key. Returns 0 or PHX_ERR_NOMEM. */
int phx_api_add_routes(phx_router_t *r, phx_endpoint_t *ep);
/* A complete request for an API path on `c` (c->http). */
void phx_api_request(phx_endpoint_t *ep, phx_conn_t *c, const char *path, size_t len);
/* Whether `authorization` (the whole Authorization header value, or NULL)
 * is "Bearer " followed by the configured API key. The keys are compared
 * as HMAC-SHA256 digests in constant time, so neither the bytes nor the
 * length of the configured key show in the timing. False when no key is
 * configured. */
bool phx_api_key_ok(const phx_config_t *cfg, const char *authorization);

/* One message to broadcast: the topic and event decoded, the payload either
 * a span of the body (JSON) or the decoded payload_base64 in `bin`. */
typedef struct phx_api_msg {
    phx_buf_t topic, event, bin;
    phx_payload_t payload;
} phx_api_msg_t;

/* Reads one message ({"topic","event","payload"} or "payload_base64"; the
 * body of a single broadcast, one element of a batch's "messages", one
 * broadcast of a backend's answer) from the validated object `obj` into
 * `m` (its payload span points into `obj`). Returns NULL, or why it is
 * refused; an unknown field is reported through *unknown (and "" is
 * returned). Dispose `m` either way. */
const char *phx_api_msg_parse(const uint8_t *obj, size_t len, phx_api_msg_t *m,
                              phx_json_span_t *unknown);
void phx_api_msg_dispose(phx_api_msg_t *m);
/* The payload of a message object: "payload" (an object; absent: {}) or
 * "payload_base64" (standard base64, decoded into `bin`). Returns NULL or
 * why it is refused; `payload` points into `obj` or `bin`. */
const char *phx_api_payload_parse(const uint8_t *obj, size_t len, phx_buf_t *bin,
                                  phx_payload_t *payload);
/* Broadcasts a parsed message from the server side (no sender, may
 * disconnect). Returns the local recipients or a negative code. */
int phx_api_msg_send(phx_endpoint_t *ep, const phx_api_msg_t *m);

#endif /* PHX_API_H */
