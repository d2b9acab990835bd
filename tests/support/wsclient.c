#include "wsclient.h"

#include <string.h>

#include "mem.h"
#include "runner.h"

void wsc_open(rawclient_t *c, uv_loop_t *loop, int port, const char *query, size_t chunk)
{
    ASSERT_EQ(rawclient_connect(c, loop, port), 0);
    phx_buf_t req = {0};
    ws_upgrade_request(&req, query);
    rawclient_write(c, req.data, req.len, chunk);
    phx_buf_dispose(&req);
    ASSERT_EQ(rawclient_http_status(c, 2000), 101);
}

void wsc_open_with_text(rawclient_t *c, uv_loop_t *loop, int port, const char *query,
                        const char *text)
{
    ASSERT_EQ(rawclient_connect(c, loop, port), 0);
    phx_buf_t req = {0};
    ws_upgrade_request(&req, query);
    uint8_t frame[64];
    size_t tl = strlen(text);
    ASSERT(tl + 14 <= sizeof(frame));
    size_t n = ws_client_frame(frame, 1, true, text, tl);
    phx_buf_append(&req, frame, n);
    rawclient_write(c, req.data, req.len, 0);
    phx_buf_dispose(&req);
    ASSERT_EQ(rawclient_http_status(c, 2000), 101);
}

void wsc_send_frame(rawclient_t *c, uint8_t opcode, bool fin, const void *payload, size_t len,
                    size_t chunk)
{
    uint8_t *frame = phx_malloc(len + 14);
    size_t n = ws_client_frame(frame, opcode, fin, payload, len);
    rawclient_write(c, frame, n, chunk);
    phx_free(frame);
}

void wsc_send_text(rawclient_t *c, const char *text, size_t chunk)
{
    wsc_send_frame(c, 1, true, text, strlen(text), chunk);
}
