/* Whole-stack tests of a real phx_server_t on the test's own loop with a
 * raw TCP client: the upgrade and frames fed in every chunking down to one
 * byte, wslay context release, size and fragment limits, close codes,
 * timeouts, shutdown with uv_loop_close() == 0. */

#include "api.h"
#include "phx.h"
#include "policy.h"
#include "pubsub.h"
#include "rawclient.h"
#include "testtoken.h"
#include "runner.h"
#include "server.h"
#include "socket.h"
#include "ws.h"
#include "wsclient.h"

static const char secret[] = "unit-test-secret-key-base-0123456789abcdefghijklmnopqrstuvwxyz01";

typedef struct fx {
    uv_loop_t loop;
    phx_server_t *srv;
    int port;
    char query[600];
    bool is_stopped;
} fx_t;

static void make_token(char *out, size_t cap, int64_t user)
{
    ASSERT_EQ(test_token_user(out, cap, secret, user), 0);
}

/* Channel handlers registered before the default policy, when set. */
static void (*install_routes)(phx_server_t *srv);

static void fx_start(fx_t *f, void (*tweak)(phx_config_t *))
{
    memset(f, 0, sizeof(*f));
    ASSERT_EQ(uv_loop_init(&f->loop), 0);
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.port = 0;
    cfg.secret_key_base = secret;
    if (tweak)
        tweak(&cfg);
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_server_new(&f->srv, &f->loop, &cfg, err), 0);
    if (install_routes)
        install_routes(f->srv);
    ASSERT_EQ(phx_policy_install(f->srv), 0);
    ASSERT_EQ(phx_server_start(f->srv, err), 0);
    f->port = phx_server_port(f->srv);
    char token[512];
    make_token(token, sizeof(token), 42);
    snprintf(f->query, sizeof(f->query), "token=%s&vsn=2.0.0", token);
}

static fx_t *current;

static void on_stopped_cb(phx_server_t *srv)
{
    current->is_stopped = true;
}

static void fx_stop(fx_t *f)
{
    current = f;
    phx_server_stop(f->srv, 1001, on_stopped_cb);
    while (!f->is_stopped)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    phx_server_free(f->srv);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
}

static void fx_open_query(fx_t *f, rawclient_t *c, const char *query, size_t chunk)
{
    wsc_open(c, &f->loop, f->port, query, chunk);
}

static void fx_open(fx_t *f, rawclient_t *c, size_t chunk)
{
    wsc_open(c, &f->loop, f->port, f->query, chunk);
}

/* Asserts the next frame is text equal to `want`. */
static void expect_text(rawclient_t *c, const char *want)
{
    uint8_t op;
    uint8_t *p;
    size_t len;
    ASSERT_EQ(rawclient_next_frame(c, 2000, &op, &p, &len), 1);
    ASSERT_EQ(op, 1);
    ASSERT_STR_EQ((char *)p, want);
    phx_free(p);
}

static void expect_close(rawclient_t *c, int code)
{
    uint8_t op;
    uint8_t *p;
    size_t len;
    ASSERT_EQ(rawclient_next_frame(c, 3000, &op, &p, &len), 1);
    ASSERT_EQ(op, 8);
    ASSERT(len >= 2);
    ASSERT_EQ(p[0] << 8 | p[1], code);
    phx_free(p);
    ASSERT(rawclient_wait_eof(c, 3000));
}

static phx_conn_t *only_ws_conn(fx_t *f)
{
    phx_conn_t *conn = phx_loop_list_first(&f->srv->loop, PHX_LIST_WS);
    ASSERT(conn != NULL);
    return conn;
}

static const char heartbeat[] = "[null,\"1\",\"phoenix\",\"heartbeat\",{}]";
static const char heartbeat_reply[] =
    "[null,\"1\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]";

static void heartbeat_in_every_chunking(void)
{
    static const size_t chunks[] = {1, 2, 3, 5, 7, 64, 0};
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        fx_t f;
        fx_start(&f, NULL);
        rawclient_t c;
        fx_open(&f, &c, chunks[i]);
        wsc_send_text(&c, heartbeat, chunks[i]);
        expect_text(&c, heartbeat_reply);
        /* Idle at a frame boundary: no wslay context is held. */
        ASSERT(!phx_ws_has_context(only_ws_conn(&f)));
        rawclient_close(&c);
        fx_stop(&f);
    }
}

static void context_held_only_mid_frame(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, 0);
    uint8_t frame[64];
    size_t n = ws_client_frame(frame, 1, true, heartbeat, sizeof(heartbeat) - 1);
    rawclient_write(&c, frame, 1, 0); /* one byte of the header */
    ASSERT(phx_ws_has_context(only_ws_conn(&f)));
    rawclient_write(&c, frame + 1, n - 1, 0);
    expect_text(&c, heartbeat_reply);
    ASSERT(!phx_ws_has_context(only_ws_conn(&f)));
    rawclient_close(&c);
    fx_stop(&f);
}

static void pipelined_first_frame(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    wsc_open_with_text(&c, &f.loop, f.port, f.query, heartbeat);
    expect_text(&c, heartbeat_reply);
    rawclient_close(&c);
    fx_stop(&f);
}

static void fragmented_join_is_reassembled(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, 0);
    const char *msg = "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]";
    size_t len = strlen(msg);
    wsc_send_frame(&c, 1, false, msg, 5, 1);
    ASSERT(phx_ws_has_context(only_ws_conn(&f))); /* a message is open */
    wsc_send_frame(&c, 0, false, msg + 5, 10, 1);
    wsc_send_frame(&c, 9, true, "ping!", 5, 0); /* a control frame between fragments */
    wsc_send_frame(&c, 0, true, msg + 15, len - 15, 2);
    uint8_t op;
    uint8_t *p;
    size_t plen;
    ASSERT_EQ(rawclient_next_frame(&c, 2000, &op, &p, &plen), 1);
    ASSERT_EQ(op, 10); /* pong first: it was answered while the message was open */
    ASSERT_MEM_EQ(p, plen, "ping!", 5);
    phx_free(p);
    expect_text(&c,
                "[\"1\",\"1\",\"room:lobby\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT(!phx_ws_has_context(only_ws_conn(&f)));
    rawclient_close(&c);
    fx_stop(&f);
}

static void small_limits(phx_config_t *cfg)
{
    cfg->max_message_bytes = 64;
    cfg->max_fragments = 4;
}

static void message_over_limit_closes_1009(void)
{
    fx_t f;
    fx_start(&f, small_limits);
    rawclient_t c;
    fx_open(&f, &c, 0);
    char big[100];
    memset(big, ' ', sizeof(big));
    wsc_send_frame(&c, 1, true, big, sizeof(big), 0);
    expect_close(&c, 1009);
    rawclient_close(&c);
    /* Over the limit across fragments too. */
    fx_open(&f, &c, 0);
    wsc_send_frame(&c, 1, false, big, 40, 0);
    wsc_send_frame(&c, 0, true, big, 40, 0);
    expect_close(&c, 1009);
    rawclient_close(&c);
    /* A declared length far beyond the limit, with one payload byte. */
    fx_open(&f, &c, 0);
    uint8_t lie[] = {0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4, 'x'};
    rawclient_write(&c, lie, sizeof(lie), 0);
    expect_close(&c, 1009);
    rawclient_close(&c);
    fx_stop(&f);
}

static void too_many_fragments_closes_1009(void)
{
    fx_t f;
    fx_start(&f, small_limits);
    rawclient_t c;
    fx_open(&f, &c, 0);
    wsc_send_frame(&c, 1, false, "[", 1, 0);
    for (int i = 0; i < 5; i++)
        wsc_send_frame(&c, 0, false, "", 0, 0);
    expect_close(&c, 1009);
    rawclient_close(&c);
    fx_stop(&f);
}

static void invalid_utf8_closes_1007(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, 0);
    wsc_send_frame(&c, 1, true, "[\"\xc3\x28\"]", 6, 0);
    expect_close(&c, 1007);
    rawclient_close(&c);
    fx_stop(&f);
}

static void undecodable_message_closes_1011(void)
{
    static const char *bad[] = {"not json", "{\"topic\":\"x\"}", "[1,2,3]", "[]"};
    fx_t f;
    fx_start(&f, NULL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rawclient_t c;
        fx_open(&f, &c, 0);
        wsc_send_text(&c, bad[i], 0);
        expect_close(&c, 1011);
        rawclient_close(&c);
    }
    fx_stop(&f);
}

static void protocol_errors_get_a_close_frame(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    /* Unmasked client frame -> 1002, flushed before TCP closes. */
    fx_open(&f, &c, 0);
    uint8_t unmasked[] = {0x81, 0x02, '[', ']'};
    rawclient_write(&c, unmasked, sizeof(unmasked), 0);
    expect_close(&c, 1002);
    rawclient_close(&c);
    /* Reserved opcode 3 -> 1002. */
    fx_open(&f, &c, 0);
    wsc_send_frame(&c, 3, true, "x", 1, 0);
    expect_close(&c, 1002);
    rawclient_close(&c);
    fx_stop(&f);
}

static void client_close_is_answered(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, 0);
    wsc_send_frame(&c, 8, true, "\x03\xe8", 2, 0);
    expect_close(&c, 1000);
    rawclient_close(&c);
    fx_stop(&f);
}

static void short_idle(phx_config_t *cfg)
{
    cfg->idle_timeout_ms = 150;
}

static void idle_socket_is_closed(void)
{
    fx_t f;
    fx_start(&f, short_idle);
    rawclient_t c;
    fx_open(&f, &c, 0);
    expect_close(&c, 1002);
    rawclient_close(&c);
    fx_stop(&f);
}

static bool got_close_1001(rawclient_t *c, void *arg)
{
    return c->in.len - c->pos >= 4 && c->in.data[c->pos] == 0x88;
}

static void stop_closes_sockets_with_1001(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    fx_open(&f, &c, 0);
    current = &f;
    phx_server_stop(f.srv, 1001, on_stopped_cb);
    ASSERT(rawclient_wait(&c, got_close_1001, NULL, 2000));
    uint8_t op;
    uint8_t *p;
    size_t len;
    ASSERT_EQ(rawclient_next_frame(&c, 100, &op, &p, &len), 1);
    ASSERT_EQ(p[0] << 8 | p[1], 1001);
    phx_free(p);
    rawclient_close(&c);
    while (!f.is_stopped)
        uv_run(&f.loop, UV_RUN_ONCE);
    phx_server_free(f.srv);
    ASSERT_EQ(uv_loop_close(&f.loop), 0);
}

static void refused_tokens_get_403(void)
{
    fx_t f;
    fx_start(&f, NULL);
    static const char *queries[] = {"vsn=2.0.0", "token=garbage&vsn=2.0.0", "token=&vsn=2.0.0"};
    for (size_t i = 0; i < sizeof(queries) / sizeof(queries[0]); i++) {
        rawclient_t c;
        ASSERT_EQ(rawclient_connect(&c, &f.loop, f.port), 0);
        phx_buf_t req = {0};
        ws_upgrade_request(&req, queries[i]);
        rawclient_write(&c, req.data, req.len, 0);
        phx_buf_dispose(&req);
        ASSERT_EQ(rawclient_http_status(&c, 2000), 403);
        ASSERT(rawclient_wait_eof(&c, 2000));
        rawclient_close(&c);
    }
    ASSERT_EQ(f.srv->loop.stats.refused_connects, 3);
    fx_stop(&f);
}

static void broadcast_reaches_every_subscriber_once_encoded(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t a, b;
    fx_open(&f, &a, 0);
    fx_open(&f, &b, 0);
    wsc_send_text(&a, "[\"1\",\"1\",\"room:x\",\"phx_join\",{}]", 0);
    wsc_send_text(&b, "[\"1\",\"1\",\"room:x\",\"phx_join\",{}]", 0);
    expect_text(&a, "[\"1\",\"1\",\"room:x\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    expect_text(&b, "[\"1\",\"1\",\"room:x\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    wsc_send_text(&a, "[\"1\",\"2\",\"room:x\",\"msg\",{ \"n\" : 12345678901234567890 }]", 3);
    const char *want = "[null,null,\"room:x\",\"msg\",{\"n\":12345678901234567890}]";
    expect_text(&a, want);
    expect_text(&a, "[\"1\",\"2\",\"room:x\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    expect_text(&b, want);
    phx_payload_t pl = {(const uint8_t *)"{\"k\":1}", 7, false};
    ASSERT_EQ(phx_endpoint_broadcast(&f.srv->ep, "room:x", 6, "srv", &pl, 0, 0), 2);
    ASSERT_EQ(phx_broadcast(f.srv, "room:x", "srv", &pl), 0); /* no count promised */
    for (int i = 0; i < 2; i++) {
        expect_text(&a, "[null,null,\"room:x\",\"srv\",{\"k\":1}]");
        expect_text(&b, "[null,null,\"room:x\",\"srv\",{\"k\":1}]");
    }
    rawclient_close(&a);
    rawclient_close(&b);
    fx_stop(&f);
}

/* ---- the embedder's channel API: outcomes the default policy never
 * produces ---- */

static int terminated;
static char last_reason[32];

static phx_result_t api_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                             phx_reply_t *reply, void *user)
{
    /* Pushing before the join reply is refused (docs/protocol.md §3.3). */
    phx_payload_t p = {(const uint8_t *)"{}", 2, false};
    ASSERT_EQ(phx_channel_push(ch, "early", &p), PHX_ERR_STATE);
    if (strcmp(topic, "api:crash") == 0)
        return PHX_CRASH;
    if (strcmp(topic, "api:refuse") == 0) {
        phx_payload_t r = {(const uint8_t *)"{\"reason\":\"nope\"}", 17, false};
        phx_reply_set(reply, &r);
        return PHX_REPLY_ERROR;
    }
    phx_payload_t r = {(const uint8_t *)"{\"welcome\":true}", 16, false};
    phx_reply_set(reply, &r);
    return PHX_REPLY_OK;
}

static phx_result_t api_in(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                           phx_reply_t *reply, void *user)
{
    if (strcmp(event, "stop") == 0)
        return PHX_STOP;
    if (strcmp(event, "crash") == 0)
        return PHX_CRASH;
    if (strcmp(event, "noreply") == 0)
        return PHX_NOREPLY;
    if (strcmp(event, "custom") == 0) {
        phx_reply_set_status(reply, "later");
        return PHX_REPLY_OK;
    }
    if (strcmp(event, "push_bin") == 0) {
        phx_payload_t b = {(const uint8_t *)"\xff\x00", 2, true};
        ASSERT_EQ(phx_channel_push(ch, "bin_push", &b), 0);
        return PHX_NOREPLY;
    }
    if (strcmp(event, "push") == 0) {
        phx_payload_t p = {(const uint8_t *)"{\"n\":1}", 7, false};
        ASSERT_EQ(phx_channel_push(ch, "pushed", &p), 0);
        return PHX_NOREPLY;
    }
    if (strcmp(event, "from") == 0) {
        ASSERT_EQ(phx_channel_broadcast_from(ch, "others", payload), 1);
        return PHX_REPLY_OK;
    }
    return PHX_REPLY_ERROR;
}

static void api_terminate(phx_channel_t *ch, const char *reason, void *user)
{
    terminated++;
    snprintf(last_reason, sizeof(last_reason), "%s", reason);
}

static const phx_channel_handler_t api_handler = {
    .join = api_join,
    .handle_in = api_in,
    .terminate = api_terminate,
};

static void api_routes(phx_server_t *srv)
{
    ASSERT_EQ(phx_server_channel(srv, "api:*", &api_handler, NULL), 0);
}

static void channel_api_outcomes(void)
{
    fx_t f;
    install_routes = api_routes;
    fx_start(&f, NULL);
    install_routes = NULL;
    rawclient_t c, d;
    fx_open(&f, &c, 0);
    fx_open(&f, &d, 0);
    wsc_send_text(&c, "[\"1\",\"1\",\"api:crash\",\"phx_join\",{}]", 0);
    expect_text(&c, "[\"1\",\"1\",\"api:crash\",\"phx_reply\",{\"response\":{\"reason\":\"join "
                    "crashed\"},\"status\":\"error\"}]");
    wsc_send_text(&c, "[\"2\",\"2\",\"api:refuse\",\"phx_join\",{}]", 0);
    expect_text(&c, "[\"2\",\"2\",\"api:refuse\",\"phx_reply\",{\"response\":{\"reason\":"
                    "\"nope\"},\"status\":\"error\"}]");
    wsc_send_text(&c, "[\"3\",\"3\",\"api:a\",\"phx_join\",{}]", 0);
    expect_text(&c, "[\"3\",\"3\",\"api:a\",\"phx_reply\",{\"response\":{\"welcome\":true},"
                    "\"status\":\"ok\"}]");
    wsc_send_text(&d, "[\"9\",\"9\",\"api:a\",\"phx_join\",{}]", 0);
    expect_text(&d, "[\"9\",\"9\",\"api:a\",\"phx_reply\",{\"response\":{\"welcome\":true},"
                    "\"status\":\"ok\"}]");
    /* A push carries the channel's join_ref and a null ref. */
    wsc_send_text(&c, "[\"3\",\"4\",\"api:a\",\"push\",{}]", 0);
    expect_text(&c, "[\"3\",null,\"api:a\",\"pushed\",{\"n\":1}]");
    /* A binary push uses the 4-byte server layout, with no ref. */
    wsc_send_text(&c, "[\"3\",\"5\",\"api:a\",\"push_bin\",{}]", 0);
    uint8_t op;
    uint8_t *p;
    size_t len;
    ASSERT_EQ(rawclient_next_frame(&c, 2000, &op, &p, &len), 1);
    ASSERT_EQ(op, 2);
    ASSERT_MEM_EQ(p, len,
                  "\x00\x01\x05\x08"
                  "3"
                  "api:a"
                  "bin_push"
                  "\xff\x00",
                  20);
    phx_free(p);
    /* A custom reply status. */
    wsc_send_text(&c, "[\"3\",\"6\",\"api:a\",\"custom\",{}]", 0);
    expect_text(&c, "[\"3\",\"6\",\"api:a\",\"phx_reply\",{\"response\":{},\"status\":\"later\"}]");
    /* broadcast_from skips the sender. */
    wsc_send_text(&c, "[\"3\",\"7\",\"api:a\",\"from\",{\"x\":2}]", 0);
    expect_text(&d, "[null,null,\"api:a\",\"others\",{\"x\":2}]");
    expect_text(&c, "[\"3\",\"7\",\"api:a\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    /* A crash in handle_in: phx_error with the join_ref twice; the socket lives. */
    wsc_send_text(&c, "[\"3\",\"8\",\"api:a\",\"crash\",{}]", 0);
    expect_text(&c, "[\"3\",\"3\",\"api:a\",\"phx_error\",{\"reason\":\"channel_crash\"}]");
    ASSERT_STR_EQ(last_reason, "crash");
    wsc_send_text(&c, "[\"3\",\"9\",\"api:a\",\"push\",{}]", 0);
    expect_text(&c, "[null,\"9\",\"api:a\",\"phx_reply\",{\"response\":{\"reason\":\"unmatched "
                    "topic\"},\"status\":\"error\"}]");
    /* A stop: phx_close, no rejoin needed by the client. */
    wsc_send_text(&d, "[\"9\",\"10\",\"api:a\",\"stop\",{}]", 0);
    expect_text(&d, "[\"9\",\"9\",\"api:a\",\"phx_close\",{}]");
    ASSERT_STR_EQ(last_reason, "stop");
    /* No reply at all for noreply; the heartbeat after it proves the order. */
    wsc_send_text(&c, "[\"4\",\"11\",\"api:b\",\"phx_join\",{}]", 0);
    expect_text(&c, "[\"4\",\"11\",\"api:b\",\"phx_reply\",{\"response\":{\"welcome\":true},"
                    "\"status\":\"ok\"}]");
    wsc_send_text(&c, "[\"4\",\"12\",\"api:b\",\"noreply\",{}]", 0);
    wsc_send_text(&c, heartbeat, 0);
    expect_text(&c, heartbeat_reply);
    int before = terminated;
    rawclient_close(&c);
    rawclient_close(&d);
    fx_stop(&f);
    ASSERT_EQ(terminated, before + 1); /* api:b ended with the connection */
    ASSERT_STR_EQ(last_reason, "closed");
}

static const phx_channel_handler_t dummy_handler = {.join = api_join};

/* ---- socket ids belong to the server ---- */

/* An embedder's connect callback: the socket id is whatever ?id= says. */
static int id_from_param(phx_connect_t *c, void *user)
{
    const char *id = phx_connect_param(c, "id");
    if (id && phx_connect_set_id(c, id) != 0)
        return PHX_CONNECT_REFUSE;
    return PHX_CONNECT_OK;
}

static phx_result_t open_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                              phx_reply_t *reply, void *user)
{
    return PHX_REPLY_OK;
}

/* Every client event goes to the whole topic, as events=broadcast does. */
static phx_result_t echo_all(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                             phx_reply_t *reply, void *user)
{
    return phx_channel_broadcast(ch, event, payload) < 0 ? PHX_CRASH : PHX_REPLY_OK;
}

static const phx_channel_handler_t open_handler = {.join = open_join, .handle_in = echo_all};

static void open_routes(phx_server_t *srv)
{
    phx_server_on_connect(srv, id_from_param, NULL);
    ASSERT_EQ(phx_server_channel(srv, "*", &open_handler, NULL), 0);
}

static const char ok_reply_fmt[] =
    "[\"%s\",\"%s\",\"%s\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]";

static void expect_ok(rawclient_t *c, const char *join_ref, const char *ref, const char *topic)
{
    char want[256];
    snprintf(want, sizeof(want), ok_reply_fmt, join_ref, ref, topic);
    expect_text(c, want);
}

static void expect_unmatched(rawclient_t *c, const char *ref, const char *topic)
{
    char want[256];
    snprintf(want, sizeof(want),
             "[null,\"%s\",\"%s\",\"phx_reply\",{\"response\":{\"reason\":\"unmatched "
             "topic\"},\"status\":\"error\"}]",
             ref, topic);
    expect_text(c, want);
}

static void expect_alive(rawclient_t *c)
{
    wsc_send_text(c, heartbeat, 0);
    expect_text(c, heartbeat_reply);
}

static void socket_id_topics_cannot_be_joined_and_clients_never_disconnect(void)
{
    fx_t f;
    install_routes = open_routes;
    fx_start(&f, NULL);
    install_routes = NULL;
    rawclient_t a, b, late;
    fx_open_query(&f, &a, "id=custom:a&vsn=2.0.0", 0);
    fx_open_query(&f, &b, "id=custom:b&vsn=2.0.0", 0);
    ASSERT(phx_socket_id_topic(&f.srv->ep, "custom:a", 8));
    ASSERT(phx_socket_id_topic(&f.srv->ep, "users_socket:9", 14)); /* the form, nobody connected */
    ASSERT(!phx_socket_id_topic(&f.srv->ep, "custom:late", 11));
    ASSERT(!phx_socket_id_topic(&f.srv->ep, "room:x", 6));

    /* The "*" route matches everything, yet ids are refused: a connected
     * socket's custom id, and the users_socket: form of anybody. */
    wsc_send_text(&b, "[\"1\",\"1\",\"custom:a\",\"phx_join\",{}]", 0);
    expect_unmatched(&b, "1", "custom:a");
    wsc_send_text(&b, "[\"2\",\"2\",\"users_socket:9\",\"phx_join\",{}]", 0);
    expect_unmatched(&b, "2", "users_socket:9");
    wsc_send_text(&b, "[\"3\",\"3\",\"custom:b\",\"phx_join\",{}]", 0);
    expect_unmatched(&b, "3", "custom:b"); /* one's own id too */
    wsc_send_text(&b, "[\"1\",\"4\",\"custom:a\",\"disconnect\",{}]", 0);
    expect_unmatched(&b, "4", "custom:a");
    expect_alive(&a);

    /* A topic joined before a socket takes it as its id: the channel stays,
     * but what it broadcasts, "disconnect" included, only delivers. */
    wsc_send_text(&b, "[\"5\",\"5\",\"custom:late\",\"phx_join\",{}]", 0);
    expect_ok(&b, "5", "5", "custom:late");
    fx_open_query(&f, &late, "id=custom:late&vsn=2.0.0", 0);
    ASSERT(phx_socket_id_topic(&f.srv->ep, "custom:late", 11));
    wsc_send_text(&b, "[\"5\",\"6\",\"custom:late\",\"disconnect\",{}]", 0);
    expect_text(&b, "[null,null,\"custom:late\",\"disconnect\",{}]");
    expect_ok(&b, "5", "6", "custom:late");
    expect_alive(&late);
    phx_payload_t empty = {(const uint8_t *)"{}", 2, false};
    /* What a client event is: it delivers, and closes nobody. */
    ASSERT_EQ(phx_endpoint_broadcast(&f.srv->ep, "custom:late", 11, "disconnect", &empty, 0,
                                     PHX_ORIGIN_CLIENT),
              1);
    expect_text(&b, "[null,null,\"custom:late\",\"disconnect\",{}]");
    expect_alive(&late);
    ASSERT_EQ(f.srv->loop.lists[PHX_LIST_WS].count, 3); /* nobody was closed */

    /* Server-side: a broadcast closes the id's socket and delivers to the
     * topic's subscriber (2 local recipients); one for id subscriptions
     * only (the API's disconnect) only closes. phx_broadcast promises no
     * count (a cluster backend could not give one). */
    ASSERT_EQ(phx_endpoint_broadcast(&f.srv->ep, "custom:late", 11, "disconnect", &empty, 0, 0), 2);
    expect_close(&late, 1001);
    expect_text(&b, "[null,null,\"custom:late\",\"disconnect\",{}]");
    ASSERT(!phx_socket_id_topic(&f.srv->ep, "custom:late", 11));
#define DISCONNECT(id)                                                                             \
    phx_endpoint_broadcast(&f.srv->ep, id, strlen(id), "disconnect", NULL, 0, PHX_ORIGIN_IDS_ONLY)
    ASSERT_EQ(DISCONNECT("custom:a"), 1);
    expect_close(&a, 1001);
    ASSERT(!phx_socket_id_topic(&f.srv->ep, "custom:a", 8));
    ASSERT_EQ(DISCONNECT("custom:a"), 0);
    ASSERT_EQ(DISCONNECT("custom:late"), 0);
    ASSERT_EQ(phx_broadcast(f.srv, "custom:nobody", "disconnect", &empty), 0);
#undef DISCONNECT
    expect_alive(&b);
    rawclient_close(&a);
    rawclient_close(&b);
    rawclient_close(&late);
    fx_stop(&f);
}

static void api_key_compared_whole(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    phx_config_t cfg;
    phx_config_init(&cfg);
    phx_server_t *srv, *off;
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_server_new(&off, &loop, &cfg, err), 0);
    cfg.api_key = "s3cret-key";
    ASSERT_EQ(phx_server_new(&srv, &loop, &cfg, err), 0);
    ASSERT(phx_api_key_ok(&srv->cfg, "Bearer s3cret-key"));
    ASSERT(phx_api_key_ok(&srv->cfg, "Bearer s3cret-key")); /* the MAC key is made once */
    static const char *const wrong[] = {
        "Bearer s3cret-ke",
        "Bearer s3cret-keyy",
        "Bearer S3cret-key",
        "Bearer ",
        "Bearer",
        "bearer s3cret-key",
        "Basic s3cret-key",
        "s3cret-key",
        "Bearer  s3cret-key",
        "",
    };
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++)
        ASSERT(!phx_api_key_ok(&srv->cfg, wrong[i]));
    ASSERT(!phx_api_key_ok(&srv->cfg, NULL));
    /* No key configured: nothing is accepted, not even an empty bearer. */
    ASSERT(!phx_api_key_ok(&off->cfg, "Bearer "));
    ASSERT(!phx_api_key_ok(&off->cfg, "Bearer s3cret-key"));
    phx_server_stop(srv, 1001, NULL);
    phx_server_stop(off, 1001, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    phx_server_free(srv);
    phx_server_free(off);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

static void routes_match_exact_topics_and_prefixes_first_wins(void)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    phx_config_t cfg;
    phx_config_init(&cfg);
    phx_server_t *srv;
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_server_new(&srv, &loop, &cfg, err), 0);
    int a, b, c;
    ASSERT_EQ(phx_server_channel(srv, "system", &dummy_handler, &a), 0);
    ASSERT_EQ(phx_server_channel(srv, "room:vip*", &dummy_handler, &b), 0);
    ASSERT_EQ(phx_server_channel(srv, "room:*", &dummy_handler, &c), 0);
    ASSERT_EQ(phx_server_channel(srv, "room:*", NULL, &c), PHX_ERR_INVALID);
    const phx_route_t *r = phx_endpoint_route(&srv->ep, "system", 6);
    ASSERT(r && r->user == &a);
    ASSERT(phx_endpoint_route(&srv->ep, "system:1", 8) == NULL); /* exact means exact */
    ASSERT(phx_endpoint_route(&srv->ep, "syste", 5) == NULL);
    r = phx_endpoint_route(&srv->ep, "room:vip1", 9);
    ASSERT(r && r->user == &b); /* first declared wins */
    r = phx_endpoint_route(&srv->ep, "room:lobby", 10);
    ASSERT(r && r->user == &c);
    r = phx_endpoint_route(&srv->ep, "room:", 5);
    ASSERT(r && r->user == &c); /* the prefix itself matches, as in Phoenix */
    ASSERT(phx_endpoint_route(&srv->ep, "room", 4) == NULL);
    ASSERT(phx_endpoint_route(&srv->ep, "rooms:x", 7) == NULL);
    ASSERT(phx_endpoint_route(&srv->ep, "", 0) == NULL);
    phx_server_stop(srv, 1001, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    phx_server_free(srv);
    ASSERT_EQ(uv_loop_close(&loop), 0);
}

const phx_test_t phx_tests_server[] = {
    {"routes_match_exact_topics_and_prefixes_first_wins",
     routes_match_exact_topics_and_prefixes_first_wins},
    {"channel_api_outcomes", channel_api_outcomes},
    {"socket_id_topics_cannot_be_joined_and_clients_never_disconnect",
     socket_id_topics_cannot_be_joined_and_clients_never_disconnect},
    {"api_key_compared_whole", api_key_compared_whole},
    {"heartbeat_in_every_chunking", heartbeat_in_every_chunking},
    {"context_held_only_mid_frame", context_held_only_mid_frame},
    {"pipelined_first_frame", pipelined_first_frame},
    {"fragmented_join_is_reassembled", fragmented_join_is_reassembled},
    {"message_over_limit_closes_1009", message_over_limit_closes_1009},
    {"too_many_fragments_closes_1009", too_many_fragments_closes_1009},
    {"invalid_utf8_closes_1007", invalid_utf8_closes_1007},
    {"undecodable_message_closes_1011", undecodable_message_closes_1011},
    {"protocol_errors_get_a_close_frame", protocol_errors_get_a_close_frame},
    {"client_close_is_answered", client_close_is_answered},
    {"idle_socket_is_closed", idle_socket_is_closed},
    {"stop_closes_sockets_with_1001", stop_closes_sockets_with_1001},
    {"refused_tokens_get_403", refused_tokens_get_403},
    {"broadcast_reaches_every_subscriber_once_encoded",
     broadcast_reaches_every_subscriber_once_encoded},
    {NULL, NULL},
};
