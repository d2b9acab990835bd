/* Unit tests for policy.c and the user_id_field of the default connect
 * callback: a real phx_server_t with channel rules on the test's own loop,
 * raw WebSocket clients, and the exact V2 frames the handlers answer with.
 * Tokens are built as terms here, so map data with atom keys (what
 * Phoenix.Token.sign(ep, salt, %{user_id: 42}) makes) is covered too. */

#include "etf.h"
#include "phx.h"
#include "policy.h"
#include "rawclient.h"
#include "rules.h"
#include "runner.h"
#include "testtoken.h"

static const char secret[] = "unit-test-secret-key-base-0123456789abcdefghijklmnopqrstuvwxyz01";

static const char rules_text[] = "private:* join=user events=broadcast event:ping=reply;"
                                 "quiet:* events=broadcast_from;"
                                 "ro:* events=refuse;"
                                 "small:* events=reply max-payload-bytes=18;"
                                 "closed:* join=none;"
                                 "duo:* max-subscribers=2";

typedef struct fx {
    uv_loop_t loop;
    phx_server_t *srv;
    phx_rules_t rules;
    int port;
    bool is_stopped;
} fx_t;

/* Starts a server with `rules` (NULL: the built-in policy). */
static void fx_start_rules(fx_t *f, const char *user_id_field, const char *rules)
{
    memset(f, 0, sizeof(*f));
    ASSERT_EQ(uv_loop_init(&f->loop), 0);
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.port = 0;
    cfg.secret_key_base = secret;
    cfg.user_id_field = user_id_field;
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_server_new(&f->srv, &f->loop, &cfg, err), 0);
    if (rules) {
        ASSERT_EQ(phx_rules_parse(&f->rules, rules, err), 0);
        ASSERT_EQ(phx_policy_install_rules(f->srv, &f->rules), 0);
    } else {
        ASSERT_EQ(phx_policy_install(f->srv), 0);
    }
    ASSERT_EQ(phx_server_start(f->srv, err), 0);
    f->port = phx_server_port(f->srv);
}

static void fx_start(fx_t *f, const char *user_id_field)
{
    fx_start_rules(f, user_id_field, rules_text);
}

static fx_t *current;

static void on_stopped(phx_server_t *srv)
{
    current->is_stopped = true;
}

static void fx_stop(fx_t *f)
{
    current = f;
    phx_server_stop(f->srv, 1001, on_stopped);
    while (!f->is_stopped)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_run(&f->loop, UV_RUN_NOWAIT);
    phx_server_free(f->srv);
    phx_rules_dispose(&f->rules);
    ASSERT_EQ(uv_loop_close(&f->loop), 0);
}

/* A token whose data is `data` (taken). */
static void sign(char *out, size_t cap, phx_term_t *data)
{
    phx_max_age_t age = {PHX_MAX_AGE_TOKEN, 0, false};
    ASSERT_EQ(test_token_sign(out, cap, secret, data, age), 0);
}

/* %{key => 42, "name" => "ann"}, the key an atom or a binary. */
static phx_term_t *map_data(const char *key, bool is_atom)
{
    phx_term_pair_t pairs[2];
    if (is_atom)
        ASSERT_EQ(phx_term_new_atom(&pairs[0].key, key, strlen(key)), 0);
    else
        ASSERT_EQ(phx_term_new_binary(&pairs[0].key, key, strlen(key)), 0);
    ASSERT_EQ(phx_term_new_int(&pairs[0].value, 42), 0);
    ASSERT_EQ(phx_term_new_binary(&pairs[1].key, "name", 4), 0);
    ASSERT_EQ(phx_term_new_binary(&pairs[1].value, "ann", 3), 0);
    phx_term_t *m;
    ASSERT_EQ(phx_term_new_map(&m, pairs, 2), 0);
    return m;
}

static phx_term_t *int_data(int64_t v)
{
    phx_term_t *t;
    ASSERT_EQ(phx_term_new_int(&t, v), 0);
    return t;
}

/* Connects with a token for `data` (taken); returns the HTTP status. */
static int open_as(fx_t *f, rawclient_t *c, phx_term_t *data)
{
    char token[600], query[700];
    sign(token, sizeof(token), data);
    snprintf(query, sizeof(query), "token=%s&vsn=2.0.0", token);
    ASSERT_EQ(rawclient_connect(c, &f->loop, f->port), 0);
    phx_buf_t req = {0};
    ws_upgrade_request(&req, query);
    rawclient_write(c, req.data, req.len, 0);
    phx_buf_dispose(&req);
    return rawclient_http_status(c, 2000);
}

static void send_text(rawclient_t *c, const char *text)
{
    size_t len = strlen(text);
    uint8_t *frame = phx_malloc(len + 14);
    size_t n = ws_client_frame(frame, 1, true, text, len);
    rawclient_write(c, frame, n, 0);
    phx_free(frame);
}

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

/* Sends a heartbeat and expects its reply next: nothing else came before. */
static void expect_nothing_more(rawclient_t *c)
{
    send_text(c, "[null,\"hb\",\"phoenix\",\"heartbeat\",{}]");
    expect_text(c, "[null,\"hb\",\"phoenix\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
}

#define OK_JOIN(jr, topic)                                                                         \
    "[\"" jr "\",\"" jr "\",\"" topic "\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]"
#define ERR_JOIN(jr, topic, reason)                                                                \
    "[\"" jr "\",\"" jr "\",\"" topic "\",\"phx_reply\",{\"response\":{\"reason\":\"" reason       \
    "\"},\"status\":\"error\"}]"

static void join_as(rawclient_t *c, const char *jr, const char *topic)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "[\"%s\",\"%s\",\"%s\",\"phx_join\",{}]", jr, jr, topic);
    send_text(c, msg);
}

/* ---- tests ---- */

static void atom_and_binary_user_id_fields(void)
{
    fx_t f;
    fx_start(&f, "user_id");
    for (int atom = 0; atom < 2; atom++) {
        rawclient_t c = {0};
        ASSERT_EQ(open_as(&f, &c, map_data("user_id", atom)), 101);
        join_as(&c, "1", "private:42");
        expect_text(&c, OK_JOIN("1", "private:42"));
        join_as(&c, "2", "private:43");
        expect_text(&c, ERR_JOIN("2", "private:43", "unauthorized"));
        rawclient_close(&c);
    }
    /* Data that is not a map is the user id itself. */
    rawclient_t c = {0};
    ASSERT_EQ(open_as(&f, &c, int_data(42)), 101);
    join_as(&c, "1", "private:42");
    expect_text(&c, OK_JOIN("1", "private:42"));
    rawclient_close(&c);
    /* A map without the field is refused before the upgrade. */
    rawclient_t d = {0};
    ASSERT_EQ(open_as(&f, &d, map_data("id", true)), 403);
    rawclient_close(&d);
    fx_stop(&f);
}

static void without_the_setting_map_data_is_its_json(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c = {0};
    ASSERT_EQ(open_as(&f, &c, map_data("user_id", false)), 101);
    join_as(&c, "1", "private:42");
    expect_text(&c, ERR_JOIN("1", "private:42", "unauthorized"));
    rawclient_close(&c);
    fx_stop(&f);
}

static void event_actions_and_limits(void)
{
    fx_t f;
    fx_start(&f, "user_id");
    rawclient_t a = {0}, b = {0};
    ASSERT_EQ(open_as(&f, &a, int_data(1)), 101);
    ASSERT_EQ(open_as(&f, &b, int_data(2)), 101);
    join_as(&a, "1", "quiet:x");
    expect_text(&a, OK_JOIN("1", "quiet:x"));
    join_as(&b, "1", "quiet:x");
    expect_text(&b, OK_JOIN("1", "quiet:x"));
    /* broadcast_from: b gets it, a only the reply. */
    send_text(&a, "[\"1\",\"2\",\"quiet:x\",\"shout\",{\"v\":1}]");
    expect_text(&a, "[\"1\",\"2\",\"quiet:x\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    expect_text(&b, "[null,null,\"quiet:x\",\"shout\",{\"v\":1}]");
    expect_nothing_more(&a);
    /* refuse */
    join_as(&a, "3", "ro:x");
    expect_text(&a, OK_JOIN("3", "ro:x"));
    send_text(&a, "[\"3\",\"4\",\"ro:x\",\"post\",{}]");
    expect_text(&a, "[\"3\",\"4\",\"ro:x\",\"phx_reply\",{\"response\":{\"reason\":"
                    "\"unauthorized\"},\"status\":\"error\"}]");
    /* reply, and the payload limit (18 bytes of JSON as sent) */
    join_as(&a, "5", "small:x");
    expect_text(&a, OK_JOIN("5", "small:x"));
    send_text(&a, "[\"5\",\"6\",\"small:x\",\"e\",{\"k\":\"0123456789\"}]");
    expect_text(&a, "[\"5\",\"6\",\"small:x\",\"phx_reply\",{\"response\":{\"k\":\"0123456789\"},"
                    "\"status\":\"ok\"}]");
    send_text(&a, "[\"5\",\"7\",\"small:x\",\"e\",{\"k\":\"01234567890\"}]");
    expect_text(&a, "[\"5\",\"7\",\"small:x\",\"phx_reply\",{\"response\":{\"reason\":"
                    "\"payload too large\"},\"status\":\"error\"}]");
    /* join=none and topics without a rule */
    join_as(&a, "8", "closed:x");
    expect_text(&a, ERR_JOIN("8", "closed:x", "unauthorized"));
    join_as(&a, "9", "room:lobby");
    expect_text(&a, "[null,\"9\",\"room:lobby\",\"phx_reply\",{\"response\":{\"reason\":"
                    "\"unmatched topic\"},\"status\":\"error\"}]");
    rawclient_close(&a);
    rawclient_close(&b);
    fx_stop(&f);
}

static void broadcast_and_ping_override(void)
{
    fx_t f;
    fx_start(&f, "user_id");
    rawclient_t a = {0};
    ASSERT_EQ(open_as(&f, &a, int_data(5)), 101);
    join_as(&a, "1", "private:5");
    expect_text(&a, OK_JOIN("1", "private:5"));
    send_text(&a, "[\"1\",\"2\",\"private:5\",\"ping\",{\"p\":true}]");
    expect_text(&a, "[\"1\",\"2\",\"private:5\",\"phx_reply\",{\"response\":{\"p\":true},"
                    "\"status\":\"ok\"}]");
    /* broadcast: the sender gets the event, then the reply */
    send_text(&a, "[\"1\",\"3\",\"private:5\",\"note\",{\"n\":1}]");
    expect_text(&a, "[null,null,\"private:5\",\"note\",{\"n\":1}]");
    expect_text(&a,
                "[\"1\",\"3\",\"private:5\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    /* a payload that is not an object cannot be broadcast */
    send_text(&a, "[\"1\",\"4\",\"private:5\",\"note\",[1]]");
    expect_text(&a, "[\"1\",\"4\",\"private:5\",\"phx_reply\",{\"response\":{\"reason\":"
                    "\"payload must be an object\"},\"status\":\"error\"}]");
    rawclient_close(&a);
    fx_stop(&f);
}

static void max_subscribers_counts_per_topic(void)
{
    fx_t f;
    fx_start(&f, NULL);
    rawclient_t c[3] = {{0}};
    for (int i = 0; i < 3; i++)
        ASSERT_EQ(open_as(&f, &c[i], int_data(i)), 101);
    join_as(&c[0], "1", "duo:x");
    expect_text(&c[0], OK_JOIN("1", "duo:x"));
    /* A duplicate join replaces the old channel: still one subscriber. */
    join_as(&c[0], "2", "duo:x");
    expect_text(&c[0], OK_JOIN("2", "duo:x"));
    expect_text(&c[0], "[\"1\",\"1\",\"duo:x\",\"phx_close\",{}]");
    join_as(&c[1], "1", "duo:x");
    expect_text(&c[1], OK_JOIN("1", "duo:x"));
    join_as(&c[2], "1", "duo:x");
    expect_text(&c[2], ERR_JOIN("1", "duo:x", "too many subscribers"));
    join_as(&c[2], "2", "duo:y");
    expect_text(&c[2], OK_JOIN("2", "duo:y"));
    /* A socket that goes away frees its place. */
    rawclient_close(&c[0]);
    for (int i = 0; i < 20; i++)
        uv_run(&f.loop, UV_RUN_NOWAIT);
    join_as(&c[2], "3", "duo:x");
    expect_text(&c[2], OK_JOIN("3", "duo:x"));
    rawclient_close(&c[1]);
    rawclient_close(&c[2]);
    fx_stop(&f);
}

static void the_built_in_policy_is_unchanged(void)
{
    fx_t f;
    fx_start_rules(&f, NULL, NULL);
    rawclient_t a = {0};
    ASSERT_EQ(open_as(&f, &a, int_data(42)), 101);
    join_as(&a, "1", "user:42");
    expect_text(&a, OK_JOIN("1", "user:42"));
    join_as(&a, "2", "user:43");
    expect_text(&a, ERR_JOIN("2", "user:43", "unauthorized"));
    join_as(&a, "3", "room:lobby");
    expect_text(&a, OK_JOIN("3", "room:lobby"));
    send_text(&a, "[\"3\",\"4\",\"room:lobby\",\"ping\",{\"x\":1}]");
    expect_text(&a, "[\"3\",\"4\",\"room:lobby\",\"phx_reply\",{\"response\":{\"x\":1},"
                    "\"status\":\"ok\"}]");
    join_as(&a, "5", "other:1");
    expect_text(&a, "[null,\"5\",\"other:1\",\"phx_reply\",{\"response\":{\"reason\":"
                    "\"unmatched topic\"},\"status\":\"error\"}]");
    rawclient_close(&a);
    fx_stop(&f);
}

const phx_test_t phx_tests_policy[] = {
    {"atom_and_binary_user_id_fields", atom_and_binary_user_id_fields},
    {"without_the_setting_map_data_is_its_json", without_the_setting_map_data_is_its_json},
    {"event_actions_and_limits", event_actions_and_limits},
    {"broadcast_and_ping_override", broadcast_and_ping_override},
    {"max_subscribers_counts_per_topic", max_subscribers_counts_per_topic},
    {"the_built_in_policy_is_unchanged", the_built_in_policy_is_unchanged},
    {NULL, NULL},
};
