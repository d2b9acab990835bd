/* Unit tests for presence_msg.c and presence_cluster.c: the replication
 * messages (round trips, every truncation, hostile fields) and the merge
 * logic on one node, driven through the PubSub's node-message seam with a
 * fake backend that records what the node sends (no Redis, no running
 * loop: time is passed to the tick). Covered: another node's joins and
 * leaves become this node's presence_state and coalesced presence_diff,
 * local changes leave as numbered deltas, gaps ask for the state, a state
 * in parts replaces what it does not name, silence, goodbye and a restart
 * end a node's presences, the bounds apply to other nodes' joins, this
 * node's whole state goes out in parts, and the goodbye on closing. */
#include "presence_cluster.h"

#include <stdio.h>
#include <string.h>

#include <uv.h>

#include "channel.h"
#include "endpoint.h"
#include "loop.h"
#include "phx.h"
#include "presence.h"
#include "presence_msg.h"
#include "pubsub.h"
#include "runner.h"
#include "socket.h"

/* ---- the messages ---- */

static const phx_pmsg_op_t JOIN_A = {
    .kind = PHX_PMSG_JOIN,
    .topic = "room:1",
    .topic_len = 6,
    .key = "ann",
    .key_len = 3,
    .ref = "refA",
    .ref_len = 4,
    .prev_ref = "old",
    .prev_ref_len = 3,
    .meta = "{\"x\":1}",
    .meta_len = 7,
};
static const phx_pmsg_op_t LEAVE_B = {
    .kind = PHX_PMSG_LEAVE,
    .topic = "room:2",
    .topic_len = 6,
    .key = "bob",
    .key_len = 3,
    .ref = "refB",
    .ref_len = 4,
};

static const phx_pmsg_limits_t LIM = {.max_topic = 64, .max_meta = 64, .json = {.max_depth = 8}};

static void build(phx_buf_t *b, phx_pmsg_type_t type, const char *node, uint64_t inc, uint64_t seq)
{
    b->len = 0;
    ASSERT_EQ(phx_pmsg_put_head(b, type, node, strlen(node), inc, seq), 0);
}

static void op_eq(const phx_pmsg_op_t *a, const phx_pmsg_op_t *b)
{
    ASSERT_EQ(a->kind, b->kind);
    ASSERT_MEM_EQ(a->topic, a->topic_len, b->topic, b->topic_len);
    ASSERT_MEM_EQ(a->key, a->key_len, b->key, b->key_len);
    ASSERT_MEM_EQ(a->ref, a->ref_len, b->ref, b->ref_len);
    if (a->kind == PHX_PMSG_JOIN) {
        ASSERT_MEM_EQ(a->prev_ref, a->prev_ref_len, b->prev_ref, b->prev_ref_len);
        ASSERT_MEM_EQ(a->meta, a->meta_len, b->meta, b->meta_len);
    }
}

static void msg_roundtrip_and_truncations(void)
{
    phx_buf_t b = {0};
    phx_pmsg_t m;
    /* A delta of two ops. */
    build(&b, PHX_PMSG_DELTA, "node-1", 0x0102030405060708ULL, 42);
    ASSERT_EQ(b.len, 3 + 6 + 16);
    ASSERT_EQ(phx_pmsg_put_op(&b, &JOIN_A), 0);
    size_t first_end = b.len;
    ASSERT_EQ(first_end - 25, phx_pmsg_op_size(&JOIN_A));
    ASSERT_EQ(phx_pmsg_put_op(&b, &LEAVE_B), 0);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), 0);
    ASSERT_EQ(m.type, PHX_PMSG_DELTA);
    ASSERT_MEM_EQ(m.node, m.node_len, "node-1", 6);
    ASSERT(m.incarnation == 0x0102030405060708ULL);
    ASSERT_EQ(m.seq, 42);
    ASSERT_EQ(m.nops, 2);
    size_t at = 0;
    phx_pmsg_op_t op;
    ASSERT(phx_pmsg_next_op(&m, &at, &op));
    op_eq(&op, &JOIN_A);
    ASSERT(phx_pmsg_next_op(&m, &at, &op));
    op_eq(&op, &LEAVE_B);
    ASSERT(!phx_pmsg_next_op(&m, &at, &op));
    /* Every shorter prefix is refused, but the one ending after an op. */
    for (size_t n = 0; n < b.len; n++)
        ASSERT_EQ(phx_pmsg_decode(b.data, n, &LIM, &m), n == first_end ? 0 : PHX_ERR_PROTO);
    /* The other types. */
    build(&b, PHX_PMSG_HEARTBEAT, "n", 1, 7);
    ASSERT_EQ(phx_pmsg_put_u32(&b, 123456), 0);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), 0);
    ASSERT_EQ(m.type, PHX_PMSG_HEARTBEAT);
    ASSERT_EQ(m.count, 123456);
    ASSERT_EQ(m.seq, 7);
    build(&b, PHX_PMSG_STATE_REQ, "n", 1, 0);
    ASSERT_EQ(phx_pmsg_put_target(&b, NULL, 0), 0);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), 0);
    ASSERT(m.target == NULL);
    build(&b, PHX_PMSG_STATE_REQ, "n", 1, 0);
    ASSERT_EQ(phx_pmsg_put_target(&b, "other@host", 10), 0);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), 0);
    ASSERT_MEM_EQ(m.target, m.target_len, "other@host", 10);
    build(&b, PHX_PMSG_STATE, "n", 1, 9);
    ASSERT_EQ(phx_pmsg_put_u32(&b, 3), 0);
    ASSERT_EQ(phx_pmsg_put_u8(&b, 1), 0);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), 0); /* an empty state */
    ASSERT_EQ(m.part, 3);
    ASSERT(m.is_last);
    ASSERT_EQ(m.nops, 0);
    ASSERT_EQ(phx_pmsg_put_op(&b, &JOIN_A), 0);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), 0);
    ASSERT_EQ(m.nops, 1);
    build(&b, PHX_PMSG_GOODBYE, "n", 1, 9);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), 0);
    ASSERT_EQ(m.type, PHX_PMSG_GOODBYE);
    phx_buf_dispose(&b);
}

/* A delta of one join with `op` changed by the caller: refused. */
static void refused_op(phx_pmsg_op_t op)
{
    phx_buf_t b = {0};
    phx_pmsg_t m;
    build(&b, PHX_PMSG_DELTA, "n", 1, 1);
    if (phx_pmsg_put_op(&b, &op) == 0)
        ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), PHX_ERR_PROTO);
    phx_buf_dispose(&b);
}

static void msg_refuses_hostile_fields(void)
{
    phx_buf_t b = {0};
    phx_pmsg_t m;
    phx_pmsg_op_t op = JOIN_A;
    op.ref = "a/b", op.ref_len = 3; /* outside the URL-safe alphabet */
    refused_op(op);
    op = JOIN_A, op.ref_len = 0;
    refused_op(op);
    op = JOIN_A, op.prev_ref = "x=", op.prev_ref_len = 2;
    refused_op(op);
    op = JOIN_A, op.meta = "[1]", op.meta_len = 3;
    refused_op(op);
    op = JOIN_A, op.meta = "{\"phx_ref\":\"x\"}", op.meta_len = 15;
    refused_op(op);
    op = JOIN_A, op.meta = "{\"phx_ref_prev\":1}", op.meta_len = 18;
    refused_op(op);
    op = JOIN_A, op.meta = "{\"a\":1", op.meta_len = 6;
    refused_op(op);
    op = JOIN_A, op.meta = "{\"a\":[[[[[[[[[[1]]]]]]]]]]}", op.meta_len = 26; /* too deep */
    refused_op(op);
    char big[80];
    memset(big, 'a', sizeof(big));
    big[0] = '{', big[1] = '"', big[77] = '"', big[78] = ':', big[79] = '}';
    op = JOIN_A, op.meta = big, op.meta_len = sizeof(big); /* over max_meta */
    refused_op(op);
    op = JOIN_A, op.key = "\xff", op.key_len = 1;
    refused_op(op);
    op = JOIN_A, op.key = "a\0b", op.key_len = 3;
    refused_op(op);
    op = JOIN_A, op.topic_len = 0;
    refused_op(op);
    op = JOIN_A, op.topic = big, op.topic_len = 65;
    refused_op(op);
    /* A state carries joins only; a delta has ops; no trailing bytes. */
    build(&b, PHX_PMSG_STATE, "n", 1, 1);
    phx_pmsg_put_u32(&b, 0);
    phx_pmsg_put_u8(&b, 1);
    phx_pmsg_put_op(&b, &LEAVE_B);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), PHX_ERR_PROTO);
    build(&b, PHX_PMSG_STATE, "n", 1, 1);
    phx_pmsg_put_u32(&b, 0);
    phx_pmsg_put_u8(&b, 2); /* unknown flag */
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), PHX_ERR_PROTO);
    build(&b, PHX_PMSG_DELTA, "n", 1, 1);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), PHX_ERR_PROTO);
    build(&b, PHX_PMSG_GOODBYE, "n", 1, 1);
    phx_pmsg_put_u8(&b, 0);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), PHX_ERR_PROTO);
    build(&b, PHX_PMSG_STATE_REQ, "n", 1, 1);
    phx_pmsg_put_target(&b, "a b", 3);
    ASSERT_EQ(phx_pmsg_decode(b.data, b.len, &LIM, &m), PHX_ERR_PROTO);
    /* Header fields: version, type, node name, incarnation 0. */
    build(&b, PHX_PMSG_GOODBYE, "n", 1, 1);
    for (int i = 0; i < 4; i++) {
        uint8_t copy[64];
        memcpy(copy, b.data, b.len);
        if (i == 0)
            copy[0] = 2;
        else if (i == 1)
            copy[1] = 6;
        else if (i == 2)
            copy[3] = ' ';
        else
            memset(copy + 4, 0, 8);
        ASSERT_EQ(phx_pmsg_decode(copy, b.len, &LIM, &m), PHX_ERR_PROTO);
    }
    b.len = 0;
    ASSERT_EQ(phx_pmsg_put_head(&b, PHX_PMSG_GOODBYE, "bad name", 8, 1, 1), PHX_ERR_INVALID);
    ASSERT_EQ(phx_pmsg_put_head(&b, PHX_PMSG_GOODBYE, "n", 1, 0, 1), PHX_ERR_INVALID);
    phx_buf_dispose(&b);
}

/* ---- one node with a fake backend ---- */

#define SENT_MAX 64

typedef struct sent {
    char to[64]; /* "" = every node */
    phx_buf_t data;
} sent_t;

typedef struct fake {
    sent_t sent[SENT_MAX];
    int n;
    bool is_down;
} fake_t;

static int fake_send(void *be, const char *to, size_t to_len, const void *data, size_t len)
{
    fake_t *f = be;
    if (f->is_down)
        return PHX_ERR_STATE;
    ASSERT(f->n < SENT_MAX && to_len < 64);
    sent_t *s = &f->sent[f->n++];
    memset(s->to, 0, sizeof(s->to));
    if (to)
        memcpy(s->to, to, to_len);
    s->data = (phx_buf_t){0};
    ASSERT_EQ(phx_buf_append(&s->data, data, len), 0);
    return 0;
}

static const char *fake_name(void *be)
{
    (void)be;
    return "self";
}

static const phx_pubsub_backend_t fake_ops = {.node_send = fake_send, .node_name = fake_name};

/* Sent message i, decoded. */
static phx_pmsg_t sent_msg(fake_t *f, int i)
{
    ASSERT(i < f->n);
    phx_pmsg_t m;
    ASSERT_EQ(phx_pmsg_decode(f->sent[i].data.data, f->sent[i].data.len, NULL, &m), 0);
    return m;
}

static void fake_clear(fake_t *f)
{
    for (int i = 0; i < f->n; i++)
        phx_buf_dispose(&f->sent[i].data);
    f->n = 0;
}

/* A transport keeping the last few frames of its socket. */
#define TX_MAX 8

typedef struct tx {
    phx_socket_t *sock;
    phx_buf_t msgs[TX_MAX];
    int n;
} tx_t;

static int tx_send(void *t, phx_rcbuf_t *msg)
{
    tx_t *tx = t;
    phx_buf_t *b = &tx->msgs[tx->n++ % TX_MAX];
    b->len = 0;
    ASSERT_EQ(phx_buf_append(b, msg->data + msg->payload_off, msg->len - msg->payload_off), 0);
    ASSERT_EQ(phx_buf_append_byte(b, 0), 0);
    phx_rcbuf_unref(msg);
    return 0;
}

static void tx_close(void *t, int code)
{
    (void)t, (void)code;
}

static const phx_transport_ops_t tx_ops = {.name = "fake", .send = tx_send, .close = tx_close};

static const char *last(const tx_t *tx)
{
    ASSERT(tx->n > 0);
    return (const char *)tx->msgs[(tx->n - 1) % TX_MAX].data;
}

/* Joins track params {"key":K} with the meta `join_meta`; {} only watch. */
static const char *join_meta = "{}";

static phx_result_t pjoin(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                          phx_reply_t *reply, void *user)
{
    (void)topic, (void)reply, (void)user;
    char buf[256], key[64] = "";
    snprintf(buf, sizeof(buf), "%.*s", (int)params->len, (const char *)params->data);
    const char *k = strstr(buf, "\"key\":\"");
    if (k) {
        sscanf(k + 7, "%63[^\"]", key);
        phx_presence_track(ch, key, join_meta);
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
    fake_t be;
    phx_pcluster_t *c;
    uint64_t t0;
} fx_t;

static void fx_init(fx_t *f)
{
    memset(f, 0, sizeof(*f));
    ASSERT_EQ(uv_loop_init(&f->uv), 0);
    phx_config_init(&f->cfg);
    f->cfg.presence_max_keys = 100;
    f->cfg.presence_max_meta_bytes = 1024;
    ASSERT_EQ(phx_loop_init(&f->loop, &f->uv, &f->cfg), 0);
    char err[PHX_ERR_LEN] = "";
    ASSERT_EQ(phx_endpoint_init(&f->ep, &f->loop, &f->cfg, err), 0);
    ASSERT_EQ(phx_endpoint_add_route(&f->ep, "room:*", &handler, NULL), 0);
    phx_pubsub_set_backend(f->ep.pubsub, &fake_ops, &f->be);
    f->c = phx_presence_cluster(f->ep.presence);
    f->t0 = uv_now(&f->uv);
    phx_pubsub_node_link(f->ep.pubsub, PHX_NODE_LINK_UP);
}

static void fx_done(fx_t *f)
{
    phx_presence_flush(f->ep.presence);
    phx_endpoint_dispose(&f->ep);
    phx_loop_dispose(&f->loop);
    fake_clear(&f->be);
    ASSERT_EQ(uv_loop_close(&f->uv), 0);
}

static void connect_tx(fx_t *f, tx_t *tx)
{
    memset(tx, 0, sizeof(*tx));
    static const char uri[] = "/socket/websocket", q[] = "vsn=2.0.0";
    phx_connect_t ci;
    phx_connect_init(&ci, &f->ep, &tx_ops, "127.0.0.1", 1, uri, sizeof(uri) - 1, q, sizeof(q) - 1,
                     NULL, NULL);
    phx_endpoint_on_connect(&f->ep, NULL, NULL);
    ci.fmt = PHX_FMT_V2_JSON;
    ASSERT_EQ(phx_socket_new(&tx->sock, &ci, tx), 0);
    phx_connect_dispose(&ci);
}

static void feed(tx_t *tx, const char *text)
{
    char buf[512];
    size_t len = strlen(text);
    memcpy(buf, text, len);
    phx_socket_handle(tx->sock, false, (uint8_t *)buf, len);
}

static void gone(tx_t *tx)
{
    phx_socket_closed(tx->sock);
    tx->sock = NULL;
    for (int i = 0; i < TX_MAX; i++)
        phx_buf_dispose(&tx->msgs[i]);
}

/* Delivers a message from another node. */
static void inject(fx_t *f, const phx_buf_t *b)
{
    phx_pubsub_node_message(f->ep.pubsub, b->data, b->len);
}

static void put_join(phx_buf_t *b, const char *topic, const char *key, const char *ref,
                     const char *meta)
{
    phx_pmsg_op_t op = {.kind = PHX_PMSG_JOIN,
                        .topic = topic,
                        .topic_len = strlen(topic),
                        .key = key,
                        .key_len = strlen(key),
                        .ref = ref,
                        .ref_len = strlen(ref),
                        .meta = meta,
                        .meta_len = strlen(meta)};
    ASSERT_EQ(phx_pmsg_put_op(b, &op), 0);
}

static void put_leave(phx_buf_t *b, const char *topic, const char *key, const char *ref)
{
    phx_pmsg_op_t op = {.kind = PHX_PMSG_LEAVE,
                        .topic = topic,
                        .topic_len = strlen(topic),
                        .key = key,
                        .key_len = strlen(key),
                        .ref = ref,
                        .ref_len = strlen(ref)};
    ASSERT_EQ(phx_pmsg_put_op(b, &op), 0);
}

static void list_is(fx_t *f, const char *topic, const char *want)
{
    phx_buf_t b = {0};
    ASSERT_EQ(phx_presence_list_json(f->ep.presence, topic, strlen(topic), &b), 0);
    ASSERT_EQ(phx_buf_append_byte(&b, 0), 0);
    ASSERT_STR_EQ((const char *)b.data, want);
    phx_buf_dispose(&b);
}

static void link_up_asks_everyone_and_beats(void)
{
    fx_t f;
    fx_init(&f);
    /* The link came up: a state request to every node, then a heartbeat. */
    ASSERT_EQ(f.be.n, 2);
    phx_pmsg_t m = sent_msg(&f.be, 0);
    ASSERT_EQ(m.type, PHX_PMSG_STATE_REQ);
    ASSERT(m.target == NULL);
    ASSERT_STR_EQ(f.be.sent[0].to, "");
    m = sent_msg(&f.be, 1);
    ASSERT_EQ(m.type, PHX_PMSG_HEARTBEAT);
    ASSERT_EQ(m.count, 0);
    ASSERT_EQ(m.seq, 0);
    ASSERT_MEM_EQ(m.node, m.node_len, "self", 4);
    /* The next heartbeat is due after the interval. */
    uint64_t next = phx_pcluster_tick(f.c, f.t0 + 1);
    ASSERT_EQ(f.be.n, 2);
    ASSERT(next == f.t0 + PHX_PCLUSTER_HEARTBEAT_MS);
    phx_pcluster_tick(f.c, next);
    ASSERT_EQ(f.be.n, 3);
    ASSERT_EQ(sent_msg(&f.be, 2).type, PHX_PMSG_HEARTBEAT);
    fx_done(&f);
}

static void local_changes_leave_as_numbered_deltas(void)
{
    fx_t f;
    fx_init(&f);
    fake_clear(&f.be);
    tx_t a;
    connect_tx(&f, &a);
    join_meta = "{\"s\":\"here\"}";
    feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{\"key\":\"ann\"}]");
    ASSERT_EQ(f.be.n, 0); /* once per loop turn */
    phx_pcluster_before_flush(f.c);
    ASSERT_EQ(f.be.n, 1);
    phx_pmsg_t m = sent_msg(&f.be, 0);
    ASSERT_EQ(m.type, PHX_PMSG_DELTA);
    ASSERT_EQ(m.seq, 1);
    ASSERT_EQ(m.nops, 1);
    size_t at = 0;
    phx_pmsg_op_t op;
    ASSERT(phx_pmsg_next_op(&m, &at, &op));
    ASSERT_EQ(op.kind, PHX_PMSG_JOIN);
    ASSERT_MEM_EQ(op.key, op.key_len, "ann", 3);
    ASSERT_MEM_EQ(op.meta, op.meta_len, "{\"s\":\"here\"}", 12);
    ASSERT_EQ(op.ref_len, 16);
    /* An update: the leave then the join with phx_ref_prev, one delta. */
    char ref[32];
    memcpy(ref, op.ref, op.ref_len);
    ref[op.ref_len] = '\0';
    ASSERT_EQ(phx_presence_track(a.sock->channels, "ann", "{\"s\":\"away\"}"), 0);
    phx_pcluster_before_flush(f.c);
    m = sent_msg(&f.be, 1);
    ASSERT_EQ(m.seq, 2);
    ASSERT_EQ(m.nops, 2);
    at = 0;
    ASSERT(phx_pmsg_next_op(&m, &at, &op));
    ASSERT_EQ(op.kind, PHX_PMSG_LEAVE);
    ASSERT_MEM_EQ(op.ref, op.ref_len, ref, strlen(ref));
    ASSERT(phx_pmsg_next_op(&m, &at, &op));
    ASSERT_EQ(op.kind, PHX_PMSG_JOIN);
    ASSERT_MEM_EQ(op.prev_ref, op.prev_ref_len, ref, strlen(ref));
    /* Changes while the link is down cannot go: the number skips one, so
     * the heartbeat after the link is back shows the gap. */
    phx_pubsub_node_link(f.ep.pubsub, PHX_NODE_LINK_DOWN);
    gone(&a);
    phx_pcluster_before_flush(f.c);
    ASSERT_EQ(f.be.n, 2);
    phx_pubsub_node_link(f.ep.pubsub, PHX_NODE_LINK_UP);
    m = sent_msg(&f.be, f.be.n - 1);
    ASSERT_EQ(m.type, PHX_PMSG_HEARTBEAT);
    ASSERT_EQ(m.seq, 3);
    ASSERT_EQ(m.count, 0);
    join_meta = "{}";
    fx_done(&f);
}

static void remote_joins_and_leaves_make_state_and_diffs(void)
{
    fx_t f;
    fx_init(&f);
    tx_t a;
    connect_tx(&f, &a);
    feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    fake_clear(&f.be);
    phx_buf_t b = {0};
    build(&b, PHX_PMSG_DELTA, "peer", 77, 1);
    put_join(&b, "room:1", "bob", "bobref1", "{\"a\": 1}");
    put_join(&b, "room:1", "bob", "bobref2", "{}");
    inject(&f, &b);
    /* An unknown node: its state is asked for on its node channel. */
    ASSERT_EQ(f.be.n, 1);
    ASSERT_STR_EQ(f.be.sent[0].to, "peer");
    phx_pmsg_t m = sent_msg(&f.be, 0);
    ASSERT_EQ(m.type, PHX_PMSG_STATE_REQ);
    ASSERT_MEM_EQ(m.target, m.target_len, "peer", 4);
    phx_presence_flush(f.ep.presence);
    ASSERT_STR_EQ(last(&a),
                  "[null,null,\"room:1\",\"presence_diff\",{\"joins\":{\"bob\":{\"metas\":"
                  "[{\"a\":1,\"phx_ref\":\"bobref1\"},{\"phx_ref\":\"bobref2\"}]}},"
                  "\"leaves\":{}}]");
    list_is(&f, "room:1",
            "{\"bob\":{\"metas\":[{\"a\":1,\"phx_ref\":\"bobref1\"},{\"phx_ref\":"
            "\"bobref2\"}]}}");
    ASSERT_EQ(phx_presence_remote_count(f.ep.presence), 2);
    ASSERT_EQ(phx_presence_local_count(f.ep.presence), 0);
    ASSERT_EQ(f.loop.stats.presences, 0);
    /* A joining channel's presence_state holds the other node's. */
    tx_t c;
    connect_tx(&f, &c);
    join_meta = "{}";
    feed(&c, "[\"1\",\"1\",\"room:1\",\"phx_join\",{\"key\":\"cat\"}]");
    ASSERT(strstr(last(&c), "\"presence_state\",{\"bob\":{\"metas\":[{\"a\":1,") != NULL);
    ASSERT(strstr(last(&c), "\"cat\":{\"metas\":[{\"phx_ref\":\"") != NULL);
    /* The same join again (a state repeating it) changes nothing. */
    build(&b, PHX_PMSG_DELTA, "peer", 77, 2);
    put_join(&b, "room:1", "bob", "bobref1", "{\"a\":1}");
    put_leave(&b, "room:1", "bob", "bobref2");
    put_leave(&b, "room:1", "nobody", "noref"); /* unknown: ignored */
    inject(&f, &b);
    phx_presence_flush(f.ep.presence);
    ASSERT(strstr(last(&a), "\"leaves\":{\"bob\":{\"metas\":[{\"phx_ref\":\"bobref2\"}]}}") !=
           NULL);
    ASSERT(strstr(last(&a), "\"joins\":{\"cat\"") != NULL);
    ASSERT(strstr(last(&a), "bobref1") == NULL);
    ASSERT_EQ(phx_presence_remote_count(f.ep.presence), 1);
    /* A remote join and its own leave within one window cancel. */
    int before = a.n;
    build(&b, PHX_PMSG_DELTA, "peer", 77, 3);
    put_join(&b, "room:1", "dan", "danref", "{}");
    inject(&f, &b);
    build(&b, PHX_PMSG_DELTA, "peer", 77, 4);
    put_leave(&b, "room:1", "dan", "danref");
    inject(&f, &b);
    phx_presence_flush(f.ep.presence);
    ASSERT_EQ(a.n, before);
    const phx_pcluster_stats_t *st = phx_pcluster_stats(f.c);
    ASSERT_EQ(st->msgs_in, 4);
    ASSERT_EQ(st->dropped, 0);
    ASSERT_EQ(phx_pcluster_node_count(f.c), 1);
    phx_buf_dispose(&b);
    gone(&a);
    gone(&c);
    fx_done(&f);
}

static void gaps_ask_for_the_state_which_replaces(void)
{
    fx_t f;
    fx_init(&f);
    phx_buf_t b = {0};
    build(&b, PHX_PMSG_DELTA, "peer", 5, 10);
    put_join(&b, "room:1", "old", "oldref", "{}");
    put_join(&b, "room:1", "kept", "keptref", "{}");
    inject(&f, &b);
    fake_clear(&f.be);
    /* The state, in two parts: kept and new; old is not named: it leaves. */
    build(&b, PHX_PMSG_STATE, "peer", 5, 11);
    phx_pmsg_put_u32(&b, 0);
    phx_pmsg_put_u8(&b, 0);
    put_join(&b, "room:1", "kept", "keptref", "{}");
    inject(&f, &b);
    build(&b, PHX_PMSG_STATE, "peer", 5, 11);
    phx_pmsg_put_u32(&b, 1);
    phx_pmsg_put_u8(&b, 1);
    put_join(&b, "room:2", "new", "newref", "{}");
    inject(&f, &b);
    ASSERT_EQ(f.be.n, 0); /* synced: nothing asked */
    list_is(&f, "room:1", "{\"kept\":{\"metas\":[{\"phx_ref\":\"keptref\"}]}}");
    list_is(&f, "room:2", "{\"new\":{\"metas\":[{\"phx_ref\":\"newref\"}]}}");
    /* A heartbeat that agrees asks nothing; one that counts otherwise does. */
    build(&b, PHX_PMSG_HEARTBEAT, "peer", 5, 11);
    phx_pmsg_put_u32(&b, 2);
    inject(&f, &b);
    ASSERT_EQ(f.be.n, 0);
    build(&b, PHX_PMSG_HEARTBEAT, "peer", 5, 11);
    phx_pmsg_put_u32(&b, 3);
    inject(&f, &b);
    ASSERT_EQ(f.be.n, 1);
    ASSERT_EQ(sent_msg(&f.be, 0).type, PHX_PMSG_STATE_REQ);
    /* Asked again only after the retry time (the tick does it). */
    inject(&f, &b);
    ASSERT_EQ(f.be.n, 1);
    phx_pcluster_tick(f.c, f.t0 + PHX_PCLUSTER_RETRY_MS);
    ASSERT_EQ(f.be.n, 2);
    ASSERT_STR_EQ(f.be.sent[1].to, "peer");
    /* A part that does not follow is dropped and asks again. */
    build(&b, PHX_PMSG_STATE, "peer", 5, 12);
    phx_pmsg_put_u32(&b, 1);
    phx_pmsg_put_u8(&b, 1);
    inject(&f, &b);
    /* An empty last part: everything of the node leaves. */
    build(&b, PHX_PMSG_STATE, "peer", 5, 12);
    phx_pmsg_put_u32(&b, 0);
    phx_pmsg_put_u8(&b, 1);
    inject(&f, &b);
    ASSERT_EQ(phx_presence_remote_count(f.ep.presence), 0);
    int n = f.be.n;
    /* A delta that skips a number asks at once (the last request was answered). */
    build(&b, PHX_PMSG_DELTA, "peer", 5, 14);
    put_join(&b, "room:1", "x", "xref", "{}");
    inject(&f, &b);
    ASSERT_EQ(f.be.n, n + 1);
    ASSERT_EQ(sent_msg(&f.be, n).type, PHX_PMSG_STATE_REQ);
    /* A state from a node nobody asked (an answer to a request to all)
     * whose last part is lost is asked for again by the tick. */
    build(&b, PHX_PMSG_STATE, "other", 6, 1);
    phx_pmsg_put_u32(&b, 0);
    phx_pmsg_put_u8(&b, 0);
    put_join(&b, "room:1", "o", "oref", "{}");
    inject(&f, &b);
    n = f.be.n;
    phx_pcluster_tick(f.c, f.t0 + PHX_PCLUSTER_RETRY_MS - 1);
    ASSERT_EQ(f.be.n, n);
    phx_pcluster_tick(f.c, f.t0 + PHX_PCLUSTER_RETRY_MS);
    ASSERT(f.be.n > n);
    ASSERT_STR_EQ(f.be.sent[f.be.n - 1].to, "other");
    ASSERT_EQ(sent_msg(&f.be, f.be.n - 1).type, PHX_PMSG_STATE_REQ);
    phx_buf_dispose(&b);
    fx_done(&f);
}

static void silence_goodbye_and_restart_end_a_node(void)
{
    fx_t f;
    fx_init(&f);
    tx_t a;
    connect_tx(&f, &a);
    feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{}]");
    phx_buf_t b = {0};
    build(&b, PHX_PMSG_DELTA, "quiet", 1, 1);
    put_join(&b, "room:1", "q", "qref", "{}");
    inject(&f, &b);
    build(&b, PHX_PMSG_DELTA, "polite", 2, 1);
    put_join(&b, "room:1", "p", "pref", "{}");
    inject(&f, &b);
    build(&b, PHX_PMSG_DELTA, "phoenix", 3, 1);
    put_join(&b, "room:1", "r", "rref", "{}");
    inject(&f, &b);
    phx_presence_flush(f.ep.presence);
    ASSERT_EQ(phx_pcluster_node_count(f.c), 3);
    /* polite says goodbye: its presences leave at once. */
    build(&b, PHX_PMSG_GOODBYE, "polite", 2, 1);
    inject(&f, &b);
    phx_presence_flush(f.ep.presence);
    ASSERT(strstr(last(&a), "\"leaves\":{\"p\":") != NULL);
    ASSERT_EQ(phx_pcluster_node_count(f.c), 2);
    ASSERT_EQ(phx_pcluster_stats(f.c)->goodbyes, 1);
    /* phoenix restarts (another incarnation): its old presences leave. */
    build(&b, PHX_PMSG_HEARTBEAT, "phoenix", 4, 0);
    phx_pmsg_put_u32(&b, 0);
    inject(&f, &b);
    phx_presence_flush(f.ep.presence);
    ASSERT(strstr(last(&a), "\"leaves\":{\"r\":") != NULL);
    ASSERT_EQ(phx_pcluster_node_count(f.c), 2);
    /* quiet and phoenix fall silent: down after the window, not before. */
    phx_pcluster_tick(f.c, f.t0 + PHX_PCLUSTER_DOWN_MS - 1);
    ASSERT_EQ(phx_pcluster_node_count(f.c), 2);
    phx_pcluster_tick(f.c, f.t0 + PHX_PCLUSTER_DOWN_MS);
    ASSERT_EQ(phx_pcluster_node_count(f.c), 0);
    ASSERT_EQ(phx_pcluster_stats(f.c)->nodes_down, 2);
    phx_presence_flush(f.ep.presence);
    ASSERT(strstr(last(&a), "\"leaves\":{\"q\":") != NULL);
    list_is(&f, "room:1", "{}");
    /* A goodbye from a node never seen is nothing. */
    build(&b, PHX_PMSG_GOODBYE, "stranger", 9, 1);
    inject(&f, &b);
    ASSERT_EQ(phx_pcluster_node_count(f.c), 0);
    phx_buf_dispose(&b);
    gone(&a);
    fx_done(&f);
}

static void bounds_apply_to_other_nodes(void)
{
    fx_t f;
    fx_init(&f);
    f.cfg.presence_max_keys = 2;
    f.cfg.presence_max_metas = 1;
    f.cfg.presence_max_remote = 3;
    phx_buf_t b = {0};
    build(&b, PHX_PMSG_DELTA, "big", 1, 1);
    put_join(&b, "room:1", "k1", "r1", "{}");
    put_join(&b, "room:1", "k1", "r2", "{}"); /* metas per key */
    put_join(&b, "room:1", "k2", "r3", "{}");
    put_join(&b, "room:1", "k3", "r4", "{}"); /* keys per topic */
    put_join(&b, "room:2", "k1", "r5", "{}");
    put_join(&b, "room:3", "k1", "r6", "{}"); /* other nodes' metas in all */
    inject(&f, &b);
    ASSERT_EQ(phx_presence_remote_count(f.ep.presence), 3);
    ASSERT_EQ(phx_pcluster_stats(f.c)->refused, 3);
    /* Over the message bound, malformed, or this node's own name from
     * another process: dropped and counted. */
    phx_buf_t huge = {0};
    ASSERT_EQ(phx_buf_reserve(&huge, 2u << 20), 0);
    memset(huge.data, 1, 2u << 20);
    huge.len = 2u << 20;
    inject(&f, &huge);
    phx_buf_dispose(&huge);
    uint8_t junk[] = {1, 1, 0};
    phx_pubsub_node_message(f.ep.pubsub, junk, sizeof(junk));
    build(&b, PHX_PMSG_GOODBYE, "self", 12345, 1);
    inject(&f, &b);
    ASSERT_EQ(phx_pcluster_stats(f.c)->dropped, 3);
    /* This node's own messages, back from Redis, are skipped silently. */
    phx_buf_t own = f.be.sent[1].data;
    inject(&f, &own);
    ASSERT_EQ(phx_pcluster_stats(f.c)->dropped, 3);
    ASSERT_EQ(phx_pcluster_stats(f.c)->msgs_in, 1);
    /* At most PHX_PCLUSTER_MAX_NODES nodes. */
    for (int i = 0; i < PHX_PCLUSTER_MAX_NODES + 5; i++) {
        char name[32];
        snprintf(name, sizeof(name), "n%d", i);
        build(&b, PHX_PMSG_HEARTBEAT, name, 1, 0);
        phx_pmsg_put_u32(&b, 0);
        f.be.is_down = true; /* their state requests go nowhere */
        inject(&f, &b);
    }
    f.be.is_down = false;
    ASSERT_EQ(phx_pcluster_node_count(f.c), PHX_PCLUSTER_MAX_NODES);
    phx_buf_dispose(&b);
    fx_done(&f);
}

/* A join handler tracking every channel with a 1000-byte meta. */
static char big_meta[1001];

static void whole_state_goes_out_in_parts(void)
{
    fx_t f;
    fx_init(&f);
    f.cfg.presence_max_keys = 1000;
    memset(big_meta, 'm', sizeof(big_meta) - 1);
    memcpy(big_meta, "{\"m\":\"", 6);
    memcpy(big_meta + sizeof(big_meta) - 3, "\"}", 3);
    join_meta = big_meta;
    enum { N = 300 };
    static tx_t t[N];
    for (int i = 0; i < N; i++) {
        connect_tx(&f, &t[i]);
        char j[128];
        snprintf(j, sizeof(j), "[\"1\",\"1\",\"room:big\",\"phx_join\",{\"key\":\"u%d\"}]", i);
        feed(&t[i], j);
    }
    join_meta = "{}";
    ASSERT_EQ(phx_presence_local_count(f.ep.presence), N);
    phx_pcluster_before_flush(f.c); /* the deltas: two, over the chunk size */
    fake_clear(&f.be);
    phx_buf_t b = {0};
    build(&b, PHX_PMSG_STATE_REQ, "asker", 1, 0);
    phx_pmsg_put_target(&b, NULL, 0);
    inject(&f, &b);
    /* The answer, to the asker's node channel, in parts, then our own
     * request for its state. */
    ASSERT(f.be.n >= 3);
    int parts = 0;
    uint32_t metas = 0;
    uint64_t seq = 0;
    for (int i = 0; i < f.be.n; i++) {
        phx_pmsg_t m = sent_msg(&f.be, i);
        if (m.type != PHX_PMSG_STATE)
            continue;
        ASSERT_STR_EQ(f.be.sent[i].to, "asker");
        ASSERT_EQ(m.part, parts);
        ASSERT(f.be.sent[i].data.len <= 3 + 4 + 16 + 5 + PHX_PCLUSTER_CHUNK + 2048);
        metas += m.nops;
        seq = m.seq;
        parts++;
        ASSERT_EQ(m.is_last, metas == N);
    }
    ASSERT_EQ(parts, 2);
    ASSERT_EQ(metas, N);
    ASSERT_EQ(seq, 2);
    ASSERT_EQ(phx_pcluster_stats(f.c)->states_sent, 1);
    /* Asked again at once: not answered again (it retries later). */
    int n = f.be.n;
    inject(&f, &b);
    ASSERT_EQ(f.be.n, n);
    phx_buf_dispose(&b);
    for (int i = 0; i < N; i++)
        gone(&t[i]);
    fx_done(&f);
}

static void closing_says_goodbye_once(void)
{
    fx_t f;
    fx_init(&f);
    tx_t a;
    connect_tx(&f, &a);
    feed(&a, "[\"1\",\"1\",\"room:1\",\"phx_join\",{\"key\":\"ann\"}]");
    phx_pcluster_before_flush(f.c);
    fake_clear(&f.be);
    phx_pubsub_node_link(f.ep.pubsub, PHX_NODE_LINK_CLOSING);
    ASSERT_EQ(f.be.n, 1);
    phx_pmsg_t m = sent_msg(&f.be, 0);
    ASSERT_EQ(m.type, PHX_PMSG_GOODBYE);
    ASSERT_EQ(m.seq, 1);
    /* After it, nothing more goes out, and nothing is taken in. */
    gone(&a);
    phx_pcluster_before_flush(f.c);
    phx_pcluster_tick(f.c, f.t0 + 10 * PHX_PCLUSTER_HEARTBEAT_MS);
    phx_buf_t b = {0};
    build(&b, PHX_PMSG_DELTA, "peer", 1, 1);
    put_join(&b, "room:1", "k", "r", "{}");
    inject(&f, &b);
    ASSERT_EQ(f.be.n, 1);
    ASSERT_EQ(phx_presence_remote_count(f.ep.presence), 0);
    phx_buf_dispose(&b);
    fx_done(&f);
}

const phx_test_t phx_tests_presence_cluster[] = {
    {"msg_roundtrip_and_truncations", msg_roundtrip_and_truncations},
    {"msg_refuses_hostile_fields", msg_refuses_hostile_fields},
    {"link_up_asks_everyone_and_beats", link_up_asks_everyone_and_beats},
    {"local_changes_leave_as_numbered_deltas", local_changes_leave_as_numbered_deltas},
    {"remote_joins_and_leaves_make_state_and_diffs", remote_joins_and_leaves_make_state_and_diffs},
    {"gaps_ask_for_the_state_which_replaces", gaps_ask_for_the_state_which_replaces},
    {"silence_goodbye_and_restart_end_a_node", silence_goodbye_and_restart_end_a_node},
    {"bounds_apply_to_other_nodes", bounds_apply_to_other_nodes},
    {"whole_state_goes_out_in_parts", whole_state_goes_out_in_parts},
    {"closing_says_goodbye_once", closing_says_goodbye_once},
    {NULL, NULL},
};
