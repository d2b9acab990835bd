/* wsclient.h: the WebSocket side of a raw client, shared by the tests that
 * speak frames to ws.c (test_ws with a phx_loop_t alone, test_server with a
 * whole server): the upgrade, with or without a first frame in the same
 * write, and frames written in any chunking. */
#ifndef PHX_TEST_WSCLIENT_H
#define PHX_TEST_WSCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "rawclient.h"

/* Connects to 127.0.0.1:port, sends the upgrade request for ?<query> in
 * chunks of `chunk` bytes (0: one write) and checks the status is 101. */
void wsc_open(rawclient_t *c, uv_loop_t *loop, int port, const char *query, size_t chunk);
/* The same, with a text frame carrying `text` written together with the
 * request. */
void wsc_open_with_text(rawclient_t *c, uv_loop_t *loop, int port, const char *query,
                        const char *text);
/* Writes one masked frame in chunks of `chunk` bytes (0: one write). */
void wsc_send_frame(rawclient_t *c, uint8_t opcode, bool fin, const void *payload, size_t len,
                    size_t chunk);
/* Writes one final text frame. */
void wsc_send_text(rawclient_t *c, const char *text, size_t chunk);

#endif
