/* rawclient.h: a raw TCP client on the test's own libuv loop, for tests
 * that run a real phx_server_t in-process: writes bytes in any chunking
 * (running the loop between chunks so the server reads them separately),
 * accumulates what the server sends, and builds/parses WebSocket frames. */
#ifndef PHX_TEST_RAWCLIENT_H
#define PHX_TEST_RAWCLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "mem.h"

typedef struct rawclient {
    uv_loop_t *loop;
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    bool is_connected;
    bool is_eof;    /* the server closed (EOF or reset) */
    bool is_closed; /* our handle is closed */
    phx_buf_t in;   /* every byte received */
    size_t pos;     /* parse position in `in` */
} rawclient_t;

/* Connects to 127.0.0.1:port, running the loop until connected. */
int rawclient_connect(rawclient_t *c, uv_loop_t *loop, int port);
/* Writes `len` bytes in chunks of `chunk` bytes (0 = one write), running the
 * loop a few turns after each chunk. */
void rawclient_write(rawclient_t *c, const void *data, size_t len, size_t chunk);
/* Runs the loop until `pred(c, arg)` holds, EOF, or `ms` pass. Returns the
 * predicate's last value. */
bool rawclient_wait(rawclient_t *c, bool (*pred)(rawclient_t *, void *), void *arg, int ms);
/* Waits for a complete HTTP response head; returns its status or 0. */
int rawclient_http_status(rawclient_t *c, int ms);
/* Waits for the next server frame; returns 1 with its opcode and an owned
 * payload copy (phx_free), or 0 on timeout/EOF. */
int rawclient_next_frame(rawclient_t *c, int ms, uint8_t *opcode, uint8_t **payload, size_t *len);
/* Waits until the server closes the connection. */
bool rawclient_wait_eof(rawclient_t *c, int ms);
/* Closes our side and runs the loop until the handle is closed. */
void rawclient_close(rawclient_t *c);

/* Builds a masked client frame into `out` (room for len + 14). Returns its
 * length. */
size_t ws_client_frame(uint8_t *out, uint8_t opcode, bool fin, const void *payload, size_t len);
/* A complete upgrade request for /socket/websocket?<query>. */
void ws_upgrade_request(phx_buf_t *out, const char *query);

#endif
