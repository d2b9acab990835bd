/* Unit tests for presence.c: a phx_loop_t and a phx_endpoint_t without a
 * server (the loop is never run, so diffs go out when the test flushes),
 * fake transports recording every V2 frame. Covered: presence_state after
 * the join reply, one coalesced presence_diff per window, a join cancelled
 * by its own leave, several metas per key with distinct URL-safe refs,
 * updates (phx_ref_prev), the bounds, and the reserved event names. */
#include "presence.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "channel.h"
#include "endpoint.h"
#include "loop.h"
#include "phx.h"
#include "pubsub.h"
#include "runner.h"
#include "socket.h"

#define TX_MAX 16

typedef struct tx {
    phx_socket_t *sock;
    char msgs[TX_MAX][1024];
    int n;
    bool is_ending;
} tx_t;

static int tx_send(void *t, phx_rcbuf_t *msg)
{
    tx_t *tx = t;
    size_t len = msg->len - msg->payload_off;
    ASSERT(tx->n < TX_MAX && len < sizeof(tx->msgs[0]));
    memcpy(tx->msgs[tx->n], msg->data + msg->payload_off, len);
    tx->msgs[tx->n++][len] = '\0';
    phx_rcbuf_unref(msg);
    return 0;
}

static void tx_close(void *t, int code)
{
    (void)code;
    tx_t *tx = t;
    tx->is_ending = true;
}

static const phx_transport_ops_t ops = {.name = "fake", .send = tx_send, .close = tx_close};

/* What the join handler does: params {"key":K,"meta":M} track K with M;
 * {"watch":1} only asks for presence_state. */
static int track_rv;

static phx_result_t pjoin(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                          phx_reply_t *reply, void *user)
{
    (void)topic, (void)reply, (void)user;
    char buf[512];
    snprintf(buf, sizeof(buf), "%.*s", (int)params->len, (const char *)params->data);
    char key[64] = "", meta[256] = "{}";
    const char *k = strstr(buf, "\"key\":\"");
    if (k) {
        sscanf(k + 7, "%63[^\"]", key);
        const char *m = strstr(buf, "\"meta\":");
        if (m) {
            snprintf(meta, sizeof(meta), "%s", m + 7);
            meta[strlen(meta) - 1] = '\0'; /* the params' closing brace */
        }
        track_rv = phx_presence_track(ch, key, meta);
    } else {
        phx_presence_sync(ch);
    }
    return PHX_REPLY_OK;
}

static const phx_channel_handler_t handler = {.join = pjoin};

typedef struct fx {
    uv_loop_t uv;
    phx_config_t cfg;
    phx_loop_t loop;
    phx_endpoint_t ep;
} fx_t;

static void fx_init(fx_t *f, int max_metas, int max_keys)
{
    memset(f, 0, sizeof(*f));
    ASSERT_EQ(uv_loop_init(&f->uv), 0);
    phx_config_init(&f->cfg);
    f->cfg.presence_max_metas = max_metas;
    f->cfg.presence_max_keys = max_keys;
    f->cfg.presence_max_meta_bytes = 64;
    ASSERT_EQ(phx_loop_init(&f->loop, &f->uv, &f->cfg), 0);
    char err[PHX_ERR_LEN] = "";
    ASSERT_EQ(phx_endpoint_init(&f->ep, &f->loop, &f->cfg, err), 0);
    ASSERT_EQ(phx_endpoint_add_route(&f->ep, "room:*", &handler, NULL), 0);
}

static void fx_done(fx_t *f)
{
    ASSERT_EQ(phx_presence_count(f->ep.presence), 0);
    phx_presence_flush(f->ep.presence);
    ASSERT_EQ(phx_presence_topic_count(f->ep.presence), 0);
    phx_endpoint_dispose(&f->ep);
    phx_loop_dispose(&f->loop);
    ASSERT_EQ(uv_loop_close(&f->uv), 0);
}

static void connect_tx(fx_t *f, tx_t *tx)
{
    memset(tx, 0, sizeof(*tx));
    static const char uri[] = "/socket/websocket", q[] = "vsn=2.0.0";
    phx_connect_t ci;
    phx_connect_init(&ci, &f->ep, &ops, "127.0.0.1", 1, uri, sizeof(uri) - 1, q, sizeof(q) - 1,
                     NULL, NULL);
    phx_endpoint_on_connect(&f->ep, NULL, NULL);
    ci.fmt = PHX_FMT_V2_JSON;
    ASSERT_EQ(phx_socket_new(&tx->sock, &ci, tx), 0);
    phx_connect_dispose(&ci);
}

static void feed(tx_t *tx, const char *text)
{
    char buf[1024];
    size_t len = strlen(text);
    memcpy(buf, text, len);
    phx_socket_handle(tx->sock, false, (uint8_t *)buf, len);
}

static void gone(tx_t *tx)
{
    phx_socket_closed(tx->sock);
    tx->sock = NULL;
}

/* The phx_ref of the n-th meta "phx_ref":"..." in `s`. */
static void ref_at(const char *s, int n, char out[32])
{
    const char *p = s;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, "\"phx_ref\":\"");
        ASSERT(p != NULL);
        p += 11;
    }
    size_t len = strcspn(p, "\"");
    ASSERT(len > 0 && len < 32);
    memcpy(out, p, len);
    out[len] = '\0';
    for (size_t i = 0; i < len; i++)
        ASSERT(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", out[i]));
}

static void state_after_join_then_one_diff(void)
{
    fx_t f;
    fx_init(&f, 32, 100);
    tx_t a, b;
    connect_tx(&f, &a);
    connect_tx(&f, &b);
    feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{\"key\":\"u1\",\"meta\":{\"x\":1}}]");
    ASSERT_EQ(a.n, 2);
    ASSERT_STR_EQ(a.msgs[0],
                  "[\"1\",\"1\",\"room:1\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    char r1[32];
    ref_at(a.msgs[1], 0, r1);
    char want[512];
    snprintf(want, sizeof(want),
             "[\"1\",null,\"room:1\",\"presence_state\",{\"u1\":{\"metas\":[{\"x\":1,\"phx_ref\":"
             "\"%s\"}]}}]",
             r1);
    ASSERT_STR_EQ(a.msgs[1], want);
    feed(&b, "[\"2\",\"2\",\"room:1\",\"phx_join\",{\"key\":\"u2\",\"meta\":{}}]");
    char r2[32];
    ref_at(b.msgs[1], 1, r2);
    ASSERT_EQ(a.n, 2); /* nothing before the window closes */
    phx_presence_flush(f.ep.presence);
    ASSERT_EQ(a.n, 3);
    snprintf(want, sizeof(want),
             "[null,null,\"room:1\",\"presence_diff\",{\"joins\":{\"u1\":{\"metas\":[{\"x\":1,"
             "\"phx_ref\":\"%s\"}]},\"u2\":{\"metas\":[{\"phx_ref\":\"%s\"}]}},\"leaves\":{}}]",
             r1, r2);
    ASSERT_STR_EQ(a.msgs[2], want);
    ASSERT_STR_EQ(b.msgs[2], want);
    ASSERT_EQ(f.loop.stats.presence_diffs, 1);
    ASSERT_EQ(f.loop.stats.presences, 2);
    /* A leave: one diff with the meta in leaves. */
    feed(&b, "[\"2\",\"3\",\"room:1\",\"phx_leave\",{}]");
    phx_presence_flush(f.ep.presence);
    snprintf(
        want, sizeof(want),
        "[null,null,\"room:1\",\"presence_diff\",{\"joins\":{},\"leaves\":{\"u2\":{\"metas\":[{"
        "\"phx_ref\":\"%s\"}]}}}]",
        r2);
    ASSERT_STR_EQ(a.msgs[a.n - 1], want);
    gone(&a);
    gone(&b);
    fx_done(&f);
}

static void join_and_own_leave_cancel(void)
{
    fx_t f;
    fx_init(&f, 32, 100);
    tx_t w, c;
    connect_tx(&f, &w);
    connect_tx(&f, &c);
    feed(&w, "[\"1\",\"1\",\"room:2\",\"phx_join\",{\"watch\":1}]");
    ASSERT_EQ(w.n, 2);
    ASSERT_STR_EQ(w.msgs[1], "[\"1\",null,\"room:2\",\"presence_state\",{}]");
    /* c joins (and sees itself in its state), then is gone in the window. */
    feed(&c, "[\"1\",\"1\",\"room:2\",\"phx_join\",{\"key\":\"c\",\"meta\":{}}]");
    gone(&c);
    phx_presence_flush(f.ep.presence);
    ASSERT_EQ(w.n, 2); /* nothing at all */
    ASSERT_EQ(f.loop.stats.presence_diffs, 0);
    /* Shown to another channel first, it no longer cancels: both go. */
    connect_tx(&f, &c);
    feed(&c, "[\"1\",\"1\",\"room:2\",\"phx_join\",{\"key\":\"c\",\"meta\":{}}]");
    tx_t late;
    connect_tx(&f, &late);
    feed(&late, "[\"1\",\"1\",\"room:2\",\"phx_join\",{\"watch\":1}]");
    ASSERT(strstr(late.msgs[1], "\"c\":{\"metas\"") != NULL);
    gone(&c);
    phx_presence_flush(f.ep.presence);
    ASSERT_EQ(w.n, 3);
    ASSERT(strstr(w.msgs[2], "{\"joins\":{\"c\":") != NULL);
    ASSERT(strstr(w.msgs[2], "\"leaves\":{\"c\":") != NULL);
    gone(&w);
    gone(&late);
    fx_done(&f);
}

static void several_metas_per_key(void)
{
    fx_t f;
    fx_init(&f, 32, 100);
    tx_t t[3];
    for (int i = 0; i < 3; i++) {
        connect_tx(&f, &t[i]);
        feed(&t[i], "[\"1\",\"1\",\"room:3\",\"phx_join\",{\"key\":\"same\",\"meta\":{}}]");
    }
    ASSERT_EQ(phx_presence_key_metas(f.ep.presence, "room:3", "same"), 3);
    char r[3][32];
    for (int i = 0; i < 3; i++)
        ref_at(t[2].msgs[1], i, r[i]);
    ASSERT(strcmp(r[0], r[1]) != 0 && strcmp(r[1], r[2]) != 0 && strcmp(r[0], r[2]) != 0);
    phx_presence_flush(f.ep.presence);
    /* One diff, the key once with its three metas. */
    ASSERT(strstr(t[0].msgs[t[0].n - 1], "{\"joins\":{\"same\":{\"metas\":[{") != NULL);
    gone(&t[1]);
    ASSERT_EQ(phx_presence_key_metas(f.ep.presence, "room:3", "same"), 2);
    gone(&t[0]);
    gone(&t[2]);
    ASSERT_EQ(phx_presence_key_metas(f.ep.presence, "room:3", "same"), 0);
    fx_done(&f);
}

/* Tracking again under the same key from handle-less code: an update. */
static void update_has_phx_ref_prev(void)
{
    fx_t f;
    fx_init(&f, 32, 100);
    tx_t a;
    connect_tx(&f, &a);
    feed(&a, "[\"1\",\"1\",\"room:4\",\"phx_join\",{\"key\":\"u\",\"meta\":{\"s\":\"away\"}}]");
    phx_presence_flush(f.ep.presence);
    char r1[32], r2[32];
    ref_at(a.msgs[1], 0, r1);
    phx_channel_t *ch = a.sock->channels;
    ASSERT_EQ(phx_presence_track(ch, "u", "{\"s\":\"busy\"}"), 0);
    phx_presence_flush(f.ep.presence);
    const char *d = a.msgs[a.n - 1];
    ref_at(d, 0, r2);
    char want[512];
    snprintf(
        want, sizeof(want),
        "[null,null,\"room:4\",\"presence_diff\",{\"joins\":{\"u\":{\"metas\":[{\"s\":\"busy\","
        "\"phx_ref\":\"%s\",\"phx_ref_prev\":\"%s\"}]}},\"leaves\":{\"u\":{\"metas\":[{\"s\":"
        "\"away\",\"phx_ref\":\"%s\"}]}}}]",
        r2, r1, r1);
    ASSERT_STR_EQ(d, want);
    ASSERT_EQ(phx_presence_key_metas(f.ep.presence, "room:4", "u"), 1);
    ASSERT_EQ(phx_presence_untrack(ch), 0);
    ASSERT_EQ(phx_presence_untrack(ch), PHX_ERR_NOTFOUND);
    gone(&a);
    fx_done(&f);
}

static void bounds_are_refused(void)
{
    fx_t f;
    fx_init(&f, 1, 2);
    tx_t t[4];
    connect_tx(&f, &t[0]);
    feed(&t[0], "[\"1\",\"1\",\"room:5\",\"phx_join\",{\"key\":\"a\",\"meta\":{}}]");
    ASSERT_EQ(track_rv, 0);
    connect_tx(&f, &t[1]);
    feed(&t[1], "[\"1\",\"1\",\"room:5\",\"phx_join\",{\"key\":\"a\",\"meta\":{}}]");
    ASSERT_EQ(track_rv, PHX_ERR_LIMIT);                        /* metas per key */
    ASSERT(strstr(t[1].msgs[0], "\"status\":\"ok\"") != NULL); /* the join itself is fine */
    connect_tx(&f, &t[2]);
    feed(&t[2], "[\"1\",\"1\",\"room:5\",\"phx_join\",{\"key\":\"b\",\"meta\":{}}]");
    ASSERT_EQ(track_rv, 0);
    connect_tx(&f, &t[3]);
    feed(&t[3], "[\"1\",\"1\",\"room:5\",\"phx_join\",{\"key\":\"c\",\"meta\":{}}]");
    ASSERT_EQ(track_rv, PHX_ERR_LIMIT); /* keys per topic */
    phx_channel_t *ch = t[3].sock->channels;
    ASSERT_EQ(phx_presence_track(ch, "b",
                                 "{\"big\":\"0123456789012345678901234567890123456789"
                                 "0123456789012345678901234567890123456789\"}"),
              PHX_ERR_LIMIT);
    ASSERT_EQ(phx_presence_track(ch, "b", "[1]"), PHX_ERR_INVALID);
    ASSERT_EQ(phx_presence_track(ch, "b", "{\"phx_ref\":\"x\"}"), PHX_ERR_INVALID);
    ASSERT_EQ(phx_presence_track(ch, "", "{}"), PHX_ERR_INVALID);
    ASSERT_EQ(phx_presence_track(ch, "\xff", "{}"), PHX_ERR_INVALID);
    ASSERT_EQ(f.loop.stats.presence_refusals, 7);
    ASSERT_EQ(phx_presence_count(f.ep.presence), 2);
    for (int i = 0; i < 4; i++)
        gone(&t[i]);
    fx_done(&f);
}

/* A channel rule's presence-max=N: phx_presence_track_max caps the keys
 * of the topic as well as cfg.presence_max_keys, the smaller winning; a
 * key already there still takes another meta. */
static void per_call_key_cap(void)
{
    fx_t f;
    fx_init(&f, 0, 3);
    tx_t t[5];
    connect_tx(&f, &t[0]);
    feed(&t[0], "[\"1\",\"1\",\"room:6\",\"phx_join\",{\"key\":\"a\",\"meta\":{}}]");
    ASSERT_EQ(track_rv, 0);
    connect_tx(&f, &t[1]);
    feed(&t[1], "[\"1\",\"1\",\"room:6\",\"phx_join\",{\"key\":\"b\",\"meta\":{}}]");
    ASSERT_EQ(track_rv, 0);
    phx_channel_t *ch[5];
    for (int i = 2; i < 5; i++) {
        connect_tx(&f, &t[i]);
        feed(&t[i], "[\"1\",\"1\",\"room:6\",\"phx_join\",{\"watch\":1}]");
        ch[i] = t[i].sock->channels;
        ASSERT(ch[i] != NULL);
    }
    const char *why = NULL;
    ASSERT_EQ(phx_presence_track_max(ch[2], "c", "{}", 2, &why), PHX_ERR_LIMIT);
    ASSERT_STR_EQ(why, "too many presences on this topic");
    ASSERT_EQ(phx_presence_track_max(ch[2], "a", "{}", 2, &why), 0); /* a known key */
    ASSERT(why == NULL);
    ASSERT_EQ(phx_presence_track_max(ch[3], "c", "{}", 5, &why), 0);
    ASSERT_EQ(phx_presence_track_max(ch[4], "d", "{}", 5, &why), PHX_ERR_LIMIT); /* cfg's 3 */
    ASSERT_STR_EQ(why, "too many presences on this topic");
    ASSERT_EQ(phx_presence_track_max(ch[4], "d", "{}", 0, &why), PHX_ERR_LIMIT);
    ASSERT_EQ(f.loop.stats.presence_refusals, 3);
    ASSERT_EQ(phx_presence_count(f.ep.presence), 4);
    for (int i = 0; i < 5; i++)
        gone(&t[i]);
    fx_done(&f);
}

static void reserved_events(void)
{
    const char *yes[] = {"phx_join",  "phx_leave",      "phx_reply",
                         "phx_error", "phx_close",      "phx_token_expiring",
                         "phx_",      "presence_state", "presence_diff"};
    const char *no[] = {"phx",        "presence",     "presence_diffs", "shout",
                        "disconnect", "access_token", "PHX_ERROR",      "xphx_error"};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ASSERT(phx_event_is_reserved(yes[i], strlen(yes[i])));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ASSERT(!phx_event_is_reserved(no[i], strlen(no[i])));
}

const phx_test_t phx_tests_presence[] = {
    {"state_after_join_then_one_diff", state_after_join_then_one_diff},
    {"join_and_own_leave_cancel", join_and_own_leave_cancel},
    {"several_metas_per_key", several_metas_per_key},
    {"update_has_phx_ref_prev", update_has_phx_ref_prev},
    {"bounds_are_refused", bounds_are_refused},
    {"per_call_key_cap", per_call_key_cap},
    {"reserved_events", reserved_events},
    {NULL, NULL},
};
