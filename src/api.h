/* api.h: the server-side HTTP API on the main listener, for backends that
 * publish through phxd. Authenticated with a bearer key (--api-key); with
 * no key configured every /api/ path is 404.
 *   POST /api/broadcast  {"topic","event","payload"} (or "payload_base64"
 *                        for a binary payload) -> 202 {"recipients":N}
 *   POST /api/disconnect {"id":"users_socket:42"} -> 202 {"sockets":N}
 * 400 bad JSON or fields, 401 bad key, 405 not POST, 413 body too large. */
#ifndef PHX_API_H
#define PHX_API_H

#include <stdbool.h>
#include <stddef.h>

#include "tcp.h"

/* True when `path` belongs to the API (starts with "/api/"). */
bool phx_api_path(const char *path, size_t len);
/* A complete request for an API path on `c` (c->http). */
void phx_api_request(phx_conn_t *c, const char *path, size_t len);

#endif /* PHX_API_H */
