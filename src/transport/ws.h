/* ws.h: the WebSocket transport. The RFC 6455 upgrade handshake, then wslay
 * (no-buffering mode, configured limits) for incoming frames, with the wslay
 * context held only while a frame, a fragmented message or a control reply
 * is in flight. Outgoing data frames are built once per message (an
 * unmasked header in the buffer's headroom) and shared by every recipient. */
#ifndef PHX_WS_H
#define PHX_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"
#include "http.h"
#include "mem.h"
#include "tcp.h"

/* Close codes (RFC 6455 section 7.4.1). */
enum {
    PHX_WS_NORMAL = 1000,
    PHX_WS_GOING_AWAY = 1001,
    PHX_WS_PROTOCOL_ERROR = 1002,
    PHX_WS_INVALID_DATA = 1007,
    PHX_WS_POLICY = 1008,
    PHX_WS_TOO_BIG = 1009,
    PHX_WS_INTERNAL_ERROR = 1011,
    PHX_WS_RESTART = 1012,
};

/* Routes <socket_path>/websocket[/] of `ep` (borrowed; and the echo path
 * when configured) to the handshakes below. Returns 0 or PHX_ERR_NOMEM. */
int phx_ws_add_routes(phx_router_t *r, phx_endpoint_t *ep);
/* Handles a complete request for <socket_path>/websocket: checks, connect
 * callback, 101, then feeds `rest` (bytes after the head, borrowed) as
 * WebSocket input. On refusal answers 400/403 and closes. */
void phx_ws_handshake(phx_endpoint_t *ep, phx_conn_t *c, uint8_t *rest, size_t rest_len);
/* The raw echo route (--echo-path, a testing aid for the RFC 6455
 * conformance client): the same upgrade checks, wslay glue and limits, no
 * connect callback and no Phoenix protocol; every message comes back. */
void phx_ws_echo_handshake(phx_conn_t *c, uint8_t *rest, size_t rest_len);
/* Sends a Close frame with `code` (and `reason`, may be NULL) and closes the
 * connection once it is written. Idempotent. */
void phx_ws_close(phx_conn_t *c, int code, const char *reason);
/* The idle timeout passed (no frame received). */
void phx_ws_timeout(phx_conn_t *c);
/* Writes the frame header for `b`'s payload into its headroom (once). */
void phx_ws_frame_prepare(phx_rcbuf_t *b);
/* True when the connection currently holds a wslay context. */
bool phx_ws_has_context(const phx_conn_t *c);

#endif /* PHX_WS_H */
