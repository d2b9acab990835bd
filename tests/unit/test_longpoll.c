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
#include "epfx.h"
#include "http.h"
#include "loop.h"
#include "loopfx.h"
#include "phx.h"
#include "rawclient.h"
#include "runner.h"
#include "tcp.h"

typedef struct fx {
    loopfx_t lf;
    phx_endpoint_t ep;
    phx_longpoll_t *lp;
    phx_router_t router;
    int connects;
    char transport[16];
    int joins, terminates;
    char last_reason[16];
} fx_t;

static fx_t *F;

static int test_connect(phx_connect_t *c, void *user)
{
    fx_t *f = user;
    bool deny = epfx_note_connect(c, &f->connects, f->transport, sizeof(f->transport));
    return !deny && phx_connect_set_id(c, "user:1") == 0 ? PHX_CONNECT_OK : PHX_CONNECT_REFUSE;
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

static const phx_channel_handler_t room_handler = {.join = room_join, .terminate = room_terminate};

static void fx_start(fx_t *f, void (*tweak)(phx_config_t *))
{
    memset(f, 0, sizeof(*f));
    F = f;
    epfx_start(&f->lf, &f->ep, tweak, test_connect, f, &room_handler);
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_longpoll_new(&f->lp, &f->ep, err), 0);
    ASSERT_EQ(phx_longpoll_add_route(&f->router, f->lp), 0);
    loopfx_listen_http(&f->lf, &f->router);
}

static void fx_stop(fx_t *f)
{
    phx_longpoll_stop(f->lp);
    ASSERT_EQ(phx_longpoll_session_count(f->lp), 0);
    loopfx_close_conns(&f->lf);
    loopfx_close(&f->lf);
    phx_longpoll_free(f->lp);
    phx_router_free(&f->router);
    phx_endpoint_dispose(&f->ep);
    loopfx_dispose(&f->lf);
}

/* ---- the raw HTTP client ---- */

static void lp_send(rawclient_t *c, const char *method, const char *query, const char *headers,
                    const char *body)
{
    phx_buf_t req = {0};
    phx_buf_printf(&req, "%s /socket/longpoll?%s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s", method, query,
                   headers ? headers : "");
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

typedef struct session {
    char token[512];
    char query[700]; /* vsn=2.0.0&token=<token> */
} session_t;

/* open_session, and the query that names the session. */
static void open_session_query(fx_t *f, rawclient_t *c, session_t *s)
{
    open_session(f, c, s->token, sizeof(s->token));
    snprintf(s->query, sizeof(s->query), "vsn=2.0.0&token=%s", s->token);
}

/* The next response is the JSON answer `want`. */
static void expect_answer(rawclient_t *c, const char *want, bool closing)
{
    resp_t r;
    expect_response(c, &r);
    expect_json(&r, want, closing);
}

/* The next response is a poll's: `messages`, `status` and the token. */
static void expect_poll(rawclient_t *c, const char *messages, int status, const char *token)
{
    resp_t r;
    expect_response(c, &r);
    char want[1024];
    snprintf(want, sizeof(want), "{\"messages\":[%s],\"status\":%d,\"token\":\"%s\"}", messages,
             status, token);
    expect_json(&r, want, false);
}

/* ---- tests ---- */

static void get_without_token_opens_a_session(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    loopfx_client(&f.lf, &c);
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
    loopfx_client(&f.lf, &c);
    session_t s;
    open_session_query(&f, &c, &s);
    lp_send(&c, "POST", s.query, "Content-Type: application/json\r\n", join_lobby);
    expect_answer(&c, "{\"status\":200}", false);
    ASSERT_EQ(f.joins, 1);
    /* The reply waits in the session for the next GET. */
    lp_send(&c, "GET", s.query, NULL, NULL);
    expect_poll(&c, join_reply_str, 200, s.token);
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
    loopfx_client(&f.lf, &poller);
    loopfx_client(&f.lf, &poster);
    session_t s;
    open_session_query(&f, &poller, &s);
    /* Nothing queued: the GET parks. */
    lp_send(&poller, "GET", s.query, NULL, NULL);
    loopfx_run_for(&f.lf, 50);
    ASSERT(!has_any(&poller, NULL));
    ASSERT_EQ(f.lf.loop.lists[PHX_LIST_POLL].count, 1);
    /* The session token may come in the header instead (NDJSON body). */
    char hdr[700];
    snprintf(hdr, sizeof(hdr),
             "x-phoenix-longpoll-token: %s\r\nContent-Type: application/x-ndjson\r\n", s.token);
    lp_send(&poster, "POST", "vsn=2.0.0", hdr, join_lobby);
    expect_answer(&poster, "{\"status\":200}", false);
    expect_poll(&poller, join_reply_str, 200, s.token);
    ASSERT_EQ(f.lf.loop.lists[PHX_LIST_POLL].count, 0);
    rawclient_close(&poller);
    rawclient_close(&poster);
    fx_stop(&f);
}

/* Short, yet long enough for a request to be answered first under
 * valgrind on a loaded machine. */
#define SHORT_WINDOW_MS 400

static void short_window(phx_config_t *cfg)
{
    cfg->longpoll_window_ms = SHORT_WINDOW_MS;
}

static void parked_get_answers_204_after_the_window(void)
{
    fx_t f;
    fx_start(&f, short_window);
    rawclient_t c;
    loopfx_client(&f.lf, &c);
    session_t s;
    open_session_query(&f, &c, &s);
    uint64_t start = uv_now(&f.lf.uv);
    lp_send(&c, "GET", s.query, NULL, NULL);
    resp_t r;
    expect_response(&c, &r);
    ASSERT(uv_now(&f.lf.uv) >= start + SHORT_WINDOW_MS);
    char want[1024];
    snprintf(want, sizeof(want), "{\"messages\":[],\"status\":204,\"token\":\"%s\"}", s.token);
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
    loopfx_client(&f.lf, &c);
    char token[512], query[700];
    open_session(&f, &c, token, sizeof(token));
    /* A tampered token: POST without a body gets 410 and stays open. */
    snprintf(query, sizeof(query), "vsn=2.0.0&token=%sx", token);
    lp_send(&c, "POST", query, NULL, NULL);
    expect_answer(&c, "{\"status\":410}", false);
    /* A GET with it opens a new session with another token. */
    lp_send(&c, "GET", query, NULL, NULL);
    resp_t r;
    expect_response(&c, &r);
    ASSERT(strstr(r.body, "\"status\":410,\"token\":\"") != NULL);
    ASSERT(strstr(r.body, token) == NULL);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 2);
    /* A POST with a body and a garbage token is answered from its head,
     * and the connection closes without the body being read. */
    lp_send(&c, "POST", "vsn=2.0.0&token=SFMyNTY.garbage", NULL, join_lobby);
    expect_answer(&c, "{\"status\":410}", true);
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
    loopfx_client(&f.lf, &c);
    lp_send(&c, "GET", "vsn=2.0.0&deny=1", NULL, NULL);
    expect_answer(&c, "{\"status\":403}", false);
    ASSERT_EQ(f.connects, 1);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 0);
    /* A foreign Origin: the same body, before any connect step. */
    lp_send(&c, "GET", "vsn=2.0.0", "Origin: http://evil.example\r\n", NULL);
    expect_answer(&c, "{\"status\":403}", false);
    ASSERT_EQ(f.connects, 1);
    rawclient_close(&c);
    fx_stop(&f);
}

/* The next response has exactly the head `want` and no body. */
static void expect_empty(rawclient_t *c, const char *want)
{
    resp_t r;
    expect_response(c, &r);
    ASSERT_STR_EQ(r.head, want);
    ASSERT_EQ(r.body_len, 0);
}

static void other_methods_get_400(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c;
    loopfx_client(&f.lf, &c);
    lp_send(&c, "DELETE", "vsn=2.0.0", NULL, NULL);
    expect_empty(&c, "HTTP/1.1 400 Bad Request\r\n"
                     "cache-control: max-age=0, private, must-revalidate\r\n"
                     "content-length: 0\r\n"
                     "access-control-allow-origin: *\r\n"
                     "\r\n");
    /* OPTIONS: the CORS preflight of PROTOCOL 5.5. */
    lp_send(&c, "OPTIONS", "vsn=2.0.0", "Access-Control-Request-Headers: content-type\r\n", NULL);
    resp_t r;
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
    loopfx_client(&f.lf, &a);
    loopfx_client(&f.lf, &b);
    session_t sa, sb;
    open_session_query(&f, &a, &sa);
    open_session_query(&f, &b, &sb);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 2);
    lp_send(&b, "POST", sb.query, "Content-Type: application/json\r\n", join_lobby);
    expect_answer(&b, "{\"status\":200}", false);
    ASSERT_EQ(f.joins, 1);
    /* a parks a poll. */
    lp_send(&a, "GET", sa.query, NULL, NULL);
    loopfx_run_for(&f.lf, 30);
    ASSERT(!has_any(&a, NULL));
    phx_longpoll_stop(f.lp);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 0);
    /* Its channels ended; the parked poll was answered 204. */
    ASSERT_EQ(f.terminates, 1);
    expect_poll(&a, "", 204, sa.token);
    /* The tokens name no session now. */
    lp_send(&b, "POST", sb.query, NULL, NULL);
    expect_answer(&b, "{\"status\":410}", false);
    rawclient_close(&a);
    rawclient_close(&b);
    fx_stop(&f);
}

static void idle_session_ends_after_one_and_a_half_windows(void)
{
    fx_t f;
    fx_start(&f, short_window);
    rawclient_t c;
    loopfx_client(&f.lf, &c);
    char token[512];
    open_session(&f, &c, token, sizeof(token));
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 1);
    loopfx_run_for(&f.lf, 60);
    ASSERT_EQ(phx_longpoll_session_count(f.lp), 1);
    loopfx_run_for(&f.lf, SHORT_WINDOW_MS * 2); /* past 1.5 windows: the deadline hook ends it */
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
