/* Unit tests for the WebSocket transport (transport/ws.c) without a server:
 * a phx_loop_t, a phx_endpoint_t with a connect callback of the test's own
 * and one channel route, a phx_router_t holding only the WebSocket routes,
 * and loopback connections adopted with phx_conn_accept into
 * phx_http_conn_init, as server.c's conn_init does. A raw client performs
 * the upgrade and speaks frames. */
#include "ws.h"

#include <string.h>

#include <uv.h>

#include "endpoint.h"
#include "epfx.h"
#include "http.h"
#include "loop.h"
#include "loopfx.h"
#include "phx.h"
#include "rawclient.h"
#include "runner.h"
#include "tcp.h"
#include "wsclient.h"

typedef struct fx {
    loopfx_t lf;
    phx_endpoint_t ep;
    phx_router_t router;
    /* the connect callback */
    int connects;
    char transport[16];
    /* the channel */
    int joins, events, terminates;
    char last_topic[64];
    char last_reason[16];
} fx_t;

static fx_t *F;

/* Accepts unless ?deny is given; the socket id is "user:<user>". */
static int test_connect(phx_connect_t *c, void *user)
{
    fx_t *f = user;
    if (epfx_note_connect(c, &f->connects, f->transport, sizeof(f->transport)))
        return PHX_CONNECT_REFUSE;
    const char *uid = phx_connect_param(c, "user");
    char id[64];
    snprintf(id, sizeof(id), "user:%s", uid ? uid : "anon");
    if (phx_connect_set_id(c, id) != 0 || phx_connect_assign(c, "user_id", uid ? uid : "") != 0)
        return PHX_CONNECT_REFUSE;
    return PHX_CONNECT_OK;
}

static phx_result_t room_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                              phx_reply_t *reply, void *user)
{
    F->joins++;
    snprintf(F->last_topic, sizeof(F->last_topic), "%s", topic);
    return PHX_REPLY_OK;
}

/* "echo" replies with the payload; anything else is pushed back as "seen". */
static phx_result_t room_in(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                            phx_reply_t *reply, void *user)
{
    F->events++;
    if (strcmp(event, "echo") == 0) {
        phx_reply_set(reply, payload);
        return PHX_REPLY_OK;
    }
    phx_channel_push(ch, "seen", payload);
    return PHX_NOREPLY;
}

static void room_terminate(phx_channel_t *ch, const char *reason, void *user)
{
    F->terminates++;
    snprintf(F->last_reason, sizeof(F->last_reason), "%s", reason);
}

static const phx_channel_handler_t room_handler = {
    .join = room_join,
    .handle_in = room_in,
    .terminate = room_terminate,
};

static void fx_start(fx_t *f, void (*tweak)(phx_config_t *))
{
    memset(f, 0, sizeof(*f));
    F = f;
    epfx_start(&f->lf, &f->ep, tweak, test_connect, f, &room_handler);
    ASSERT_EQ(phx_ws_add_routes(&f->router, &f->ep), 0);
    loopfx_listen_http(&f->lf, &f->router);
}

/* Closes every connection still open, then the endpoint, the routes and
 * the loop; the libuv loop must have nothing left. */
static void fx_stop(fx_t *f)
{
    loopfx_close_conns(&f->lf);
    loopfx_close(&f->lf);
    phx_router_free(&f->router);
    phx_endpoint_dispose(&f->ep);
    loopfx_dispose(&f->lf);
}

static const char accept_101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                 "upgrade: websocket\r\n"
                                 "connection: Upgrade\r\n"
                                 "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                 "\r\n";

/* Connects, upgrades with ?<query>, and checks the exact 101. */
static void fx_open(fx_t *f, rawclient_t *c, const char *query, size_t chunk)
{
    wsc_open(c, &f->lf.uv, f->lf.port, query, chunk);
    ASSERT_MEM_EQ(c->in.data, c->pos, accept_101, sizeof(accept_101) - 1);
}

static phx_conn_t *only_ws_conn(fx_t *f)
{
    phx_conn_t *c = phx_loop_list_first(&f->lf.loop, PHX_LIST_WS);
    ASSERT(c != NULL);
    ASSERT(phx_loop_list_next(c) == NULL);
    return c;
}

static bool has_bytes(rawclient_t *c, void *arg)
{
    return c->in.len - c->pos >= *(size_t *)arg;
}

/* The next frame is an unmasked, final text frame carrying exactly `want`. */
static void expect_text(rawclient_t *c, const char *want)
{
    size_t wl = strlen(want);
    size_t hl = wl < 126 ? 2 : 4;
    size_t need = hl + wl;
    ASSERT(rawclient_wait(c, has_bytes, &need, 2000));
    const uint8_t *p = c->in.data + c->pos;
    ASSERT_EQ(p[0], 0x81);
    if (hl == 2) {
        ASSERT_EQ(p[1], wl); /* no mask bit */
    } else {
        ASSERT_EQ(p[1], 126);
        ASSERT_EQ(p[2] << 8 | p[3], wl);
    }
    ASSERT_MEM_EQ(p + hl, wl, want, wl);
    c->pos += need;
}

/* The next frame is a Close with exactly `code` and `reason`, then EOF. */
static void expect_close(rawclient_t *c, int code, const char *reason)
{
    uint8_t op;
    uint8_t *p;
    size_t len;
    ASSERT_EQ(rawclient_next_frame(c, 3000, &op, &p, &len), 1);
    ASSERT_EQ(op, 8);
    uint8_t want[2 + 123];
    size_t rl = reason ? strlen(reason) : 0;
    want[0] = (uint8_t)(code >> 8);
    want[1] = (uint8_t)code;
    memcpy(want + 2, reason ? reason : "", rl);
    ASSERT_MEM_EQ(p, len, want, 2 + rl);
    phx_free(p);
    ASSERT(rawclient_wait_eof(c, 3000));
    ASSERT_EQ(c->in.len, c->pos); /* nothing after the Close */
}

static const char heartbeat[] = "[null,\"1\",\"phoenix\",\"heartbeat\",{}]";
static const char heartbeat_reply[] =
    "[null,\"1\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]";
static const char join_lobby[] = "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]";
static const char join_lobby_ok[] =
    "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]";

/* ---- the upgrade ---- */

static void upgrade_answers_101_with_the_accept_key(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, "vsn=2.0.0&user=7", 0);
    ASSERT_EQ(f.connects, 1);
    ASSERT_STR_EQ(f.transport, "websocket");
    phx_conn_t *conn = only_ws_conn(&f);
    ASSERT_EQ(conn->kind, PHX_CONN_WS);
    ASSERT(conn->http == NULL); /* the head's storage is gone */
    ASSERT(!phx_ws_has_context(conn));
    ASSERT_EQ(f.lf.loop.lists[PHX_LIST_HTTP].count, 0);
    rawclient_close(&c);
    fx_stop(&f);
}

static void upgrade_offering_phoenix_selects_it(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    loopfx_client(&f.lf, &c);
    static const char req[] = "GET /socket/websocket/?vsn=2.0.0 HTTP/1.1\r\n"
                              "Host: 127.0.0.1\r\n"
                              "Connection: keep-alive, Upgrade\r\n"
                              "Upgrade: websocket\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "Sec-WebSocket-Protocol: phoenix\r\n"
                              "\r\n";
    rawclient_write(&c, req, sizeof(req) - 1, 0);
    ASSERT_EQ(rawclient_http_status(&c, 2000), 101);
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "upgrade: websocket\r\n"
                               "connection: Upgrade\r\n"
                               "sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "sec-websocket-protocol: phoenix\r\n"
                               "\r\n";
    ASSERT_MEM_EQ(c.in.data, c.pos, want, sizeof(want) - 1);
    wsc_send_text(&c, heartbeat, 0);
    expect_text(&c, heartbeat_reply);
    rawclient_close(&c);
    fx_stop(&f);
}

/* The response to `req` is exactly `want`, then the server closes. */
static void expect_answer(fx_t *f, const char *req, const char *want)
{
    rawclient_t c;
    loopfx_client(&f->lf, &c);
    rawclient_write(&c, req, strlen(req), 0);
    ASSERT(rawclient_wait_eof(&c, 3000));
    ASSERT_MEM_EQ(c.in.data, c.in.len, want, strlen(want));
    rawclient_close(&c);
}

static void plain_get_on_the_path_is_400(void)
{
    fx_t f;
    fx_start(&f, NULL);
    expect_answer(&f,
                  "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\n"
                  "Host: 127.0.0.1\r\n"
                  "\r\n",
                  "HTTP/1.1 400 Bad Request\r\n"
                  "cache-control: max-age=0, private, must-revalidate\r\n"
                  "content-type: text/plain\r\n"
                  "content-length: 41\r\n"
                  "connection: close\r\n"
                  "\r\n"
                  "'upgrade' header must contain 'websocket'");
    /* Refused before the connect callback. */
    ASSERT_EQ(f.connects, 0);
    /* Another method: 400 with an empty body. */
    expect_answer(&f,
                  "POST /socket/websocket HTTP/1.1\r\n"
                  "Host: 127.0.0.1\r\n"
                  "Content-Length: 0\r\n"
                  "\r\n",
                  "HTTP/1.1 400 Bad Request\r\n"
                  "cache-control: max-age=0, private, must-revalidate\r\n"
                  "content-length: 0\r\n"
                  "connection: close\r\n"
                  "\r\n");
    ASSERT_EQ(f.connects, 0);
    fx_stop(&f);
}

static const char forbidden[] = "HTTP/1.1 403 Forbidden\r\n"
                                "cache-control: max-age=0, private, must-revalidate\r\n"
                                "content-length: 0\r\n"
                                "connection: close\r\n"
                                "\r\n";

static void refused_connect_is_403(void)
{
    fx_t f;
    fx_start(&f, NULL);
    phx_buf_t req = {0};
    ws_upgrade_request(&req, "vsn=2.0.0&deny=1");
    ASSERT_EQ(phx_buf_append_byte(&req, 0), 0);
    expect_answer(&f, (const char *)req.data, forbidden);
    phx_buf_dispose(&req);
    ASSERT_EQ(f.connects, 1);
    ASSERT_EQ(f.lf.loop.lists[PHX_LIST_WS].count, 0);
    /* An unsupported vsn is refused before the callback. */
    ws_upgrade_request(&req, "vsn=3.0.0");
    ASSERT_EQ(phx_buf_append_byte(&req, 0), 0);
    expect_answer(&f, (const char *)req.data, forbidden);
    phx_buf_dispose(&req);
    ASSERT_EQ(f.connects, 1);
    fx_stop(&f);
}

static void foreign_origin_is_403(void)
{
    fx_t f;
    fx_start(&f, NULL);
    expect_answer(&f,
                  "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\n"
                  "Host: 127.0.0.1\r\n"
                  "Origin: http://evil.example\r\n"
                  "Connection: Upgrade\r\n"
                  "Upgrade: websocket\r\n"
                  "Sec-WebSocket-Version: 13\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "\r\n",
                  forbidden);
    ASSERT_EQ(f.connects, 0);
    fx_stop(&f);
}

static void bad_version_is_400_after_the_callback(void)
{
    fx_t f;
    fx_start(&f, NULL);
    expect_answer(&f,
                  "GET /socket/websocket?vsn=2.0.0 HTTP/1.1\r\n"
                  "Host: 127.0.0.1\r\n"
                  "Connection: Upgrade\r\n"
                  "Upgrade: websocket\r\n"
                  "Sec-WebSocket-Version: 8\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "\r\n",
                  "HTTP/1.1 400 Bad Request\r\n"
                  "cache-control: max-age=0, private, must-revalidate\r\n"
                  "content-type: text/plain\r\n"
                  "content-length: 43\r\n"
                  "connection: close\r\n"
                  "sec-websocket-version: 13\r\n"
                  "\r\n"
                  "'sec-websocket-version' header must be '13'");
    /* Phoenix's order: the connect callback ran first. */
    ASSERT_EQ(f.connects, 1);
    fx_stop(&f);
}

/* ---- frames ---- */

static void heartbeat_is_answered(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, "vsn=2.0.0", 0);
    wsc_send_text(&c, heartbeat, 0);
    expect_text(&c, heartbeat_reply);
    ASSERT(!phx_ws_has_context(only_ws_conn(&f)));
    ASSERT_EQ(f.lf.loop.stats.msgs_in, 1);
    rawclient_close(&c);
    fx_stop(&f);
}

static void masked_frame_split_across_writes(void)
{
    static const size_t chunks[] = {1, 2, 3, 7};
    fx_t f;
    fx_start(&f, NULL);
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        rawclient_t c;
        fx_open(&f, &c, "vsn=2.0.0", chunks[i]);
        uint8_t frame[64];
        size_t n = ws_client_frame(frame, 1, true, heartbeat, sizeof(heartbeat) - 1);
        /* Mid-frame the wslay context is held; at rest it is released. */
        rawclient_write(&c, frame, 3, 0);
        ASSERT(phx_ws_has_context(only_ws_conn(&f)));
        rawclient_write(&c, frame + 3, n - 3, chunks[i]);
        expect_text(&c, heartbeat_reply);
        ASSERT(!phx_ws_has_context(only_ws_conn(&f)));
        rawclient_close(&c);
        loopfx_wait_conns(&f.lf);
    }
    fx_stop(&f);
}

static void fragmented_message_is_reassembled(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, "vsn=2.0.0", 0);
    size_t half = 10;
    wsc_send_frame(&c, 1, false, heartbeat, half, 0);
    wsc_send_frame(&c, 0, true, heartbeat + half, sizeof(heartbeat) - 1 - half, 0);
    expect_text(&c, heartbeat_reply);
    rawclient_close(&c);
    fx_stop(&f);
}

static void pipelined_first_frame_is_read(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    wsc_open_with_text(&c, &f.lf.uv, f.lf.port, "vsn=2.0.0", heartbeat);
    expect_text(&c, heartbeat_reply);
    rawclient_close(&c);
    fx_stop(&f);
}

static void join_reaches_the_channel_route(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, "vsn=2.0.0&user=7", 0);
    wsc_send_text(&c, join_lobby, 0);
    expect_text(&c, join_lobby_ok);
    ASSERT_EQ(f.joins, 1);
    ASSERT_STR_EQ(f.last_topic, "room:lobby");
    wsc_send_text(&c, "[\"1\",\"2\",\"room:lobby\",\"echo\",{\"a\":[1,2]}]", 0);
    expect_text(&c, "[\"1\",\"2\",\"room:lobby\",\"phx_reply\",{\"response\":{\"a\":[1,2]},"
                    "\"status\":\"ok\"}]");
    wsc_send_text(&c, "[\"1\",\"3\",\"room:lobby\",\"note\",{\"b\":true}]", 0);
    expect_text(&c, "[\"1\",null,\"room:lobby\",\"seen\",{\"b\":true}]");
    ASSERT_EQ(f.events, 2);
    /* A topic with no route. */
    wsc_send_text(&c, "[\"4\",\"4\",\"nowhere\",\"phx_join\",{}]", 0);
    expect_text(&c, "[null,\"4\",\"nowhere\",\"phx_reply\",{\"response\":{\"reason\":\"unmatched "
                    "topic\"},\"status\":\"error\"}]");
    ASSERT_EQ(f.joins, 1);
    /* A broadcast on the endpoint reaches the joined socket. */
    phx_payload_t pl = {.data = (const uint8_t *)"{\"n\":1}", .len = 7};
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "room:lobby", 10, "news", &pl, 0, 0), 1);
    expect_text(&c, "[null,null,\"room:lobby\",\"news\",{\"n\":1}]");
    /* The client goes away: the channel ends with "closed". */
    rawclient_close(&c);
    loopfx_wait_conns(&f.lf);
    ASSERT_EQ(f.terminates, 1);
    ASSERT_STR_EQ(f.last_reason, "closed");
    fx_stop(&f);
}

/* ---- closing ---- */

static void client_close_is_answered(void)
{
    static const struct {
        const char *payload;
        size_t len;
        int reply;
    } cases[] = {
        {"\x03\xe8", 2, 1000}, /* 1000 */
        {"\x0f\xa0"
         "bye",
         5, 1000},             /* 4000 with a reason */
        {"", 0, 1000},         /* no code */
        {"\x03\xed", 2, 1002}, /* 1005 may not be sent */
    };
    fx_t f;
    fx_start(&f, NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        rawclient_t c;
        fx_open(&f, &c, "vsn=2.0.0", 0);
        wsc_send_frame(&c, 8, true, cases[i].payload, cases[i].len, 0);
        expect_close(&c, cases[i].reply, NULL);
        rawclient_close(&c);
        loopfx_wait_conns(&f.lf);
    }
    fx_stop(&f);
}

static void short_idle(phx_config_t *cfg)
{
    cfg->idle_timeout_ms = 100;
}

static void idle_socket_is_closed_1002(void)
{
    fx_t f;
    fx_start(&f, short_idle);
    rawclient_t c;
    fx_open(&f, &c, "vsn=2.0.0", 0);
    expect_close(&c, 1002, "idle timeout");
    rawclient_close(&c);
    fx_stop(&f);
}

static void shutdown_sends_close_with_its_code(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, "vsn=2.0.0", 0);
    wsc_send_text(&c, join_lobby, 0);
    expect_text(&c, join_lobby_ok);
    phx_conn_shutdown(only_ws_conn(&f), 1001, false);
    expect_close(&c, 1001, NULL);
    rawclient_close(&c);
    loopfx_wait_conns(&f.lf);
    ASSERT_EQ(f.terminates, 1);
    fx_stop(&f);
}

static void disconnect_by_socket_id_closes_1001(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t a, b;
    fx_open(&f, &a, "vsn=2.0.0&user=7", 0);
    fx_open(&f, &b, "vsn=2.0.0&user=8", 0);
    phx_payload_t pl = {.data = (const uint8_t *)"{}", .len = 2};
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "user:7", 6, "disconnect", &pl, 0, 0), 1);
    expect_close(&a, 1001, NULL);
    /* The other socket is untouched. */
    wsc_send_text(&b, heartbeat, 0);
    expect_text(&b, heartbeat_reply);
    rawclient_close(&a);
    rawclient_close(&b);
    fx_stop(&f);
}

const phx_test_t phx_tests_ws[] = {
    {"upgrade_answers_101_with_the_accept_key", upgrade_answers_101_with_the_accept_key},
    {"upgrade_offering_phoenix_selects_it", upgrade_offering_phoenix_selects_it},
    {"plain_get_on_the_path_is_400", plain_get_on_the_path_is_400},
    {"refused_connect_is_403", refused_connect_is_403},
    {"foreign_origin_is_403", foreign_origin_is_403},
    {"bad_version_is_400_after_the_callback", bad_version_is_400_after_the_callback},
    {"heartbeat_is_answered", heartbeat_is_answered},
    {"masked_frame_split_across_writes", masked_frame_split_across_writes},
    {"fragmented_message_is_reassembled", fragmented_message_is_reassembled},
    {"pipelined_first_frame_is_read", pipelined_first_frame_is_read},
    {"join_reaches_the_channel_route", join_reaches_the_channel_route},
    {"client_close_is_answered", client_close_is_answered},
    {"idle_socket_is_closed_1002", idle_socket_is_closed_1002},
    {"shutdown_sends_close_with_its_code", shutdown_sends_close_with_its_code},
    {"disconnect_by_socket_id_closes_1001", disconnect_by_socket_id_closes_1001},
    {NULL, NULL},
};
