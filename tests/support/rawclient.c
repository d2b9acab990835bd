/* rawclient.c: see rawclient.h. */
#include "rawclient.h"

#include <stdio.h>
#include <string.h>

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof(slab));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    rawclient_t *c = s->data;
    if (n > 0)
        phx_buf_append(&c->in, buf->base, (size_t)n);
    else if (n < 0)
        c->is_eof = true;
}

static void on_connect(uv_connect_t *req, int status)
{
    rawclient_t *c = req->data;
    if (status == 0) {
        c->is_connected = true;
        /* No Nagle: every chunk leaves as its own segment. */
        uv_tcp_nodelay(&c->tcp, 1);
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    } else {
        c->is_eof = true;
    }
}

static void on_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
    /* UV_RUN_ONCE runs due timers before it polls, and then polls with the
     * loop's own timeout: a deadline that comes due there would be noticed
     * only at the next event (seconds later, at a server deadline). Stopping
     * the loop makes that poll return at once. */
    uv_stop(t->loop);
}

static void on_timer_close(uv_handle_t *h)
{
}

bool rawclient_wait(rawclient_t *c, bool (*pred)(rawclient_t *, void *), void *arg, int ms)
{
    bool expired = false;
    uv_timer_t t;
    uv_timer_init(c->loop, &t);
    t.data = &expired;
    uv_timer_start(&t, on_timer, (uint64_t)ms, 0);
    bool ok = pred(c, arg);
    while (!ok && !expired && !c->is_eof) {
        uv_run(c->loop, UV_RUN_ONCE);
        ok = pred(c, arg);
    }
    uv_close((uv_handle_t *)&t, on_timer_close);
    uv_run(c->loop, UV_RUN_NOWAIT);
    return ok;
}

static bool is_connected(rawclient_t *c, void *arg)
{
    return c->is_connected;
}

int rawclient_connect(rawclient_t *c, uv_loop_t *loop, int port)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->connect_req.data = c;
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", port, &addr);
    int rv = uv_tcp_connect(&c->connect_req, &c->tcp, (struct sockaddr *)&addr, on_connect);
    if (rv != 0)
        return rv;
    return rawclient_wait(c, is_connected, NULL, 2000) ? 0 : -1;
}

static void on_write(uv_write_t *req, int status)
{
    phx_free(req);
}

void rawclient_write(rawclient_t *c, const void *data, size_t len, size_t chunk)
{
    if (chunk == 0)
        chunk = len;
    size_t off = 0;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        struct {
            uv_write_t req;
            char bytes[];
        } *w = phx_malloc(sizeof(*w) + n);
        memcpy(w->bytes, (const char *)data + off, n);
        uv_buf_t buf = uv_buf_init(w->bytes, (unsigned)n);
        if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) != 0) {
            phx_free(w);
            return;
        }
        off += n;
        /* Let the server read this chunk on its own. */
        for (int i = 0; i < 3; i++)
            uv_run(c->loop, UV_RUN_NOWAIT);
    }
}

static const char *head_end(rawclient_t *c)
{
    if (c->in.len < 4)
        return NULL;
    for (size_t i = c->pos; i + 4 <= c->in.len; i++)
        if (memcmp(c->in.data + i, "\r\n\r\n", 4) == 0)
            return (const char *)c->in.data + i;
    return NULL;
}

static bool has_head(rawclient_t *c, void *arg)
{
    return head_end(c) != NULL;
}

int rawclient_http_status(rawclient_t *c, int ms)
{
    if (!rawclient_wait(c, has_head, NULL, ms))
        return 0;
    int status = 0;
    sscanf((const char *)c->in.data + c->pos, "HTTP/1.1 %d", &status);
    c->pos = (size_t)(head_end(c) + 4 - (const char *)c->in.data);
    /* Skip a body announced by content-length. */
    return status;
}

/* Length of a complete server frame at c->pos, or 0. */
static size_t frame_len(rawclient_t *c, size_t *hlen, uint64_t *plen)
{
    const uint8_t *p = c->in.data + c->pos;
    size_t avail = c->in.len - c->pos;
    if (avail < 2)
        return 0;
    uint64_t len = p[1] & 0x7f;
    size_t h = 2;
    if (len == 126) {
        if (avail < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        h = 4;
    } else if (len == 127) {
        if (avail < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p[2 + i];
        h = 10;
    }
    if (avail < h + len)
        return 0;
    *hlen = h;
    *plen = len;
    return h + (size_t)len;
}

static bool has_frame(rawclient_t *c, void *arg)
{
    size_t h;
    uint64_t l;
    return frame_len(c, &h, &l) > 0;
}

int rawclient_next_frame(rawclient_t *c, int ms, uint8_t *opcode, uint8_t **payload, size_t *len)
{
    if (!rawclient_wait(c, has_frame, NULL, ms) && !has_frame(c, NULL))
        return 0;
    size_t h;
    uint64_t l;
    size_t total = frame_len(c, &h, &l);
    const uint8_t *p = c->in.data + c->pos;
    *opcode = p[0] & 0x0f;
    *len = (size_t)l;
    *payload = phx_malloc(l + 1);
    memcpy(*payload, p + h, (size_t)l);
    (*payload)[l] = 0;
    c->pos += total;
    return 1;
}

static bool is_eof(rawclient_t *c, void *arg)
{
    return c->is_eof;
}

bool rawclient_wait_eof(rawclient_t *c, int ms)
{
    return rawclient_wait(c, is_eof, NULL, ms);
}

static void on_close(uv_handle_t *h)
{
    rawclient_t *c = h->data;
    c->is_closed = true;
}

void rawclient_close(rawclient_t *c)
{
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_close);
    while (!c->is_closed)
        uv_run(c->loop, UV_RUN_ONCE);
    phx_buf_dispose(&c->in);
}

size_t ws_client_frame(uint8_t *out, uint8_t opcode, bool fin, const void *payload, size_t len)
{
    static const uint8_t mask[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        out[h++] = (uint8_t)(0x80 | len);
    } else if (len <= 0xffff) {
        out[h++] = 0x80 | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    memcpy(out + h, mask, 4);
    h += 4;
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[h + i] = p[i] ^ mask[i % 4];
    return h + len;
}

void ws_upgrade_request(phx_buf_t *out, const char *query)
{
    phx_buf_printf(out,
                   "GET /socket/websocket?%s HTTP/1.1\r\n"
                   "Host: 127.0.0.1\r\n"
                   "Connection: Upgrade\r\n"
                   "Upgrade: websocket\r\n"
                   "Sec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "\r\n",
                   query);
}
