/* Unit tests for the LongPoll transport (transport/longpoll.c) without a
 * server: a phx_loop_t, a phx_endpoint_t with a connect callback of the
 * test's own and one channel route, phx_longpoll_new on that endpoint, a
 * phx_router_t holding only the LongPoll route, and loopback connections
 * adopted with phx_conn_accept into phx_http_conn_init. A raw HTTP client
 * speaks docs/protocol.md section 5. */
#include "longpoll.h"

#include <string.h>
#include <strings.h>

#include <uv.h>

#include "endpoint.h"
#include "http.h"
#include "loop.h"
#include "phx.h"
#include "rawclient.h"
#include "runner.h"
#include "tcp.h"

typedef struct fx {
    uv_loop_t uv;
    phx_config_t cfg;
    phx_loop_t loop;
    phx_endpoint_t ep;
    phx_longpoll_t *lp;
    phx_router_t router;
    uv_tcp_t listener;
    int port;
    bool loop_closed;
    int connects;
    char transport[16];
    int joins, terminates;
    char last_reason[16];
} fx_t;

static fx_t *F;

static int test_connect(phx_connect_t *c, void *user)
{
    fx_t *f = user;
    f->connects++;
    snprintf(f->transport, sizeof(f->transport), "%s", phx_connect_transport(c));
    if (phx_connect_param(c, "deny"))
        return PHX_CONNECT_REFUSE;
    return phx_connect_set_id(c, "user:1") == 0 ? PHX_CONNECT_OK : PHX_CONNECT_REFUSE;
}

static phx_result_t room_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                              phx_reply_t *reply, void *user)
{
    F->joins++;
    return PHX_REPLY_OK;
}

static void room_terminate(phx_channel_t *ch, const char *reason, void *user)
{
    F->terminates++;
    snprintf(F->last_reason, sizeof(F->last_reason), "%s", reason);
}

static const phx_channel_handler_t room_handler = {.join = room_join,
                                                   .terminate = room_terminate};

static int conn_init(phx_conn_t *c, void *arg)
{
    return phx_http_conn_init(c, arg);
}

static void on_connection(uv_stream_t *l, int status)
{
    fx_t *f = l->data;
    ASSERT_EQ(status, 0);
    ASSERT_EQ(phx_conn_accept(&f->loop, l, conn_init, &f->router), 0);
}

static void fx_start(fx_t *f, void (*tweak)(phx_config_t *))
{
    memset(f, 0, sizeof(*f));
    F = f;
    ASSERT_EQ(uv_loop_init(&f->uv), 0);
    phx_config_init(&f->cfg);
    if (tweak)
        tweak(&f->cfg);
    ASSERT_EQ(phx_loop_init(&f->loop, &f->uv, &f->cfg), 0);
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_endpoint_init(&f->ep, &f->loop, &f->cfg, err), 0);
    phx_endpoint_on_connect(&f->ep, test_connect, f);
    ASSERT_EQ(phx_endpoint_add_route(&f->ep, "room:*", &room_handler, NULL), 0);
    ASSERT_EQ(phx_longpoll_new(&f->lp, &f->ep, err), 0);
    ASSERT_EQ(phx_longpoll_add_route(&f->router, f->lp), 0);
    phx_loop_start(&f->loop);
    ASSERT_EQ(uv_tcp_init(&f->uv, &f->listener), 0);
    f->listener.data = f;
    struct sockaddr_in addr;
    ASSERT_EQ(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    ASSERT_EQ(uv_tcp_bind(&f->listener, (struct sockaddr *)&addr, 0), 0);
    ASSERT_EQ(uv_listen((uv_stream_t *)&f->listener, 16, on_connection), 0);
    struct sockaddr_storage bound;
    int len = sizeof(bound);
    ASSERT_EQ(uv_tcp_getsockname(&f->listener, (struct sockaddr *)&bound, &len), 0);
    f->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
}

static void on_loop_closed(void *owner)
{
    ((fx_t *)owner)->loop_closed = true;
}

static void fx_stop(fx_t *f)
{
    phx_longpoll_stop(f->lp);
    ASSERT_EQ(phx_longpoll_session_count(f->lp), 0);
    for (int id = PHX_LIST_HTTP; id < PHX_LIST_COUNT; id++) {
        phx_conn_t *c;
        while ((c = phx_loop_list_first(&f->loop, id)) != NULL)
            phx_conn_close(c, false);
    }
    while (f->loop.nconns > 0)
        uv_run(&f->uv, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&f->listener, NULL);
    f->loop.owner = f;
    f->loop.on_closed = on_loop_closed;
    phx_loop_close(&f->loop);
    uv_run(&f->uv, UV_RUN_DEFAULT);
    ASSERT(f->loop_closed);
    phx_longpoll_free(f->lp);
    phx_router_free(&f->router);
    phx_endpoint_dispose(&f->ep);
    phx_loop_dispose(&f->loop);
    ASSERT_EQ(uv_loop_close(&f->uv), 0);
}

static void on_sleep_timer(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void run_for(fx_t *f, int ms)
{
    bool done = false;
    uv_timer_t t;
    uv_timer_init(&f->uv, &t);
    t.data = &done;
    uv_timer_start(&t, on_sleep_timer, (uint64_t)ms, 0);
    while (!done)
        uv_run(&f->uv, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&f->uv, UV_RUN_NOWAIT);
}

/* ---- the raw HTTP client ---- */

static void lp_send(rawclient_t *c, const char *method, const char *query, const char *headers,
                    const char *body)
{
    phx_buf_t req = {0};
    phx_buf_printf(&req, "%s /socket/longpoll?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method,
                   query, headers ? headers : "");
    if (body)
        phx_buf_printf(&req, "Content-Length: %zu\r\n\r\n%s", strlen(body), body);
    else
        phx_buf_printf(&req, "\r\n");
    rawclient_write(c, req.data, req.len, 0);
    phx_buf_dispose(&req);
}

typedef struct resp {
    int status;
    char head[1024];
    char body[4096];
    size_t body_len;
} resp_t;

/* The length of a complete response at c->pos (head and content-length
 * body), or 0; *head_len set. */
static size_t response_len(rawclient_t *c, size_t *head_len)
{
    const char *p = (const char *)c->in.data + c->pos;
    size_t avail = c->in.len - c->pos;
    for (size_t i = 0; i + 4 <= avail; i++) {
        if (memcmp(p + i, "\r\n\r\n", 4) != 0)
            continue;
        size_t hl = i + 4;
        size_t cl = 0;
        for (size_t j = 0; j + 16 <= hl; j++)
            if (strncasecmp(p + j, "content-length: ", 16) == 0)
                cl = strtoul(p + j + 16, NULL, 10);
        *head_len = hl;
        return avail >= hl + cl ? hl + cl : 0;
    }
    return 0;
}

static bool has_response(rawclient_t *c, void *arg)
{
    size_t hl;
    return response_len(c, &hl) > 0;
}

/* Reads the next complete response; false on timeout/EOF without one. */
static bool read_response(rawclient_t *c, resp_t *r, int ms)
{
    memset(r, 0, sizeof(*r));
    if (!rawclient_wait(c, has_response, NULL, ms) && !has_response(c, NULL))
        return false;
    size_t hl;
    size_t total = response_len(c, &hl);
    const char *p = (const char *)c->in.data + c->pos;
    ASSERT(hl < sizeof(r->head) && total - hl < sizeof(r->body));
    memcpy(r->head, p, hl);
    r->body_len = total - hl;
    memcpy(r->body, p + hl, r->body_len);
    sscanf(r->head, "HTTP/1.1 %d", &r->status);
    c->pos += total;
    return true;
}

static void expect_response(rawclient_t *c, resp_t *r)
{
    ASSERT(read_response(c, r, 3000));
}

/* The JSON answer every LongPoll outcome gets: HTTP 200, exact head. */
static void expect_json(const resp_t *r, const char *want_body, bool closing)
{
    char head[512];
    snprintf(head, sizeof(head),
             "HTTP/1.1 200 OK\r\n"
             "cache-control: no-store\r\n"
             "content-type: application/json; charset=utf-8\r\n"
             "content-length: %zu\r\n"
             "%s"
             "access-control-allow-origin: *\r\n"
             "\r\n",
             strlen(want_body), closing ? "connection: close\r\n" : "");
    ASSERT_STR_EQ(r->head, head);
    ASSERT_MEM_EQ(r->body, r->body_len, want_body, strlen(want_body));
}

/* Opens a session with a GET without a session token; returns its token. */
static void open_session(fx_t *f, rawclient_t *c, char *token, size_t cap)
{
    lp_send(c, "GET", "vsn=2.0.0", "Accept: application/json\r\n", NULL);
    resp_t r;
    expect_response(c, &r);
    static const char prefix[] = "{\"messages\":[],\"status\":410,\"token\":\"";
    ASSERT(r.body_len > sizeof(prefix) + 2);
    ASSERT_MEM_EQ(r.body, sizeof(prefix) - 1, prefix, sizeof(prefix) - 1);
    ASSERT_MEM_EQ(r.body + r.body_len - 2, 2, "\"}", 2);
    size_t tl = r.body_len - (sizeof(prefix) - 1) - 2;
    ASSERT(tl > 0 && tl < cap);
    memcpy(token, r.body + sizeof(prefix) - 1, tl);
    token[tl] = '\0';
    for (size_t i = 0; i < tl; i++) {
        char ch = token[i];
        ASSERT((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
               ch == '-' || ch == '_' || ch == '.');
    }
    char want[1024];
    snprintf(want, sizeof(want), "%s%s\"}", prefix, token);
    expect_json(&r, want, false);
}

static const char join_lobby[] = "[\"1\",\"1\",\"room:lobby\",\"phx_join\",{}]";
/* The join reply as a JSON string inside "messages". */
static const char join_reply_str[] = "\"[\\\"1\\\",\\\"1\\\",\\\"room:lobby\\\",\\\"phx_reply\\\","
                                     "{\\\"response\\\":{},\\\"status\\\":\\\"ok\\\"}]\"";

/* ---- tests ---- */

static void get_without_token_opens_a_session(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    ASSERT_EQ(rawclient_connect(&c, &f.uv, f.port), 0);
    char token[512];
    open_session(&f, &c, token, sizeof(token));
    ASSERT_EQ(f.connects, 1);
    ASSERT_STR_EQ(f.transport, "longpoll");
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 1);
    /* phoenix.js's first GET ends with '&' (a null token): the same. */
    lp_send(&c, "GET", "vsn=2.0.0&", NULL, NULL);
    resp_t r;
    expect_response(&c, &r);
    ASSERT(strstr(r.body, "\"status\":410") != NULL);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 2);
    /* The connection stayed open (keep-alive) for both. */
    ASSERT(!c.is_eof);
    rawclient_close(&c);
    fx_stop(&f);
}

static void post_join_then_get_returns_the_reply(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    ASSERT_EQ(rawclient_connect(&c, &f.uv, f.port), 0);
    char token[512], query[700];
    open_session(&f, &c, token, sizeof(token));
    snprintf(query, sizeof(query), "vsn=2.0.0&token=%s", token);
    lp_send(&c, "POST", query, "Content-Type: application/json\r\n", join_lobby);
    resp_t r;
    expect_response(&c, &r);
    expect_json(&r, "{\"status\":200}", false);
    ASSERT_EQ(f.joins, 1);
    /* The reply waits in the session for the next GET. */
    lp_send(&c, "GET", query, NULL, NULL);
    expect_response(&c, &r);
    char want[1024];
    snprintf(want, sizeof(want), "{\"messages\":[%s],\"status\":200,\"token\":\"%s\"}",
             join_reply_str, token);
    expect_json(&r, want, false);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 1);
    rawclient_close(&c);
    fx_stop(&f);
}

static bool has_any(rawclient_t *c, void *arg)
{
    return c->in.len > c->pos;
}

static void parked_get_is_answered_by_a_post(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t poller, poster;
    ASSERT_EQ(rawclient_connect(&poller, &f.uv, f.port), 0);
    ASSERT_EQ(rawclient_connect(&poster, &f.uv, f.port), 0);
    char token[512], query[700];
    open_session(&f, &poller, token, sizeof(token));
    snprintf(query, sizeof(query), "vsn=2.0.0&token=%s", token);
    /* Nothing queued: the GET parks. */
    lp_send(&poller, "GET", query, NULL, NULL);
    run_for(&f, 50);
    ASSERT(!has_any(&poller, NULL));
    ASSERT_EQ(f.loop.lists[PHX_LIST_POLL].count, 1);
    /* The session token may come in the header instead (NDJSON body). */
    char hdr[700];
    snprintf(hdr, sizeof(hdr),
             "x-phoenix-longpoll-token: %s\r\nContent-Type: application/x-ndjson\r\n", token);
    lp_send(&poster, "POST", "vsn=2.0.0", hdr, join_lobby);
    resp_t r;
    expect_response(&poster, &r);
    expect_json(&r, "{\"status\":200}", false);
    expect_response(&poller, &r);
    char want[1024];
    snprintf(want, sizeof(want), "{\"messages\":[%s],\"status\":200,\"token\":\"%s\"}",
             join_reply_str, token);
    expect_json(&r, want, false);
    ASSERT_EQ(f.loop.lists[PHX_LIST_POLL].count, 0);
    rawclient_close(&poller);
    rawclient_close(&poster);
    fx_stop(&f);
}

static void short_window(phx_config_t *cfg)
{
    cfg->longpoll_window_ms = 100;
}

static void parked_get_answers_204_after_the_window(void)
{
    fx_t f;
    fx_start(&f, short_window);
    rawclient_t c;
    ASSERT_EQ(rawclient_connect(&c, &f.uv, f.port), 0);
    char token[512], query[700];
    open_session(&f, &c, token, sizeof(token));
    snprintf(query, sizeof(query), "vsn=2.0.0&token=%s", token);
    uint64_t start = uv_now(&f.uv);
    lp_send(&c, "GET", query, NULL, NULL);
    resp_t r;
    expect_response(&c, &r);
    ASSERT(uv_now(&f.uv) >= start + 100);
    char want[1024];
    snprintf(want, sizeof(want), "{\"messages\":[],\"status\":204,\"token\":\"%s\"}", token);
    expect_json(&r, want, false);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 1);
    rawclient_close(&c);
    fx_stop(&f);
}

static void bad_tokens_are_no_session(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    ASSERT_EQ(rawclient_connect(&c, &f.uv, f.port), 0);
    char token[512], query[700];
    open_session(&f, &c, token, sizeof(token));
    /* A tampered token: POST without a body gets 410 and stays open. */
    snprintf(query, sizeof(query), "vsn=2.0.0&token=%sx", token);
    lp_send(&c, "POST", query, NULL, NULL);
    resp_t r;
    expect_response(&c, &r);
    expect_json(&r, "{\"status\":410}", false);
    /* A GET with it opens a new session with another token. */
    lp_send(&c, "GET", query, NULL, NULL);
    expect_response(&c, &r);
    ASSERT(strstr(r.body, "\"status\":410,\"token\":\"") != NULL);
    ASSERT(strstr(r.body, token) == NULL);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 2);
    /* A POST with a body and a garbage token is answered from its head,
     * and the connection closes without the body being read. */
    lp_send(&c, "POST", "vsn=2.0.0&token=SFMyNTY.garbage", NULL, join_lobby);
    expect_response(&c, &r);
    expect_json(&r, "{\"status\":410}", true);
    ASSERT(rawclient_wait_eof(&c, 2000));
    ASSERT_EQ(f.joins, 0);
    rawclient_close(&c);
    fx_stop(&f);
}

static void refused_connect_is_403_in_the_body(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    ASSERT_EQ(rawclient_connect(&c, &f.uv, f.port), 0);
    lp_send(&c, "GET", "vsn=2.0.0&deny=1", NULL, NULL);
    resp_t r;
    expect_response(&c, &r);
    expect_json(&r, "{\"status\":403}", false);
    ASSERT_EQ(f.connects, 1);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 0);
    /* A foreign Origin: the same body, before any connect step. */
    lp_send(&c, "GET", "vsn=2.0.0", "Origin: http://evil.example\r\n", NULL);
    expect_response(&c, &r);
    expect_json(&r, "{\"status\":403}", false);
    ASSERT_EQ(f.connects, 1);
    rawclient_close(&c);
    fx_stop(&f);
}

static void other_methods_get_400(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    ASSERT_EQ(rawclient_connect(&c, &f.uv, f.port), 0);
    lp_send(&c, "DELETE", "vsn=2.0.0", NULL, NULL);
    resp_t r;
    expect_response(&c, &r);
    ASSERT_STR_EQ(r.head, "HTTP/1.1 400 Bad Request\r\n"
                          "cache-control: max-age=0, private, must-revalidate\r\n"
                          "content-length: 0\r\n"
                          "access-control-allow-origin: *\r\n"
                          "\r\n");
    ASSERT_EQ(r.body_len, 0);
    /* OPTIONS: the CORS preflight of PROTOCOL 5.5. */
    lp_send(&c, "OPTIONS", "vsn=2.0.0", "Access-Control-Request-Headers: content-type\r\n", NULL);
    expect_response(&c, &r);
    ASSERT_STR_EQ(r.head, "HTTP/1.1 200 OK\r\n"
                          "cache-control: no-store\r\n"
                          "content-length: 0\r\n"
                          "access-control-allow-origin: *\r\n"
                          "access-control-allow-headers: content-type\r\n"
                          "access-control-allow-methods: get, post, options\r\n"
                          "access-control-max-age: 3600\r\n"
                          "\r\n");
    rawclient_close(&c);
    fx_stop(&f);
}

static void stop_ends_every_session(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t a, b;
    ASSERT_EQ(rawclient_connect(&a, &f.uv, f.port), 0);
    ASSERT_EQ(rawclient_connect(&b, &f.uv, f.port), 0);
    char ta[512], tb[512], qa[700], qb[700];
    open_session(&f, &a, ta, sizeof(ta));
    open_session(&f, &b, tb, sizeof(tb));
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 2);
    snprintf(qa, sizeof(qa), "vsn=2.0.0&token=%s", ta);
    snprintf(qb, sizeof(qb), "vsn=2.0.0&token=%s", tb);
    lp_send(&b, "POST", qb, "Content-Type: application/json\r\n", join_lobby);
    resp_t r;
    expect_response(&b, &r);
    expect_json(&r, "{\"status\":200}", false);
    ASSERT_EQ(f.joins, 1);
    /* a parks a poll. */
    lp_send(&a, "GET", qa, NULL, NULL);
    run_for(&f, 30);
    ASSERT(!has_any(&a, NULL));
    phx_longpoll_stop(f.lp);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 0);
    /* Its channels ended; the parked poll was answered 204. */
    ASSERT_EQ(f.terminates, 1);
    expect_response(&a, &r);
    char want[1024];
    snprintf(want, sizeof(want), "{\"messages\":[],\"status\":204,\"token\":\"%s\"}", ta);
    expect_json(&r, want, false);
    /* The tokens name no session now. */
    lp_send(&b, "POST", qb, NULL, NULL);
    expect_response(&b, &r);
    expect_json(&r, "{\"status\":410}", false);
    rawclient_close(&a);
    rawclient_close(&b);
    fx_stop(&f);
}

static void idle_session_ends_after_one_and_a_half_windows(void)
{
    fx_t f;
    fx_start(&f, short_window);
    rawclient_t c;
    ASSERT_EQ(rawclient_connect(&c, &f.uv, f.port), 0);
    char token[512];
    open_session(&f, &c, token, sizeof(token));
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 1);
    run_for(&f, 60);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 1);
    run_for(&f, 200); /* past 150 ms: the deadline hook ends it */
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 0);
    rawclient_close(&c);
    fx_stop(&f);
}

const phx_test_t phx_tests_longpoll[] = {
    {"get_without_token_opens_a_session", get_without_token_opens_a_session},
    {"post_join_then_get_returns_the_reply", post_join_then_get_returns_the_reply},
    {"parked_get_is_answered_by_a_post", parked_get_is_answered_by_a_post},
    {"parked_get_answers_204_after_the_window", parked_get_answers_204_after_the_window},
    {"bad_tokens_are_no_session", bad_tokens_are_no_session},
    {"refused_connect_is_403_in_the_body", refused_connect_is_403_in_the_body},
    {"other_methods_get_400", other_methods_get_400},
    {"stop_ends_every_session", stop_ends_every_session},
    {"idle_session_ends_after_one_and_a_half_windows",
     idle_session_ends_after_one_and_a_half_windows},
    {NULL, NULL},
};
