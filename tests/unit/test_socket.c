/* Unit tests for the Phoenix socket and channel layers on their own
 * (socket.c, channel.c, endpoint.c): a phx_loop_t and a phx_endpoint_t, no
 * server, no TCP, no HTTP. A fake transport records every encoded message
 * and every close code; like longpoll.c it ends the socket
 * (phx_socket_closed) at once when closed from outside a client message,
 * and once the message is handled when closed from inside one. */
#include "socket.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "channel.h"
#include "endpoint.h"
#include "loop.h"
#include "phx.h"
#include "pubsub.h"
#include "runner.h"

/* ---- the fake transport ---- */

#define TX_MAX_MSGS 32

typedef struct fake_tx {
    phx_socket_t *sock; /* NULL once phx_socket_closed ran */
    char msgs[TX_MAX_MSGS][512];
    bool binary[TX_MAX_MSGS];
    int nmsgs;
    int ncloses;    /* close() calls */
    int close_code; /* the first close code */
    int dropped;    /* messages sent after close */
    int in_dispatch;
    int limit; /* > 0: the message after `limit` overflows (slow consumer) */
    bool is_ending;
} fake_tx_t;

static void tx_close(void *t, int code);

static int tx_send(void *t, phx_rcbuf_t *msg)
{
    fake_tx_t *tx = t;
    if (tx->is_ending) {
        /* A real transport drops output once it is closing. */
        tx->dropped++;
        phx_rcbuf_unref(msg);
        return PHX_ERR_CLOSED;
    }
    if (tx->limit > 0 && tx->nmsgs >= tx->limit) {
        /* Over its queue limit: closed with 1008, as ws.c and longpoll.c
         * do (longpoll ends the session at once outside a message). */
        phx_rcbuf_unref(msg);
        tx_close(tx, 1008);
        return PHX_ERR_LIMIT;
    }
    ASSERT(tx->nmsgs < TX_MAX_MSGS);
    size_t len = msg->len - msg->payload_off;
    ASSERT(len < sizeof(tx->msgs[0]));
    memcpy(tx->msgs[tx->nmsgs], msg->data + msg->payload_off, len);
    tx->msgs[tx->nmsgs][len] = '\0';
    tx->binary[tx->nmsgs] = msg->is_binary;
    tx->nmsgs++;
    phx_rcbuf_unref(msg);
    return 0;
}

static void tx_finish(fake_tx_t *tx)
{
    phx_socket_t *s = tx->sock;
    tx->sock = NULL;
    if (s)
        phx_socket_closed(s);
}

static void tx_close(void *t, int code)
{
    fake_tx_t *tx = t;
    tx->ncloses++;
    if (tx->is_ending)
        return;
    tx->close_code = code;
    tx->is_ending = true;
    if (tx->in_dispatch == 0)
        tx_finish(tx);
}

static const phx_transport_ops_t fake_ops = {
    .name = "fake",
    .send = tx_send,
    .close = tx_close,
    .supports_binary = true,
};

/* One client message (copied: the socket may modify it in place). */
static void tx_feed(fake_tx_t *tx, const char *text)
{
    ASSERT(tx->sock != NULL);
    size_t len = strlen(text);
    char buf[1024];
    ASSERT(len < sizeof(buf));
    memcpy(buf, text, len);
    tx->in_dispatch++;
    phx_socket_handle(tx->sock, false, (uint8_t *)buf, len);
    tx->in_dispatch--;
    if (tx->is_ending)
        tx_finish(tx);
}

/* The peer went away (TCP closed): what ws_on_close does. */
static void tx_peer_gone(fake_tx_t *tx)
{
    tx->is_ending = true;
    tx_finish(tx);
}

static const char *tx_msg(const fake_tx_t *tx, int i)
{
    ASSERT(i < tx->nmsgs);
    return tx->msgs[i];
}

/* ---- handlers ---- */

typedef struct rec {
    int joins;
    int terminates;
    char reasons[256]; /* terminate reasons, comma-separated */
    char last_topic[64];
    char last_event[64];
    char last_params[128];
    char user_id[32];    /* the socket's user_id assign seen in join */
    int push_in_join;    /* phx_channel_push's answer inside join */
    int bcast_rv;        /* the last broadcast's answer */
    size_t subs_in_join; /* phx_channel_subscriber_count inside join */
} rec_t;

static rec_t rec;

static void rec_reset(void)
{
    memset(&rec, 0, sizeof(rec));
    rec.push_in_join = 1;
}

static void copy_payload(char *dst, size_t cap, const phx_payload_t *p)
{
    size_t n = p && p->len < cap - 1 ? p->len : (p ? cap - 1 : 0);
    if (n)
        memcpy(dst, p->data, n);
    dst[n] = '\0';
}

static phx_result_t room_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                              phx_reply_t *reply, void *user)
{
    (void)user;
    rec.joins++;
    snprintf(rec.last_topic, sizeof(rec.last_topic), "%s", topic);
    copy_payload(rec.last_params, sizeof(rec.last_params), params);
    const char *uid = phx_socket_assign(phx_channel_socket(ch), "user_id");
    snprintf(rec.user_id, sizeof(rec.user_id), "%s", uid ? uid : "");
    rec.push_in_join = phx_channel_push(ch, "early", NULL);
    rec.subs_in_join = phx_channel_subscriber_count(ch);
    if (strcmp(topic, "room:secret") == 0) {
        static const char why[] = "{\"reason\":\"unauthorized\"}";
        phx_payload_t p = {(const uint8_t *)why, sizeof(why) - 1, false};
        phx_reply_set(reply, &p);
        return PHX_REPLY_ERROR;
    }
    if (strcmp(topic, "room:crash") == 0)
        return PHX_CRASH;
    if (strstr(rec.last_params, "deny")) {
        static const char why[] = "{\"reason\":\"denied\"}";
        phx_payload_t p = {(const uint8_t *)why, sizeof(why) - 1, false};
        phx_reply_set(reply, &p);
        return PHX_REPLY_ERROR;
    }
    if (strstr(rec.last_params, "greet")) {
        static const char hello[] = "{\"hello\":\"world\"}";
        phx_payload_t p = {(const uint8_t *)hello, sizeof(hello) - 1, false};
        phx_reply_set(reply, &p);
    }
    return PHX_REPLY_OK;
}

static phx_result_t room_in(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                            phx_reply_t *reply, void *user)
{
    (void)user;
    snprintf(rec.last_event, sizeof(rec.last_event), "%s", event);
    if (strcmp(event, "ping") == 0) {
        phx_reply_set(reply, payload);
        return PHX_REPLY_OK;
    }
    if (strcmp(event, "fail") == 0) {
        static const char why[] = "{\"reason\":\"nope\"}";
        phx_payload_t p = {(const uint8_t *)why, sizeof(why) - 1, false};
        phx_reply_set(reply, &p);
        return PHX_REPLY_ERROR;
    }
    if (strcmp(event, "shout") == 0) {
        rec.bcast_rv = phx_channel_broadcast(ch, "shout", payload);
        return PHX_NOREPLY;
    }
    if (strcmp(event, "shout_from") == 0) {
        rec.bcast_rv = phx_channel_broadcast_from(ch, "shout", payload);
        return PHX_NOREPLY;
    }
    if (strncmp(event, "relay:", 6) == 0) {
        /* A careless embedder relaying whatever name the client chose. */
        rec.bcast_rv = phx_channel_broadcast(ch, event + 6, payload);
        return PHX_NOREPLY;
    }
    if (strcmp(event, "disconnect") == 0) {
        /* A client event named "disconnect", broadcast on the channel. */
        rec.bcast_rv = phx_channel_broadcast(ch, "disconnect", payload);
        return PHX_NOREPLY;
    }
    if (strcmp(event, "push") == 0) {
        phx_channel_push(ch, "pushed", payload);
        return PHX_NOREPLY;
    }
    if (strcmp(event, "stop") == 0) {
        static const char bye[] = "{\"bye\":true}";
        phx_payload_t p = {(const uint8_t *)bye, sizeof(bye) - 1, false};
        phx_reply_set(reply, &p);
        return PHX_STOP;
    }
    return PHX_CRASH;
}

static void room_terminate(phx_channel_t *ch, const char *reason, void *user)
{
    (void)ch;
    (void)user;
    rec.terminates++;
    size_t n = strlen(rec.reasons);
    snprintf(rec.reasons + n, sizeof(rec.reasons) - n, "%s%s", n ? "," : "", reason);
}

static const phx_channel_handler_t room_handler = {
    .join = room_join,
    .handle_in = room_in,
    .terminate = room_terminate,
};

/* No handle_in, no terminate. */
static const phx_channel_handler_t bare_handler = {.join = room_join};

/* The connect callback: refuse=1 refuses; user=N sets the user_id assign
 * and the id users_socket:N; id=X sets the id X as is. */
static int connect_calls;

static int test_connect(phx_connect_t *c, void *user)
{
    (void)user;
    connect_calls++;
    if (phx_connect_param(c, "refuse"))
        return PHX_CONNECT_REFUSE;
    const char *uid = phx_connect_param(c, "user");
    if (uid) {
        char id[64];
        snprintf(id, sizeof(id), PHX_SOCKET_ID_PREFIX "%s", uid);
        if (phx_connect_assign(c, "user_id", uid) != 0 || phx_connect_set_id(c, id) != 0)
            return PHX_CONNECT_REFUSE;
    }
    const char *id = phx_connect_param(c, "id");
    if (id && phx_connect_set_id(c, id) != 0)
        return PHX_CONNECT_REFUSE;
    return PHX_CONNECT_OK;
}

/* ---- fixture ---- */

typedef struct fx {
    uv_loop_t uv;
    phx_config_t cfg;
    phx_loop_t loop;
    phx_endpoint_t ep;
} fx_t;

static void fx_init_cfg(fx_t *f, int max_channels)
{
    memset(f, 0, sizeof(*f));
    rec_reset();
    connect_calls = 0;
    ASSERT_EQ(uv_loop_init(&f->uv), 0);
    phx_config_init(&f->cfg);
    if (max_channels > 0)
        f->cfg.max_channels = max_channels;
    ASSERT_EQ(phx_loop_init(&f->loop, &f->uv, &f->cfg), 0);
    char err[PHX_ERR_LEN] = "";
    ASSERT_EQ(phx_endpoint_init(&f->ep, &f->loop, &f->cfg, err), 0);
    phx_endpoint_on_connect(&f->ep, test_connect, NULL);
    ASSERT_EQ(phx_endpoint_add_route(&f->ep, "room:*", &room_handler, NULL), 0);
    ASSERT_EQ(phx_endpoint_add_route(&f->ep, "bare:*", &bare_handler, NULL), 0);
    /* Routes that match socket-id topics: they must never be used. */
    ASSERT_EQ(phx_endpoint_add_route(&f->ep, "users_socket:*", &room_handler, NULL), 0);
    ASSERT_EQ(phx_endpoint_add_route(&f->ep, "custom:*", &room_handler, NULL), 0);
}

static void fx_init(fx_t *f)
{
    fx_init_cfg(f, 0);
}

static void fx_done(fx_t *f)
{
    ASSERT_EQ(phx_pubsub_topic_count(f->ep.pubsub), 0);
    ASSERT_EQ(f->loop.stats.joined_channels, 0);
    phx_endpoint_dispose(&f->ep);
    phx_loop_dispose(&f->loop);
    ASSERT_EQ(uv_loop_close(&f->uv), 0);
}

/* Runs the connect step; 0 and a socket in tx->sock, or the HTTP status. */
static int tx_connect(fx_t *f, fake_tx_t *tx, const char *query)
{
    memset(tx, 0, sizeof(*tx));
    static const char uri[] = "/socket/websocket";
    phx_connect_t ci;
    phx_connect_init(&ci, &f->ep, &fake_ops, "127.0.0.1", 40000, uri, sizeof(uri) - 1, query,
                     strlen(query), NULL, NULL);
    int status = phx_endpoint_connect(&f->ep, &ci);
    if (status != 0)
        return status; /* ci disposed by the endpoint */
    int rv = phx_socket_new(&tx->sock, &ci, tx);
    phx_connect_dispose(&ci);
    ASSERT_EQ(rv, 0);
    return 0;
}

static void tx_connect_ok(fx_t *f, fake_tx_t *tx, const char *query)
{
    ASSERT_EQ(tx_connect(f, tx, query), 0);
    ASSERT(tx->sock != NULL);
}

static size_t subs(fx_t *f, const char *topic)
{
    return phx_pubsub_subscriber_count(f->ep.pubsub, topic, strlen(topic));
}

/* ---- tests ---- */

static void heartbeat_is_answered(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_feed(&a, "[null,\"1\",\"phoenix\",\"heartbeat\",{}]");
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT(!a.binary[0]);
    ASSERT_STR_EQ(tx_msg(&a, 0), "[null,\"1\",\"phoenix\",\"phx_reply\","
                                 "{\"response\":{},\"status\":\"ok\"}]");
    /* A join_ref on a heartbeat is not echoed: heartbeats have none. */
    tx_feed(&a, "[\"7\",\"2\",\"phoenix\",\"heartbeat\",{}]");
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&a, 1), "[null,\"2\",\"phoenix\",\"phx_reply\","
                                 "{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_EQ(a.ncloses, 0);
    ASSERT_EQ(rec.joins, 0);
    tx_peer_gone(&a);
    fx_done(&f);
}

static void join_ok_replies_and_subscribes(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=42");
    ASSERT_STR_EQ(phx_socket_id(a.sock), "users_socket:42");
    ASSERT_STR_EQ(phx_socket_assign(a.sock, "user_id"), "42");
    ASSERT(phx_socket_assign(a.sock, "other") == NULL);
    tx_feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{\"k\":\"v\"}]");
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_STR_EQ(tx_msg(&a, 0),
                  "[\"1\",\"1\",\"room:1\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_EQ(rec.joins, 1);
    ASSERT_STR_EQ(rec.last_topic, "room:1");
    ASSERT_STR_EQ(rec.last_params, "{\"k\":\"v\"}");
    ASSERT_STR_EQ(rec.user_id, "42");
    /* No push before the join reply; the joining channel is not counted. */
    ASSERT_EQ(rec.push_in_join, PHX_ERR_STATE);
    ASSERT_EQ(rec.subs_in_join, 0);
    ASSERT_EQ(subs(&f, "room:1"), 1);
    ASSERT_EQ(a.sock->nchannels, 1);
    ASSERT_EQ(f.loop.stats.joined_channels, 1);

    /* A reply set by the join handler is the response. */
    tx_feed(&a, "[\"2\",\"2\",\"room:2\",\"phx_join\",{\"greet\":true}]");
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&a, 1), "[\"2\",\"2\",\"room:2\",\"phx_reply\","
                                 "{\"response\":{\"hello\":\"world\"},\"status\":\"ok\"}]");
    ASSERT_EQ(subs(&f, "room:2"), 1);
    ASSERT_EQ(phx_pubsub_topic_count(f.ep.pubsub), 3); /* two rooms and the id */

    /* A push goes out with the channel's join_ref and a null ref. */
    tx_feed(&a, "[\"1\",\"3\",\"room:1\",\"push\",{\"n\":1}]");
    ASSERT_EQ(a.nmsgs, 3);
    ASSERT_STR_EQ(tx_msg(&a, 2), "[\"1\",null,\"room:1\",\"pushed\",{\"n\":1}]");

    /* A join without join_ref (V1 style): the channel's own ref is the
     * join's ref; the join reply keeps the null. */
    tx_feed(&a, "[null,\"5\",\"room:3\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 4);
    ASSERT_STR_EQ(tx_msg(&a, 3),
                  "[null,\"5\",\"room:3\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    tx_feed(&a, "[null,\"6\",\"room:3\",\"push\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, 4), "[\"5\",null,\"room:3\",\"pushed\",{}]");
    tx_feed(&a, "[null,\"7\",\"room:3\",\"phx_leave\",{}]");
    ASSERT_EQ(a.nmsgs, 7);
    ASSERT_STR_EQ(tx_msg(&a, 5),
                  "[\"5\",\"7\",\"room:3\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 6), "[null,null,\"room:3\",\"phx_close\",{}]");

    tx_peer_gone(&a);
    ASSERT_EQ(rec.terminates, 3);
    ASSERT_STR_EQ(rec.reasons, "left,closed,closed");
    fx_done(&f);
}

static void join_of_unmatched_topic_is_an_error(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_feed(&a, "[\"1\",\"1\",\"nope:1\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_STR_EQ(tx_msg(&a, 0), "[null,\"1\",\"nope:1\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"unmatched topic\"},"
                                 "\"status\":\"error\"}]");
    /* A non-string topic matches nothing and is echoed. */
    tx_feed(&a, "[\"2\",\"2\",42,\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&a, 1), "[null,\"2\",42,\"phx_reply\","
                                 "{\"response\":{\"reason\":\"unmatched topic\"},"
                                 "\"status\":\"error\"}]");
    /* An event on a topic not joined: the same error, join_ref null. */
    tx_feed(&a, "[\"3\",\"11\",\"room:9\",\"new_msg\",{}]");
    ASSERT_EQ(a.nmsgs, 3);
    ASSERT_STR_EQ(tx_msg(&a, 2), "[null,\"11\",\"room:9\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"unmatched topic\"},"
                                 "\"status\":\"error\"}]");
    ASSERT_EQ(rec.joins, 0);
    ASSERT_EQ(f.loop.stats.refused_joins[PHX_JOIN_REFUSE_UNMATCHED], 2);
    ASSERT_EQ(f.loop.stats.joins, 0);
    ASSERT_EQ(phx_pubsub_topic_count(f.ep.pubsub), 0);
    ASSERT_EQ(a.ncloses, 0);
    tx_peer_gone(&a);
    fx_done(&f);
}

static void socket_id_topics_cannot_be_joined(void)
{
    static const char unmatched_fmt[] = "[null,\"%s\",\"%s\",\"phx_reply\","
                                        "{\"response\":{\"reason\":\"unmatched topic\"},"
                                        "\"status\":\"error\"}]";
    char want[256];
    fx_t f;
    fx_init(&f);
    fake_tx_t a, b, c;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=42");
    tx_connect_ok(&f, &c, "vsn=2.0.0&token=x&id=custom:7");
    tx_connect_ok(&f, &b, "vsn=2.0.0&token=x");
    ASSERT_STR_EQ(phx_socket_id(c.sock), "custom:7");
    ASSERT(phx_socket_id(b.sock) == NULL);
    ASSERT(phx_socket_id_topic(&f.ep, "users_socket:42", 15));
    ASSERT(phx_socket_id_topic(&f.ep, "users_socket:99", 15)); /* nobody: still the form */
    ASSERT(phx_socket_id_topic(&f.ep, "custom:7", 8));
    ASSERT(!phx_socket_id_topic(&f.ep, "custom:8", 8));

    /* Another socket's id, of the default form. */
    tx_feed(&b, "[\"1\",\"1\",\"users_socket:42\",\"phx_join\",{}]");
    snprintf(want, sizeof(want), unmatched_fmt, "1", "users_socket:42");
    ASSERT_EQ(b.nmsgs, 1);
    ASSERT_STR_EQ(tx_msg(&b, 0), want);
    /* Its own id, too. */
    tx_feed(&a, "[\"1\",\"1\",\"users_socket:42\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_STR_EQ(tx_msg(&a, 0), want);
    /* The default form with nobody connected. */
    tx_feed(&b, "[\"2\",\"2\",\"users_socket:99\",\"phx_join\",{}]");
    snprintf(want, sizeof(want), unmatched_fmt, "2", "users_socket:99");
    ASSERT_STR_EQ(tx_msg(&b, 1), want);
    /* The id of a connected socket chosen by the callback. */
    tx_feed(&b, "[\"3\",\"3\",\"custom:7\",\"phx_join\",{}]");
    snprintf(want, sizeof(want), unmatched_fmt, "3", "custom:7");
    ASSERT_STR_EQ(tx_msg(&b, 2), want);
    ASSERT_EQ(rec.joins, 0);
    ASSERT_EQ(subs(&f, "custom:7"), 0);
    ASSERT_EQ(subs(&f, "users_socket:42"), 0);
    /* The same route for a topic that is nobody's id works. */
    tx_feed(&b, "[\"4\",\"4\",\"custom:8\",\"phx_join\",{}]");
    ASSERT_STR_EQ(tx_msg(&b, 3),
                  "[\"4\",\"4\",\"custom:8\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_EQ(rec.joins, 1);

    /* Once custom:7 is gone, its id is an ordinary topic again. */
    tx_peer_gone(&c);
    ASSERT(!phx_socket_id_topic(&f.ep, "custom:7", 8));
    tx_feed(&b, "[\"5\",\"5\",\"custom:7\",\"phx_join\",{}]");
    ASSERT_STR_EQ(tx_msg(&b, 4),
                  "[\"5\",\"5\",\"custom:7\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_EQ(b.nmsgs, 5);
    tx_peer_gone(&a);
    tx_peer_gone(&b);
    ASSERT_STR_EQ(rec.reasons, "closed,closed");
    fx_done(&f);
}

static void join_refused_by_the_handler(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_feed(&a, "[\"1\",\"1\",\"room:secret\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_STR_EQ(tx_msg(&a, 0), "[\"1\",\"1\",\"room:secret\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"unauthorized\"},"
                                 "\"status\":\"error\"}]");
    ASSERT_EQ(rec.joins, 1);
    ASSERT_EQ(rec.terminates, 0); /* never joined: no terminate */
    ASSERT_EQ(subs(&f, "room:secret"), 0);
    ASSERT_EQ(a.sock->nchannels, 0);
    /* A crashing join. */
    tx_feed(&a, "[\"2\",\"2\",\"room:crash\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&a, 1), "[\"2\",\"2\",\"room:crash\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"join crashed\"},"
                                 "\"status\":\"error\"}]");
    ASSERT_EQ(f.loop.stats.refused_joins[PHX_JOIN_REFUSE_UNAUTHORIZED], 1);
    ASSERT_EQ(f.loop.stats.refused_joins[PHX_JOIN_REFUSE_CRASHED], 1);
    /* Events on the refused topic: not joined. */
    tx_feed(&a, "[\"1\",\"3\",\"room:secret\",\"ping\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, 2), "[null,\"3\",\"room:secret\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"unmatched topic\"},"
                                 "\"status\":\"error\"}]");
    ASSERT_EQ(phx_pubsub_topic_count(f.ep.pubsub), 0);
    tx_peer_gone(&a);
    ASSERT_EQ(rec.terminates, 0);
    fx_done(&f);
}

static void duplicate_join_closes_the_old_instance(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_feed(&a, "[\"1\",\"1\",\"room:a\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 1);
    tx_feed(&a, "[\"2\",\"2\",\"room:a\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 3);
    /* The new join's reply first, then the old instance's phx_close. */
    ASSERT_STR_EQ(tx_msg(&a, 1),
                  "[\"2\",\"2\",\"room:a\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 2), "[\"1\",\"1\",\"room:a\",\"phx_close\",{}]");
    ASSERT_EQ(rec.joins, 2);
    ASSERT_EQ(rec.terminates, 1);
    ASSERT_STR_EQ(rec.reasons, "duplicate_join");
    ASSERT_EQ(subs(&f, "room:a"), 1);
    ASSERT_EQ(a.sock->nchannels, 1);
    ASSERT_EQ(f.loop.stats.joined_channels, 1);

    /* A message for the old join_ref is dropped; the new one is served. */
    tx_feed(&a, "[\"1\",\"3\",\"room:a\",\"ping\",{}]");
    ASSERT_EQ(a.nmsgs, 3);
    tx_feed(&a, "[\"2\",\"4\",\"room:a\",\"ping\",{}]");
    ASSERT_EQ(a.nmsgs, 4);
    ASSERT_STR_EQ(tx_msg(&a, 3),
                  "[\"2\",\"4\",\"room:a\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    /* A stale leave gets no reply at all. */
    tx_feed(&a, "[\"1\",\"5\",\"room:a\",\"phx_leave\",{}]");
    ASSERT_EQ(a.nmsgs, 4);
    ASSERT_EQ(subs(&f, "room:a"), 1);

    /* A duplicate join that the handler refuses: its error reply, then the
     * old instance's phx_close; nothing stays joined. */
    tx_feed(&a, "[\"3\",\"3\",\"room:a\",\"phx_join\",{\"deny\":1}]");
    ASSERT_EQ(a.nmsgs, 6);
    ASSERT_STR_EQ(tx_msg(&a, 4), "[\"3\",\"3\",\"room:a\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"denied\"},\"status\":\"error\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 5), "[\"2\",\"2\",\"room:a\",\"phx_close\",{}]");
    ASSERT_STR_EQ(rec.reasons, "duplicate_join,duplicate_join");
    ASSERT_EQ(a.sock->nchannels, 0);
    ASSERT_EQ(subs(&f, "room:a"), 0);
    ASSERT_EQ(phx_pubsub_topic_count(f.ep.pubsub), 0);
    tx_feed(&a, "[\"2\",\"7\",\"room:a\",\"ping\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, 6), "[null,\"7\",\"room:a\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"unmatched topic\"},"
                                 "\"status\":\"error\"}]");
    tx_peer_gone(&a);
    ASSERT_STR_EQ(rec.reasons, "duplicate_join,duplicate_join");
    fx_done(&f);
}

static void duplicate_join_at_the_channel_limit(void)
{
    fx_t f;
    fx_init_cfg(&f, 1);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_feed(&a, "[\"1\",\"1\",\"room:a\",\"phx_join\",{}]");
    ASSERT_EQ(a.sock->nchannels, 1);
    /* With max_channels 1 the old instance ends first, so the new join
     * fits the limit. */
    tx_feed(&a, "[\"2\",\"2\",\"room:a\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 3);
    ASSERT_STR_EQ(tx_msg(&a, 1),
                  "[\"2\",\"2\",\"room:a\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 2), "[\"1\",\"1\",\"room:a\",\"phx_close\",{}]");
    tx_peer_gone(&a);
    ASSERT_STR_EQ(rec.reasons, "duplicate_join,closed");
    fx_done(&f);
}

static void events_reach_handle_in_and_are_replied(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&a, "[\"1\",\"2\",\"room:1\",\"ping\",{\"x\":1}]");
    ASSERT_STR_EQ(rec.last_event, "ping");
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&a, 1), "[\"1\",\"2\",\"room:1\",\"phx_reply\","
                                 "{\"response\":{\"x\":1},\"status\":\"ok\"}]");
    /* A message without join_ref reaches the channel too. */
    tx_feed(&a, "[null,\"3\",\"room:1\",\"ping\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, 2),
                  "[\"1\",\"3\",\"room:1\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    tx_feed(&a, "[\"1\",\"4\",\"room:1\",\"fail\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, 3), "[\"1\",\"4\",\"room:1\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"nope\"},\"status\":\"error\"}]");
    /* noreply */
    tx_feed(&a, "[\"1\",\"5\",\"room:1\",\"shout_from\",{}]");
    ASSERT_EQ(a.nmsgs, 4);
    ASSERT_EQ(rec.bcast_rv, 0); /* nobody else there */
    /* stop: the reply, then phx_close; the channel ends. */
    tx_feed(&a, "[\"1\",\"6\",\"room:1\",\"stop\",{}]");
    ASSERT_EQ(a.nmsgs, 6);
    ASSERT_STR_EQ(tx_msg(&a, 4), "[\"1\",\"6\",\"room:1\",\"phx_reply\","
                                 "{\"response\":{\"bye\":true},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 5), "[\"1\",\"1\",\"room:1\",\"phx_close\",{}]");
    ASSERT_STR_EQ(rec.reasons, "stop");
    ASSERT_EQ(subs(&f, "room:1"), 0);
    /* Afterwards: unmatched topic. */
    tx_feed(&a, "[\"1\",\"7\",\"room:1\",\"ping\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, 6), "[null,\"7\",\"room:1\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"unmatched topic\"},"
                                 "\"status\":\"error\"}]");
    /* A crash: phx_error with the join_ref as both refs. */
    tx_feed(&a, "[\"8\",\"8\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&a, "[\"8\",\"9\",\"room:1\",\"explode\",{}]");
    ASSERT_EQ(a.nmsgs, 9);
    ASSERT_STR_EQ(tx_msg(&a, 8),
                  "[\"8\",\"8\",\"room:1\",\"phx_error\",{\"reason\":\"channel_crash\"}]");
    ASSERT_STR_EQ(rec.reasons, "stop,crash");
    ASSERT_EQ(subs(&f, "room:1"), 0);
    /* A handler without handle_in: an event crashes the channel (as a
     * Phoenix channel without a matching handle_in clause does). */
    tx_feed(&a, "[\"10\",\"10\",\"bare:1\",\"phx_join\",{}]");
    tx_feed(&a, "[\"10\",\"11\",\"bare:1\",\"anything\",{}]");
    ASSERT_EQ(a.nmsgs, 11);
    ASSERT_STR_EQ(tx_msg(&a, 10),
                  "[\"10\",\"10\",\"bare:1\",\"phx_error\",{\"reason\":\"channel_crash\"}]");
    ASSERT_EQ(subs(&f, "bare:1"), 0);
    ASSERT_EQ(a.sock->nchannels, 0);
    ASSERT_EQ(a.ncloses, 0);
    tx_peer_gone(&a);
    fx_done(&f);
}

static void leave_replies_ok_then_closes(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_feed(&a, "[\"3\",\"3\",\"room:1\",\"phx_join\",{}]");
    ASSERT_EQ(subs(&f, "room:1"), 1);
    tx_feed(&a, "[\"3\",\"18\",\"room:1\",\"phx_leave\",{}]");
    ASSERT_EQ(a.nmsgs, 3);
    ASSERT_STR_EQ(tx_msg(&a, 1),
                  "[\"3\",\"18\",\"room:1\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 2), "[\"3\",\"3\",\"room:1\",\"phx_close\",{}]");
    ASSERT_EQ(rec.terminates, 1);
    ASSERT_STR_EQ(rec.reasons, "left");
    ASSERT_EQ(subs(&f, "room:1"), 0);
    ASSERT_EQ(phx_pubsub_topic_count(f.ep.pubsub), 0);
    ASSERT_EQ(a.sock->nchannels, 0);
    ASSERT_EQ(f.loop.stats.joined_channels, 0);
    /* Leaving a topic that is not joined: ok with the join_ref as sent,
     * no phx_close. */
    tx_feed(&a, "[\"5\",\"6\",\"room:9\",\"phx_leave\",{}]");
    ASSERT_EQ(a.nmsgs, 4);
    ASSERT_STR_EQ(tx_msg(&a, 3),
                  "[\"5\",\"6\",\"room:9\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_EQ(rec.terminates, 1);
    tx_peer_gone(&a);
    fx_done(&f);
}

static void broadcasts_between_sockets(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a, b, c;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_connect_ok(&f, &b, "vsn=2.0.0&token=x");
    tx_connect_ok(&f, &c, "vsn=1.0.0&token=x"); /* a V1 subscriber */
    tx_feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&b, "[\"4\",\"4\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&c, "{\"topic\":\"room:1\",\"event\":\"phx_join\",\"payload\":{},\"ref\":\"2\","
                "\"join_ref\":\"2\"}");
    ASSERT_EQ(subs(&f, "room:1"), 3);
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_EQ(b.nmsgs, 1);
    ASSERT_EQ(c.nmsgs, 1);

    /* broadcast: every subscriber, the sender included, each in its format. */
    tx_feed(&a, "[\"1\",\"2\",\"room:1\",\"shout\",{\"m\":1}]");
    ASSERT_EQ(rec.bcast_rv, 3);
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_EQ(b.nmsgs, 2);
    ASSERT_EQ(c.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&a, 1), "[null,null,\"room:1\",\"shout\",{\"m\":1}]");
    ASSERT_STR_EQ(tx_msg(&b, 1), "[null,null,\"room:1\",\"shout\",{\"m\":1}]");
    ASSERT_STR_EQ(tx_msg(&c, 1),
                  "{\"event\":\"shout\",\"payload\":{\"m\":1},\"ref\":null,\"topic\":\"room:1\"}");

    /* The protocol's and phxd's own events are never relayed, even by a
     * handler that would: the library refuses them. */
    static const char *const forged[] = {"relay:phx_close", "relay:phx_error", "relay:phx_reply",
                                         "relay:presence_diff", "relay:presence_state"};
    for (size_t i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        char frame[128];
        snprintf(frame, sizeof(frame), "[\"1\",\"3\",\"room:1\",\"%s\",{}]", forged[i]);
        tx_feed(&a, frame);
        ASSERT_EQ(rec.bcast_rv, PHX_ERR_PROTO);
        ASSERT_EQ(a.nmsgs, 2);
        ASSERT_EQ(b.nmsgs, 2);
        ASSERT_EQ(c.nmsgs, 2);
    }

    /* broadcast_from: everybody but the sender. */
    tx_feed(&b, "[\"4\",\"5\",\"room:1\",\"shout_from\",{\"m\":2}]");
    ASSERT_EQ(rec.bcast_rv, 2);
    ASSERT_EQ(a.nmsgs, 3);
    ASSERT_EQ(b.nmsgs, 2);
    ASSERT_EQ(c.nmsgs, 3);
    ASSERT_STR_EQ(tx_msg(&a, 2), "[null,null,\"room:1\",\"shout\",{\"m\":2}]");

    /* A server-side broadcast on the topic: every subscriber. */
    static const char body[] = "{\"s\":true}";
    phx_payload_t p = {(const uint8_t *)body, sizeof(body) - 1, false};
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "room:1", 6, "news", &p, 0, 0), 3);
    ASSERT_STR_EQ(tx_msg(&a, 3), "[null,null,\"room:1\",\"news\",{\"s\":true}]");
    ASSERT_STR_EQ(tx_msg(&b, 2), "[null,null,\"room:1\",\"news\",{\"s\":true}]");
    /* Another topic reaches nobody here. */
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "room:2", 6, "news", &p, 0, 0), 0);

    /* A binary broadcast skips the V1 socket. */
    static const uint8_t raw[] = {1, 2, 3};
    phx_payload_t bin = {raw, sizeof(raw), true};
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "room:1", 6, "bin", &bin, 0, 0), 2);
    ASSERT_EQ(a.nmsgs, 5);
    ASSERT(a.binary[4]);
    ASSERT_EQ(c.nmsgs, 4);

    /* After b leaves, it gets nothing more. */
    tx_feed(&b, "[\"4\",\"6\",\"room:1\",\"phx_leave\",{}]");
    int bn = b.nmsgs;
    tx_feed(&a, "[\"1\",\"7\",\"room:1\",\"shout\",{}]");
    ASSERT_EQ(rec.bcast_rv, 2);
    ASSERT_EQ(b.nmsgs, bn);
    ASSERT_EQ(a.nmsgs, 6);
    ASSERT_EQ(c.nmsgs, 5);
    tx_peer_gone(&a);
    tx_peer_gone(&b);
    tx_peer_gone(&c);
    ASSERT_STR_EQ(rec.reasons, "left,closed,closed");
    fx_done(&f);
}

static void server_disconnect_by_id_closes_with_1001(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a1, a2, b;
    tx_connect_ok(&f, &a1, "vsn=2.0.0&token=x&user=42");
    tx_connect_ok(&f, &a2, "vsn=2.0.0&token=x&user=42"); /* the same user twice */
    tx_connect_ok(&f, &b, "vsn=2.0.0&token=x&user=7");
    tx_feed(&a1, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&a2, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&b, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    ASSERT_EQ(subs(&f, "room:1"), 3);
    ASSERT_EQ(subs(&f, "users_socket:42"), 0); /* id subscriptions are not counted */

    /* Client-origin "disconnect" on the id: nobody closes. */
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "users_socket:42", 15, "disconnect", NULL, 0,
                                     PHX_ORIGIN_CLIENT),
              0);
    ASSERT_EQ(a1.ncloses, 0);
    ASSERT_EQ(a2.ncloses, 0);
    /* A client event named "disconnect" broadcast on a channel: an
     * ordinary event, nobody closes. */
    tx_feed(&b, "[\"1\",\"2\",\"room:1\",\"disconnect\",{}]");
    ASSERT_EQ(rec.bcast_rv, 3);
    ASSERT_EQ(a1.ncloses + a2.ncloses + b.ncloses, 0);
    ASSERT_STR_EQ(tx_msg(&a1, 1), "[null,null,\"room:1\",\"disconnect\",{}]");
    /* Another event on the id topic: not for the socket. */
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "users_socket:42", 15, "other", NULL, 0, 0), 0);
    ASSERT_EQ(a1.ncloses, 0);
    int a1n = a1.nmsgs, a2n = a2.nmsgs;

    /* Server-side: every socket of that id closes with 1001, nothing sent
     * for its channels first. */
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "users_socket:42", 15, "disconnect", NULL, 0, 0), 2);
    ASSERT_EQ(a1.ncloses, 1);
    ASSERT_EQ(a1.close_code, 1001);
    ASSERT_EQ(a2.ncloses, 1);
    ASSERT_EQ(a2.close_code, 1001);
    ASSERT(a1.sock == NULL); /* ended by the transport */
    ASSERT(a2.sock == NULL);
    ASSERT_EQ(a1.nmsgs, a1n);
    ASSERT_EQ(a2.nmsgs, a2n);
    ASSERT_EQ(a1.dropped + a2.dropped, 0);
    ASSERT_EQ(b.ncloses, 0);
    ASSERT_STR_EQ(rec.reasons, "closed,closed");
    ASSERT_EQ(subs(&f, "room:1"), 1);
    ASSERT(!phx_pubsub_has_id(f.ep.pubsub, "users_socket:42", 15));
    /* Nobody left with that id. */
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "users_socket:42", 15, "disconnect", NULL, 0, 0), 0);
    /* b still works. */
    tx_feed(&b, "[null,\"9\",\"phoenix\",\"heartbeat\",{}]");
    ASSERT_STR_EQ(tx_msg(&b, b.nmsgs - 1), "[null,\"9\",\"phoenix\",\"phx_reply\","
                                           "{\"response\":{},\"status\":\"ok\"}]");
    tx_peer_gone(&b);
    fx_done(&f);
}

/* The same disconnect arriving while the socket is inside a client message
 * (its own channel's broadcast on the id topic is impossible, so a
 * handler-triggered server broadcast): the close is deferred by the
 * transport until the message is handled. */
static phx_result_t kick_in(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                            phx_reply_t *reply, void *user)
{
    (void)event;
    (void)payload;
    phx_endpoint_t *ep = user;
    const char *id = phx_socket_id(phx_channel_socket(ch));
    rec.bcast_rv = phx_endpoint_broadcast(ep, id, strlen(id), "disconnect", NULL, 0, 0);
    static const char r[] = "{\"kicked\":true}";
    phx_payload_t p = {(const uint8_t *)r, sizeof(r) - 1, false};
    phx_reply_set(reply, &p);
    return PHX_REPLY_OK;
}

static const phx_channel_handler_t kick_handler = {
    .join = room_join,
    .handle_in = kick_in,
    .terminate = room_terminate,
};

static void disconnect_during_own_message(void)
{
    fx_t f;
    fx_init(&f);
    ASSERT_EQ(phx_endpoint_add_route(&f.ep, "kick", &kick_handler, &f.ep), 0);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=5");
    tx_feed(&a, "[\"1\",\"1\",\"kick\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 1);
    tx_feed(&a, "[\"1\",\"2\",\"kick\",\"go\",{}]");
    ASSERT_EQ(rec.bcast_rv, 1);
    ASSERT_EQ(a.ncloses, 1);
    ASSERT_EQ(a.close_code, 1001);
    ASSERT(a.sock == NULL);
    /* The reply the handler set goes to a closing transport, which drops
     * it, as ws.c and longpoll.c do. */
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_EQ(a.dropped, 1);
    ASSERT_STR_EQ(rec.reasons, "closed");
    fx_done(&f);
}

/* A subscriber that overflows during a broadcast is closed and freed in
 * the middle of the walk; the others still get it. */
static void slow_consumer_closed_during_a_broadcast(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a, b, c;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_connect_ok(&f, &b, "vsn=2.0.0&token=x");
    tx_connect_ok(&f, &c, "vsn=2.0.0&token=x");
    tx_feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&b, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&b, "[\"2\",\"2\",\"room:2\",\"phx_join\",{}]");
    tx_feed(&c, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    b.limit = b.nmsgs; /* the next message overflows */
    tx_feed(&a, "[\"1\",\"2\",\"room:1\",\"shout\",{\"n\":1}]");
    ASSERT_EQ(b.close_code, 1008);
    ASSERT(b.sock == NULL);
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_EQ(c.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&c, 1), "[null,null,\"room:1\",\"shout\",{\"n\":1}]");
    ASSERT_STR_EQ(rec.reasons, "closed,closed");
    ASSERT_EQ(subs(&f, "room:1"), 2);
    ASSERT_EQ(subs(&f, "room:2"), 0);
    /* The walk goes on normally afterwards. */
    tx_feed(&c, "[\"1\",\"3\",\"room:1\",\"shout_from\",{}]");
    ASSERT_EQ(rec.bcast_rv, 1);
    ASSERT_EQ(a.nmsgs, 3);
    tx_peer_gone(&a);
    tx_peer_gone(&c);
    fx_done(&f);
}

static void undecodable_input_closes_with_1011(void)
{
    static const char *bad[] = {
        "not json",
        "{\"topic\":\"room:1\",\"event\":\"phx_join\",\"payload\":{},\"ref\":\"1\"}", /* V1 on V2 */
        "[\"1\",\"1\",\"room:1\",\"phx_join\"]",   /* four elements */
        "[\"1\",\"1\",\"room:1\",\"phx_join\",{}", /* truncated */
        "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fx_t f;
        fx_init(&f);
        fake_tx_t a;
        tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=3");
        tx_feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
        ASSERT_EQ(a.nmsgs, 1);
        tx_feed(&a, bad[i]);
        ASSERT_EQ(a.ncloses, 1);
        ASSERT_EQ(a.close_code, 1011);
        ASSERT_EQ(a.nmsgs, 1); /* nothing else: no reply, no phx_close */
        ASSERT(a.sock == NULL);
        ASSERT_STR_EQ(rec.reasons, "closed");
        fx_done(&f);
    }
    /* V2 array on a V1 socket. */
    fx_t f;
    fx_init(&f);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=1.0.0&token=x");
    tx_feed(&a, "[null,\"1\",\"phoenix\",\"heartbeat\",{}]");
    ASSERT_EQ(a.close_code, 1011);
    ASSERT_EQ(a.nmsgs, 0);
    ASSERT(a.sock == NULL);
    fx_done(&f);
}

static void v1_json_replies_as_objects(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a, d;
    tx_connect_ok(&f, &a, "vsn=1.0.0&token=x");
    ASSERT_EQ(a.sock->fmt, PHX_FMT_V1_JSON);
    tx_feed(&a, "{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":{},\"ref\":\"1\"}");
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_STR_EQ(tx_msg(&a, 0), "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},"
                                 "\"status\":\"ok\"},\"ref\":\"1\",\"topic\":\"phoenix\"}");
    tx_feed(&a, "{\"topic\":\"room:1\",\"event\":\"phx_join\",\"payload\":{},\"ref\":\"2\","
                "\"join_ref\":\"2\"}");
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&a, 1), "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},"
                                 "\"status\":\"ok\"},\"ref\":\"2\",\"topic\":\"room:1\"}");
    ASSERT_EQ(subs(&f, "room:1"), 1);
    tx_feed(&a, "{\"topic\":\"room:1\",\"event\":\"ping\",\"payload\":{\"v\":1},\"ref\":\"3\","
                "\"join_ref\":\"2\"}");
    ASSERT_STR_EQ(tx_msg(&a, 2), "{\"event\":\"phx_reply\",\"payload\":{\"response\":{\"v\":1},"
                                 "\"status\":\"ok\"},\"ref\":\"3\",\"topic\":\"room:1\"}");
    tx_feed(&a, "{\"topic\":\"nope\",\"event\":\"phx_join\",\"payload\":{},\"ref\":\"4\"}");
    ASSERT_STR_EQ(tx_msg(&a, 3), "{\"event\":\"phx_reply\",\"payload\":{\"response\":"
                                 "{\"reason\":\"unmatched topic\"},\"status\":\"error\"},"
                                 "\"ref\":\"4\",\"topic\":\"nope\"}");
    tx_feed(&a, "{\"topic\":\"room:1\",\"event\":\"phx_leave\",\"payload\":{},\"ref\":\"5\"}");
    ASSERT_EQ(a.nmsgs, 6);
    ASSERT_STR_EQ(tx_msg(&a, 4), "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},"
                                 "\"status\":\"ok\"},\"ref\":\"5\",\"topic\":\"room:1\"}");
    ASSERT_STR_EQ(tx_msg(&a, 5), "{\"event\":\"phx_close\",\"payload\":{},\"ref\":\"2\","
                                 "\"topic\":\"room:1\"}");
    ASSERT_EQ(subs(&f, "room:1"), 0);

    /* No vsn at all: V1 (the 1.0.0 default). */
    tx_connect_ok(&f, &d, "token=x");
    ASSERT_EQ(d.sock->fmt, PHX_FMT_V1_JSON);
    tx_feed(&d, "{\"topic\":\"phoenix\",\"event\":\"heartbeat\",\"payload\":{},\"ref\":\"9\"}");
    ASSERT_STR_EQ(tx_msg(&d, 0), "{\"event\":\"phx_reply\",\"payload\":{\"response\":{},"
                                 "\"status\":\"ok\"},\"ref\":\"9\",\"topic\":\"phoenix\"}");
    tx_peer_gone(&a);
    tx_peer_gone(&d);
    fx_done(&f);
}

static int vsn_lines, callback_lines, other_lines;

/* Each refusal is one info line with its one reason. */
static void count_log(int level, const char *line, void *user)
{
    (void)user;
    if (level == PHX_LOG_LEVEL_INFO && strstr(line, "event=connect_refused reason=vsn "))
        vsn_lines++;
    else if (level == PHX_LOG_LEVEL_INFO && strstr(line, "event=connect_refused reason=callback "))
        callback_lines++;
    else
        other_lines++;
}

static void connect_refusals(void)
{
    fx_t f;
    fx_init(&f);
    vsn_lines = callback_lines = other_lines = 0;
    phx_set_log(count_log, NULL);
    fake_tx_t a;
    /* The callback refuses: 403, counted as a callback refusal. */
    ASSERT_EQ(tx_connect(&f, &a, "vsn=2.0.0&token=x&refuse=1"), 403);
    ASSERT_EQ(connect_calls, 1);
    ASSERT_EQ(f.loop.stats.refused[PHX_REFUSE_CALLBACK], 1);
    /* A vsn no serializer matches, or no version at all: 403 before the
     * callback runs. */
    static const char *bad_vsn[] = {"vsn=3.0.0&token=x", "vsn=2.1.0&token=x",
                                    "vsn=&token=x",      "vsn=v2.0.0&token=x",
                                    "vsn[x]=1&token=x",  "vsn=2.0.0-rc.1&token=x"};
    for (size_t i = 0; i < sizeof(bad_vsn) / sizeof(bad_vsn[0]); i++)
        ASSERT_EQ(tx_connect(&f, &a, bad_vsn[i]), 403);
    ASSERT_EQ(connect_calls, 1);
    ASSERT_EQ(f.loop.stats.refused[PHX_REFUSE_VSN], 6);
    ASSERT_EQ(vsn_lines, 6);
    ASSERT_EQ(callback_lines, 1);
    ASSERT_EQ(other_lines, 0);
    phx_set_log(NULL, NULL);
    /* Accepted variants. */
    tx_connect_ok(&f, &a, "token=x&vsn=2.0.5");
    ASSERT_EQ(a.sock->fmt, PHX_FMT_V2_JSON);
    tx_peer_gone(&a);
    tx_connect_ok(&f, &a, "vsn=1.0.0&vsn=2.0.0"); /* last wins */
    ASSERT_EQ(a.sock->fmt, PHX_FMT_V2_JSON);
    tx_peer_gone(&a);
    ASSERT_EQ(f.loop.stats.refused_connects, 7);
    /* The default callback without a secret refuses everybody. */
    phx_endpoint_on_connect(&f.ep, NULL, NULL);
    ASSERT_EQ(tx_connect(&f, &a, "vsn=2.0.0&token=x"), 403);
    fx_done(&f);
}

static void channel_limit_refuses_a_join(void)
{
    fx_t f;
    fx_init_cfg(&f, 2);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x");
    tx_feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&a, "[\"2\",\"2\",\"room:2\",\"phx_join\",{}]");
    ASSERT_EQ(a.sock->nchannels, 2);
    tx_feed(&a, "[\"3\",\"3\",\"room:3\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 3);
    ASSERT_STR_EQ(tx_msg(&a, 2), "[\"3\",\"3\",\"room:3\",\"phx_reply\","
                                 "{\"response\":{\"reason\":\"too many channels joined\"},"
                                 "\"status\":\"error\"}]");
    ASSERT_EQ(rec.joins, 2); /* the handler was not asked */
    ASSERT_EQ(subs(&f, "room:3"), 0);
    ASSERT_EQ(a.sock->nchannels, 2);
    ASSERT_EQ(f.loop.stats.refused_joins[PHX_JOIN_REFUSE_TOO_MANY], 1);
    ASSERT_EQ(f.loop.stats.joins, 2);
    ASSERT_EQ(a.ncloses, 0); /* the socket lives */
    tx_feed(&a, "[null,\"4\",\"phoenix\",\"heartbeat\",{}]");
    ASSERT_EQ(a.nmsgs, 4);
    /* After a leave there is room again. */
    tx_feed(&a, "[\"1\",\"5\",\"room:1\",\"phx_leave\",{}]");
    tx_feed(&a, "[\"6\",\"6\",\"room:3\",\"phx_join\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, a.nmsgs - 1),
                  "[\"6\",\"6\",\"room:3\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_EQ(subs(&f, "room:3"), 1);
    tx_peer_gone(&a);
    ASSERT_STR_EQ(rec.reasons, "left,closed,closed");
    fx_done(&f);
}

static void socket_closed_terminates_its_channels(void)
{
    fx_t f;
    fx_init(&f);
    fake_tx_t a, b;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=1");
    tx_connect_ok(&f, &b, "vsn=2.0.0&token=x&user=2");
    tx_feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    tx_feed(&a, "[\"2\",\"2\",\"room:2\",\"phx_join\",{}]");
    tx_feed(&b, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    ASSERT_EQ(subs(&f, "room:1"), 2);
    ASSERT_EQ(subs(&f, "room:2"), 1);
    ASSERT_EQ(phx_pubsub_topic_count(f.ep.pubsub), 4);
    ASSERT_EQ(f.loop.stats.joined_channels, 3);
    int an = a.nmsgs;
    tx_peer_gone(&a);
    ASSERT_EQ(rec.terminates, 2);
    ASSERT_STR_EQ(rec.reasons, "closed,closed");
    ASSERT_EQ(a.nmsgs, an); /* nothing sent for them */
    ASSERT_EQ(a.dropped, 0);
    ASSERT_EQ(subs(&f, "room:1"), 1);
    ASSERT_EQ(subs(&f, "room:2"), 0);
    ASSERT(!phx_pubsub_has_id(f.ep.pubsub, "users_socket:1", 14));
    ASSERT_EQ(phx_pubsub_topic_count(f.ep.pubsub), 2);
    ASSERT_EQ(f.loop.stats.joined_channels, 1);
    /* A broadcast reaches the one left. */
    ASSERT_EQ(phx_endpoint_broadcast(&f.ep, "room:1", 6, "x", NULL, 0, 0), 1);
    /* A close requested by the server (phx_socket_close) ends it through
     * the transport as well. */
    phx_socket_close(b.sock, 1000);
    ASSERT_EQ(b.close_code, 1000);
    ASSERT(b.sock == NULL);
    ASSERT_EQ(rec.terminates, 3);
    ASSERT_EQ(subs(&f, "room:1"), 0);
    ASSERT_EQ(phx_pubsub_topic_count(f.ep.pubsub), 0);
    fx_done(&f);
}

/* ---- deferred answers (phx_channel_defer / phx_connect_defer) ---- */

/* "later:*": every join and event is answered later by the test. */
static phx_channel_t *pending; /* the channel waiting for its answer */
static int later_calls;
static char later_log[512]; /* "join:<params>", "ev:<event>", comma-separated */

static void later_note(const char *what, const char *arg)
{
    size_t n = strlen(later_log);
    snprintf(later_log + n, sizeof(later_log) - n, "%s%s:%s", n ? "," : "", what, arg);
}

static phx_result_t later_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                               phx_reply_t *reply, void *user)
{
    char p[64];
    copy_payload(p, sizeof(p), params);
    later_note("join", p);
    later_calls++;
    if (strstr(p, "now"))
        return PHX_REPLY_OK; /* answered at once, as before */
    ASSERT(pending == NULL);
    ASSERT_EQ(phx_channel_defer(ch), 0);
    ASSERT_EQ(phx_channel_defer(ch), PHX_ERR_STATE); /* once */
    pending = ch;
    return PHX_DEFER;
}

static phx_result_t later_in(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                             phx_reply_t *reply, void *user)
{
    later_note("ev", event);
    later_calls++;
    if (strcmp(event, "forgot") == 0) {
        /* PHX_DEFER without asking: a crash. */
        return PHX_DEFER;
    }
    ASSERT(pending == NULL);
    ASSERT_EQ(phx_channel_defer(ch), 0);
    pending = ch;
    return PHX_DEFER;
}

static void later_terminate(phx_channel_t *ch, const char *reason, void *user)
{
    if (pending == ch)
        pending = NULL; /* the answer will never be given */
    room_terminate(ch, reason, user);
}

static const phx_channel_handler_t later_handler = {
    .join = later_join,
    .handle_in = later_in,
    .terminate = later_terminate,
};

static void later_init(fx_t *f, int max_waiting)
{
    fx_init(f);
    if (max_waiting > 0)
        f->cfg.max_waiting_msgs = max_waiting;
    ASSERT_EQ(phx_endpoint_add_route(&f->ep, "later:*", &later_handler, NULL), 0);
    pending = NULL;
    later_calls = 0;
    later_log[0] = '\0';
}

/* Answers the pending call. */
static void later_answer(phx_result_t res, const char *json)
{
    phx_channel_t *ch = pending;
    ASSERT(ch != NULL);
    pending = NULL;
    phx_payload_t p = {(const uint8_t *)json, json ? strlen(json) : 0, false};
    ASSERT_EQ(phx_channel_resolve(ch, res, NULL, json ? &p : NULL), 0);
}

static void deferred_join_and_events_keep_their_order(void)
{
    fx_t f;
    later_init(&f, 0);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=1");
    tx_feed(&a, "[\"1\",\"1\",\"later:1\",\"phx_join\",{\"n\":1}]");
    ASSERT_EQ(a.nmsgs, 0); /* no reply yet */
    ASSERT_EQ(a.sock->nchannels, 1);
    ASSERT_EQ(subs(&f, "later:1"), 0); /* subscribed only once accepted */
    /* Sent right after the join: they wait for its answer, in order. */
    tx_feed(&a, "[\"1\",\"2\",\"later:1\",\"first\",{}]");
    tx_feed(&a, "[\"1\",\"3\",\"later:1\",\"second\",{}]");
    ASSERT_EQ(later_calls, 1);
    ASSERT(f.ep.waiting_bytes > 0);
    /* Another channel of the same socket is not held up. */
    tx_feed(&a, "[\"2\",\"4\",\"room:2\",\"phx_join\",{}]");
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_STR_EQ(tx_msg(&a, 0),
                  "[\"2\",\"4\",\"room:2\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    later_answer(PHX_REPLY_OK, "{\"welcome\":1}");
    ASSERT_STR_EQ(tx_msg(&a, 1), "[\"1\",\"1\",\"later:1\",\"phx_reply\","
                                 "{\"response\":{\"welcome\":1},\"status\":\"ok\"}]");
    ASSERT_EQ(subs(&f, "later:1"), 1);
    ASSERT_EQ(f.loop.stats.joined_channels, 2);
    /* The first waiting event went to the handler, the second still waits. */
    ASSERT_EQ(later_calls, 2);
    ASSERT_STR_EQ(later_log, "join:{\"n\":1},ev:first");
    later_answer(PHX_REPLY_OK, "{\"n\":2}");
    ASSERT_STR_EQ(tx_msg(&a, 2), "[\"1\",\"2\",\"later:1\",\"phx_reply\","
                                 "{\"response\":{\"n\":2},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(later_log, "join:{\"n\":1},ev:first,ev:second");
    later_answer(PHX_NOREPLY, NULL);
    ASSERT_EQ(a.nmsgs, 3);
    ASSERT_EQ(f.ep.waiting_bytes, 0);
    /* A stop: the reply, then phx_close. */
    tx_feed(&a, "[\"1\",\"5\",\"later:1\",\"bye\",{}]");
    phx_payload_t bye = {(const uint8_t *)"{\"bye\":1}", 9, false};
    phx_channel_t *ch = pending;
    pending = NULL;
    ASSERT_EQ(phx_channel_resolve(ch, PHX_STOP, "ok", &bye), 0);
    ASSERT_STR_EQ(tx_msg(&a, 3), "[\"1\",\"5\",\"later:1\",\"phx_reply\","
                                 "{\"response\":{\"bye\":1},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 4), "[\"1\",\"1\",\"later:1\",\"phx_close\",{}]");
    ASSERT_STR_EQ(rec.reasons, "stop");
    /* PHX_DEFER without phx_channel_defer crashes the channel. */
    tx_feed(&a, "[\"3\",\"6\",\"later:3\",\"phx_join\",{\"now\":1}]");
    tx_feed(&a, "[\"3\",\"7\",\"later:3\",\"forgot\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, a.nmsgs - 1),
                  "[\"3\",\"3\",\"later:3\",\"phx_error\",{\"reason\":\"channel_crash\"}]");
    tx_peer_gone(&a);
    fx_done(&f);
}

static void deferred_join_refused_and_leave_waits(void)
{
    fx_t f;
    later_init(&f, 0);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=1");
    tx_feed(&a, "[\"1\",\"1\",\"later:1\",\"phx_join\",{}]");
    tx_feed(&a, "[\"1\",\"2\",\"later:1\",\"ev\",{}]");
    later_answer(PHX_REPLY_ERROR, "{\"reason\":\"unauthorized\"}");
    ASSERT_EQ(a.nmsgs, 2);
    ASSERT_STR_EQ(tx_msg(&a, 0),
                  "[\"1\",\"1\",\"later:1\",\"phx_reply\","
                  "{\"response\":{\"reason\":\"unauthorized\"},\"status\":\"error\"}]");
    /* The event that waited finds no channel. */
    ASSERT_STR_EQ(tx_msg(&a, 1),
                  "[null,\"2\",\"later:1\",\"phx_reply\","
                  "{\"response\":{\"reason\":\"unmatched topic\"},\"status\":\"error\"}]");
    ASSERT_EQ(a.sock->nchannels, 0);
    ASSERT_EQ(rec.terminates, 0); /* a refused join never terminates */
    ASSERT_EQ(f.loop.stats.refused_joins[PHX_JOIN_REFUSE_UNAUTHORIZED], 1);
    /* A leave while the join waits: handled after it, in order. */
    tx_feed(&a, "[\"2\",\"3\",\"later:2\",\"phx_join\",{}]");
    tx_feed(&a, "[\"2\",\"4\",\"later:2\",\"phx_leave\",{}]");
    later_answer(PHX_REPLY_OK, NULL);
    ASSERT_EQ(a.nmsgs, 5);
    ASSERT_STR_EQ(tx_msg(&a, 2),
                  "[\"2\",\"3\",\"later:2\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 3),
                  "[\"2\",\"4\",\"later:2\",\"phx_reply\",{\"response\":{},\"status\":\"ok\"}]");
    ASSERT_STR_EQ(tx_msg(&a, 4), "[\"2\",\"2\",\"later:2\",\"phx_close\",{}]");
    ASSERT_STR_EQ(rec.reasons, "left");
    /* Nothing pending: resolve is refused. */
    tx_feed(&a, "[\"3\",\"5\",\"later:3\",\"phx_join\",{\"now\":1}]");
    ASSERT_EQ(a.sock->nchannels, 1);
    ASSERT_EQ(phx_channel_resolve(a.sock->channels, PHX_REPLY_OK, NULL, NULL), PHX_ERR_STATE);
    tx_peer_gone(&a);
    fx_done(&f);
}

static void waiting_messages_are_bounded(void)
{
    fx_t f;
    later_init(&f, 2);
    fake_tx_t a;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=1");
    tx_feed(&a, "[\"1\",\"1\",\"later:1\",\"phx_join\",{}]");
    tx_feed(&a, "[\"1\",\"2\",\"later:1\",\"a\",{}]");
    tx_feed(&a, "[\"1\",\"3\",\"later:1\",\"b\",{}]");
    ASSERT_EQ(a.nmsgs, 0);
    tx_feed(&a, "[\"1\",\"4\",\"later:1\",\"c\",{}]"); /* beyond the bound */
    ASSERT_EQ(a.nmsgs, 1);
    ASSERT_STR_EQ(tx_msg(&a, 0),
                  "[\"1\",\"4\",\"later:1\",\"phx_reply\","
                  "{\"response\":{\"reason\":\"unavailable\"},\"status\":\"error\"}]");
    later_answer(PHX_REPLY_OK, NULL);
    later_answer(PHX_REPLY_OK, NULL);
    later_answer(PHX_REPLY_OK, NULL);
    ASSERT_STR_EQ(later_log, "join:{},ev:a,ev:b");
    ASSERT_EQ(a.nmsgs, 4);
    /* The server-wide byte budget too. */
    f.cfg.max_waiting_bytes = 1; /* read at every message */
    tx_feed(&a, "[\"1\",\"5\",\"later:1\",\"d\",{}]");
    tx_feed(&a, "[\"1\",\"6\",\"later:1\",\"e\",{}]");
    ASSERT_STR_EQ(tx_msg(&a, a.nmsgs - 1), "[\"1\",\"6\",\"later:1\",\"phx_reply\","
                                           "{\"response\":{\"reason\":\"unavailable\"},"
                                           "\"status\":\"error\"}]");
    later_answer(PHX_REPLY_OK, NULL);
    tx_peer_gone(&a);
    fx_done(&f);
}

static void socket_closing_while_deferred(void)
{
    fx_t f;
    later_init(&f, 0);
    fake_tx_t a, b;
    tx_connect_ok(&f, &a, "vsn=2.0.0&token=x&user=1");
    tx_connect_ok(&f, &b, "vsn=2.0.0&token=x&user=2");
    /* A join waiting with messages behind it: the socket goes. */
    tx_feed(&a, "[\"1\",\"1\",\"later:1\",\"phx_join\",{}]");
    tx_feed(&a, "[\"1\",\"2\",\"later:1\",\"ev\",{}]");
    tx_peer_gone(&a);
    ASSERT(pending == NULL); /* terminate told the handler */
    ASSERT_STR_EQ(rec.reasons, "closed");
    ASSERT_EQ(f.ep.waiting_bytes, 0);
    /* An event waiting on a joined channel: the same. */
    tx_feed(&b, "[\"1\",\"1\",\"later:1\",\"phx_join\",{\"now\":1}]");
    tx_feed(&b, "[\"1\",\"2\",\"later:1\",\"ev\",{}]");
    ASSERT(pending != NULL);
    tx_peer_gone(&b);
    ASSERT(pending == NULL);
    ASSERT_STR_EQ(rec.reasons, "closed,closed");
    fx_done(&f);
}

/* Deferred connect steps: the callback answers through a handle. */
static phx_connect_t *connect_pending;
static int connect_result = -1;

static int later_connect(phx_connect_t *c, void *user)
{
    connect_pending = phx_connect_defer(c);
    ASSERT(connect_pending != NULL);
    ASSERT(phx_connect_defer(c) == NULL); /* once */
    if (phx_connect_param(c, "early")) {
        ASSERT_EQ(phx_connect_set_id(connect_pending, "users_socket:9"), 0);
        phx_connect_resume(connect_pending, PHX_CONNECT_OK); /* before the park */
        connect_pending = NULL;
    }
    return PHX_CONNECT_DEFER;
}

static void connect_continued(phx_connect_t *d, int result)
{
    connect_result = result;
    fake_tx_t *tx = d->resume_arg;
    if (result == PHX_CONNECT_OK)
        ASSERT_EQ(phx_socket_new(&tx->sock, d, tx), 0);
    phx_connect_dispose(d);
}

static void deferred_connect(void)
{
    fx_t f;
    fx_init(&f);
    phx_endpoint_on_connect(&f.ep, later_connect, NULL);
    static const char uri[] = "/socket/websocket";
    for (int round = 0; round < 3; round++) {
        const char *query = round == 2 ? "vsn=2.0.0&early=1" : "vsn=2.0.0&x=1";
        fake_tx_t tx;
        memset(&tx, 0, sizeof(tx));
        phx_connect_t ci;
        phx_connect_init(&ci, &f.ep, &fake_ops, "127.0.0.1", 40000, uri, sizeof(uri) - 1, query,
                         strlen(query), NULL, NULL);
        connect_result = -1;
        ASSERT_EQ(phx_endpoint_connect(&f.ep, &ci), PHX_ERR_AGAIN);
        phx_connect_t *d = ci.deferred;
        ASSERT(d != NULL);
        ci.deferred = NULL;
        phx_connect_dispose(&ci);
        phx_connect_park(d, connect_continued, &tx, NULL);
        if (round == 2) {
            /* answered inside the callback: continued from the park */
            ASSERT_EQ(connect_result, PHX_CONNECT_OK);
            ASSERT_STR_EQ(phx_socket_id(tx.sock), "users_socket:9");
            tx_peer_gone(&tx);
            continue;
        }
        ASSERT_EQ(connect_result, -1);
        ASSERT(connect_pending == d);
        ASSERT_EQ(phx_connect_assign(d, "user_id", "5"), 0);
        if (round == 1) {
            /* the client went away first: the answer is dropped */
            phx_connect_orphan(d);
            phx_connect_resume(d, PHX_CONNECT_OK);
            ASSERT_EQ(connect_result, -1);
            continue;
        }
        phx_connect_resume(d, PHX_CONNECT_OK);
        ASSERT_EQ(connect_result, PHX_CONNECT_OK);
        ASSERT_STR_EQ(phx_socket_assign(tx.sock, "user_id"), "5");
        tx_peer_gone(&tx);
    }
    fx_done(&f);
}

const phx_test_t phx_tests_socket[] = {
    {"heartbeat_is_answered", heartbeat_is_answered},
    {"join_ok_replies_and_subscribes", join_ok_replies_and_subscribes},
    {"join_of_unmatched_topic_is_an_error", join_of_unmatched_topic_is_an_error},
    {"socket_id_topics_cannot_be_joined", socket_id_topics_cannot_be_joined},
    {"join_refused_by_the_handler", join_refused_by_the_handler},
    {"duplicate_join_closes_the_old_instance", duplicate_join_closes_the_old_instance},
    {"duplicate_join_at_the_channel_limit", duplicate_join_at_the_channel_limit},
    {"events_reach_handle_in_and_are_replied", events_reach_handle_in_and_are_replied},
    {"leave_replies_ok_then_closes", leave_replies_ok_then_closes},
    {"broadcasts_between_sockets", broadcasts_between_sockets},
    {"server_disconnect_by_id_closes_with_1001", server_disconnect_by_id_closes_with_1001},
    {"disconnect_during_own_message", disconnect_during_own_message},
    {"slow_consumer_closed_during_a_broadcast", slow_consumer_closed_during_a_broadcast},
    {"undecodable_input_closes_with_1011", undecodable_input_closes_with_1011},
    {"v1_json_replies_as_objects", v1_json_replies_as_objects},
    {"connect_refusals", connect_refusals},
    {"channel_limit_refuses_a_join", channel_limit_refuses_a_join},
    {"socket_closed_terminates_its_channels", socket_closed_terminates_its_channels},
    {"deferred_join_and_events_keep_their_order", deferred_join_and_events_keep_their_order},
    {"deferred_join_refused_and_leave_waits", deferred_join_refused_and_leave_waits},
    {"waiting_messages_are_bounded", waiting_messages_are_bounded},
    {"socket_closing_while_deferred", socket_closing_while_deferred},
    {"deferred_connect", deferred_connect},
    {NULL, NULL},
};
