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

#endif /* PHX_API_H */
