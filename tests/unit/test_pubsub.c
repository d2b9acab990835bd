/* Unit tests for pubsub.c on its own: fake subscribers (a phx_sub_t with a
 * deliver callback that records what it got) and a fake cluster backend
 * (publish, topic_up, topic_down recorded), no server, no socket. */
#include "pubsub.h"

#include <string.h>

#include <uv.h>

#include "loop.h"
#include "phx.h"
#include "runner.h"

typedef struct fake_sub {
    phx_sub_t sub;
    int got;
    int fmt;               /* the wire format it asks for */
    char last[256];        /* the last encoded message */
    bool unsubscribe_self; /* leaves during the walk */
    bool unsubscribe_other;
    struct fake_sub *other;
    phx_pubsub_t *ps;
} fake_sub_t;

static bool fake_deliver(phx_sub_t *sub, phx_fanout_t *f)
{
    fake_sub_t *fs = (fake_sub_t *)sub;
    phx_rcbuf_t *b = phx_fanout_encoded(f, fs->fmt);
    if (b == NULL)
        return false;
    fs->got++;
    size_t len = b->len - b->payload_off;
    size_t n = len < sizeof(fs->last) - 1 ? len : sizeof(fs->last) - 1;
    memcpy(fs->last, b->data + b->payload_off, n);
    fs->last[n] = '\0';
    if (fs->unsubscribe_self)
        phx_pubsub_unsubscribe(fs->ps, &fs->sub);
    if (fs->unsubscribe_other && fs->other)
        phx_pubsub_unsubscribe(fs->ps, &fs->other->sub);
    return true;
}

/* A socket's id subscription, as socket.c makes it: only disconnects. */
static bool fake_id_deliver(phx_sub_t *sub, phx_fanout_t *f)
{
    fake_sub_t *fs = (fake_sub_t *)sub;
    if (!phx_fanout_is_disconnect(f))
        return false;
    fs->got++;
    return true;
}

typedef struct fake_backend {
    int published, up, down;
    char last_topic[64];
    char last_event[64];
    uint64_t last_sender;
    uint32_t last_flags;
} fake_backend_t;

static int be_publish(void *be, const phx_bcast_t *b)
{
    fake_backend_t *f = be;
    f->published++;
    snprintf(f->last_topic, sizeof(f->last_topic), "%.*s", (int)b->topic_len, b->topic);
    snprintf(f->last_event, sizeof(f->last_event), "%.*s", (int)b->event_len, b->event);
    f->last_sender = b->origin.sender;
    f->last_flags = b->origin.flags;
    return 0;
}

static void be_up(void *be, const char *topic, size_t len)
{
    fake_backend_t *f = be;
    f->up++;
    snprintf(f->last_topic, sizeof(f->last_topic), "%.*s", (int)len, topic);
}

static void be_down(void *be, const char *topic, size_t len)
{
    fake_backend_t *f = be;
    f->down++;
    snprintf(f->last_topic, sizeof(f->last_topic), "%.*s", (int)len, topic);
}

static const phx_pubsub_backend_t fake_backend_ops = {
    .publish = be_publish, .topic_up = be_up, .topic_down = be_down};

typedef struct fx {
    uv_loop_t uv;
    phx_config_t cfg;
    phx_loop_t loop;
    phx_pubsub_t *ps;
} fx_t;

static void fx_init(fx_t *f)
{
    memset(f, 0, sizeof(*f));
    ASSERT_EQ(uv_loop_init(&f->uv), 0);
    phx_config_init(&f->cfg);
    ASSERT_EQ(phx_loop_init(&f->loop, &f->uv, &f->cfg), 0);
    ASSERT_EQ(phx_pubsub_new(&f->ps, &f->loop), 0);
}

static void fx_done(fx_t *f)
{
    ASSERT_EQ(phx_pubsub_topic_count(f->ps), 0);
    phx_pubsub_free(f->ps);
    phx_loop_dispose(&f->loop);
    ASSERT_EQ(uv_loop_close(&f->uv), 0);
}

static void sub_init(fake_sub_t *s, fx_t *f, int fmt)
{
    memset(s, 0, sizeof(*s));
    s->sub.deliver = fake_deliver;
    s->fmt = fmt;
    s->ps = f->ps;
}

static phx_bcast_t bcast(const char *topic, const char *event, const phx_payload_t *p)
{
    phx_bcast_t b = {topic, strlen(topic), event, strlen(event), p, {NULL, 0, 0}};
    return b;
}

static void delivers_once_per_subscriber_in_its_format(void)
{
    fx_t f;
    fx_init(&f);
    fake_sub_t v2a, v2b, v1, other;
    sub_init(&v2a, &f, PHX_FMT_V2_JSON);
    sub_init(&v2b, &f, PHX_FMT_V2_JSON);
    sub_init(&v1, &f, PHX_FMT_V1_JSON);
    sub_init(&other, &f, PHX_FMT_V2_JSON);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &v2a.sub, "room:1", 6), 0);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &v2b.sub, "room:1", 6), 0);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &v1.sub, "room:1", 6), 0);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &other.sub, "room:2", 6), 0);
    ASSERT_EQ(phx_pubsub_subscriber_count(f.ps, "room:1", 6), 3);
    ASSERT_EQ(phx_pubsub_topic_count(f.ps), 2);
    phx_payload_t p = {(const uint8_t *)"{\"a\":1}", 7, false};
    phx_bcast_t b = bcast("room:1", "ev", &p);
    ASSERT_EQ(phx_pubsub_publish(f.ps, &b), 3);
    ASSERT_EQ(v2a.got, 1);
    ASSERT_EQ(v2b.got, 1);
    ASSERT_EQ(v1.got, 1);
    ASSERT_EQ(other.got, 0);
    ASSERT_STR_EQ(v2a.last, "[null,null,\"room:1\",\"ev\",{\"a\":1}]");
    ASSERT_STR_EQ(v1.last,
                  "{\"event\":\"ev\",\"payload\":{\"a\":1},\"ref\":null,\"topic\":\"room:1\"}");
    /* Nobody there: no recipient, no error. */
    b = bcast("room:none", "ev", &p);
    ASSERT_EQ(phx_pubsub_publish(f.ps, &b), 0);
    phx_pubsub_unsubscribe(f.ps, &v2a.sub);
    phx_pubsub_unsubscribe(f.ps, &v2a.sub); /* twice: a no-op */
    phx_pubsub_unsubscribe(f.ps, &v2b.sub);
    phx_pubsub_unsubscribe(f.ps, &v1.sub);
    phx_pubsub_unsubscribe(f.ps, &other.sub);
    fx_done(&f);
}

static void broadcast_from_excludes_the_sender_only(void)
{
    fx_t f;
    fx_init(&f);
    fake_sub_t a, b;
    sub_init(&a, &f, PHX_FMT_V2_JSON);
    sub_init(&b, &f, PHX_FMT_V2_JSON);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &a.sub, "t", 1), 0);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &b.sub, "t", 1), 0);
    phx_bcast_t m = bcast("t", "e", NULL);
    m.origin.sender = phx_sub_origin_id(&a.sub);
    ASSERT_EQ(phx_pubsub_publish(f.ps, &m), 1);
    ASSERT_EQ(a.got, 0);
    ASSERT_EQ(b.got, 1);
    ASSERT_STR_EQ(b.last, "[null,null,\"t\",\"e\",{}]"); /* no payload: {} */
    /* The same sender id from another node is nobody here. */
    m.origin.node = "other@host";
    ASSERT_EQ(phx_pubsub_deliver(f.ps, &m), 2);
    phx_pubsub_unsubscribe(f.ps, &a.sub);
    phx_pubsub_unsubscribe(f.ps, &b.sub);
    fx_done(&f);
}

static void unsubscribing_during_a_walk_is_safe(void)
{
    fx_t f;
    fx_init(&f);
    enum { N = 8 };
    fake_sub_t s[N];
    for (int i = 0; i < N; i++) {
        sub_init(&s[i], &f, PHX_FMT_V2_JSON);
        ASSERT_EQ(phx_pubsub_subscribe(f.ps, &s[i].sub, "t", 1), 0);
    }
    s[0].unsubscribe_self = true;  /* leaves when reached */
    s[1].unsubscribe_other = true; /* makes a later one leave first */
    s[1].other = &s[5];
    s[2].unsubscribe_other = true; /* and an earlier one */
    s[2].other = &s[1];
    phx_bcast_t b = bcast("t", "e", NULL);
    int n = phx_pubsub_publish(f.ps, &b);
    ASSERT_EQ(n, N - 1); /* s[5] left before its turn */
    ASSERT_EQ(s[5].got, 0);
    ASSERT_EQ(phx_pubsub_subscriber_count(f.ps, "t", 1), N - 3);
    /* The holes were compacted: a second walk reaches the rest. */
    for (int i = 0; i < N; i++)
        s[i].unsubscribe_self = s[i].unsubscribe_other = false;
    ASSERT_EQ(phx_pubsub_publish(f.ps, &b), N - 3);
    for (int i = 0; i < N; i++)
        phx_pubsub_unsubscribe(f.ps, &s[i].sub);
    /* The last subscriber leaving in its own walk drops the topic. */
    sub_init(&s[0], &f, PHX_FMT_V2_JSON);
    s[0].unsubscribe_self = true;
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &s[0].sub, "t", 1), 0);
    ASSERT_EQ(phx_pubsub_publish(f.ps, &b), 1);
    ASSERT_EQ(phx_pubsub_topic_count(f.ps), 0);
    fx_done(&f);
}

static void id_subscriptions_take_server_side_disconnects_only(void)
{
    fx_t f;
    fx_init(&f);
    fake_sub_t id, ch;
    sub_init(&id, &f, PHX_FMT_V2_JSON);
    id.sub.deliver = fake_id_deliver;
    id.sub.is_id = true;
    sub_init(&ch, &f, PHX_FMT_V2_JSON);
    ASSERT(!phx_pubsub_has_id(f.ps, "users_socket:1", 14));
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &id.sub, "users_socket:1", 14), 0);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &ch.sub, "users_socket:1", 14), 0);
    ASSERT(phx_pubsub_has_id(f.ps, "users_socket:1", 14));
    /* Id subscriptions are not channel subscribers. */
    ASSERT_EQ(phx_pubsub_subscriber_count(f.ps, "users_socket:1", 14), 1);
    /* A client's "disconnect" is an ordinary event. */
    phx_bcast_t b = bcast("users_socket:1", "disconnect", NULL);
    b.origin.flags = PHX_ORIGIN_CLIENT;
    ASSERT_EQ(phx_pubsub_publish(f.ps, &b), 1);
    ASSERT_EQ(id.got, 0);
    ASSERT_EQ(ch.got, 1);
    /* Another event does not concern the id. */
    b = bcast("users_socket:1", "other", NULL);
    ASSERT_EQ(phx_pubsub_publish(f.ps, &b), 1);
    ASSERT_EQ(id.got, 0);
    /* Server-side, for ids only (the API's disconnect). */
    b = bcast("users_socket:1", "disconnect", NULL);
    b.origin.flags = PHX_ORIGIN_IDS_ONLY;
    ASSERT_EQ(phx_pubsub_publish(f.ps, &b), 1);
    ASSERT_EQ(id.got, 1);
    ASSERT_EQ(ch.got, 2);
    /* Server-side to everybody (Endpoint.broadcast): both. */
    b.origin.flags = 0;
    ASSERT_EQ(phx_pubsub_publish(f.ps, &b), 2);
    ASSERT_EQ(id.got, 2);
    ASSERT_EQ(ch.got, 3);
    phx_pubsub_unsubscribe(f.ps, &id.sub);
    ASSERT(!phx_pubsub_has_id(f.ps, "users_socket:1", 14));
    phx_pubsub_unsubscribe(f.ps, &ch.sub);
    fx_done(&f);
}

static void backend_sees_publishes_and_topic_edges(void)
{
    fx_t f;
    fx_init(&f);
    fake_backend_t be = {0};
    fake_sub_t early, a, b;
    sub_init(&early, &f, PHX_FMT_V2_JSON);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &early.sub, "early", 5), 0);
    /* A backend plugged in later hears of the topics already held. */
    phx_pubsub_set_backend(f.ps, &fake_backend_ops, &be);
    ASSERT_EQ(be.up, 1);
    ASSERT_STR_EQ(be.last_topic, "early");
    sub_init(&a, &f, PHX_FMT_V2_JSON);
    sub_init(&b, &f, PHX_FMT_V2_JSON);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &a.sub, "room:9", 6), 0);
    ASSERT_EQ(be.up, 2); /* first local subscriber */
    ASSERT_STR_EQ(be.last_topic, "room:9");
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &b.sub, "room:9", 6), 0);
    ASSERT_EQ(be.up, 2); /* not again */
    /* A local broadcast is delivered here and handed over once. */
    phx_bcast_t m = bcast("room:9", "ev", NULL);
    m.origin.sender = phx_sub_origin_id(&a.sub);
    m.origin.flags = PHX_ORIGIN_CLIENT;
    ASSERT_EQ(phx_pubsub_publish(f.ps, &m), 1);
    ASSERT_EQ(be.published, 1);
    ASSERT_STR_EQ(be.last_event, "ev");
    ASSERT(be.last_sender == phx_sub_origin_id(&a.sub));
    ASSERT_EQ(be.last_flags, PHX_ORIGIN_CLIENT);
    /* A topic nobody holds here still goes to the other nodes. */
    m = bcast("room:elsewhere", "ev", NULL);
    ASSERT_EQ(phx_pubsub_publish(f.ps, &m), 0);
    ASSERT_EQ(be.published, 2);
    /* What arrives from elsewhere is delivered here and not sent back. */
    m = bcast("room:9", "remote", NULL);
    m.origin.node = "n2";
    ASSERT_EQ(phx_pubsub_deliver(f.ps, &m), 2);
    ASSERT_EQ(be.published, 2);
    ASSERT_STR_EQ(a.last, "[null,null,\"room:9\",\"remote\",{}]");
    phx_pubsub_unsubscribe(f.ps, &a.sub);
    ASSERT_EQ(be.down, 0);
    phx_pubsub_unsubscribe(f.ps, &b.sub);
    ASSERT_EQ(be.down, 1); /* the last one gone */
    ASSERT_STR_EQ(be.last_topic, "room:9");
    phx_pubsub_unsubscribe(f.ps, &early.sub);
    ASSERT_EQ(be.down, 2);
    fx_done(&f);
}

static void unencodable_payload_is_an_error(void)
{
    fx_t f;
    fx_init(&f);
    fake_sub_t a;
    sub_init(&a, &f, PHX_FMT_V2_JSON);
    ASSERT_EQ(phx_pubsub_subscribe(f.ps, &a.sub, "t", 1), 0);
    fake_backend_t be = {0};
    phx_pubsub_set_backend(f.ps, &fake_backend_ops, &be);
    phx_payload_t p = {(const uint8_t *)"{\"a\":", 5, false}; /* not JSON */
    phx_bcast_t b = bcast("t", "e", &p);
    ASSERT(phx_pubsub_publish(f.ps, &b) < 0);
    ASSERT_EQ(a.got, 0);
    ASSERT_EQ(be.published, 0); /* nothing broken leaves the node */
    phx_pubsub_unsubscribe(f.ps, &a.sub);
    fx_done(&f);
}

const phx_test_t phx_tests_pubsub[] = {
    {"delivers_once_per_subscriber_in_its_format", delivers_once_per_subscriber_in_its_format},
    {"broadcast_from_excludes_the_sender_only", broadcast_from_excludes_the_sender_only},
    {"unsubscribing_during_a_walk_is_safe", unsubscribing_during_a_walk_is_safe},
    {"id_subscriptions_take_server_side_disconnects_only",
     id_subscriptions_take_server_side_disconnects_only},
    {"backend_sees_publishes_and_topic_edges", backend_sees_publishes_and_topic_edges},
    {"unencodable_payload_is_an_error", unencodable_payload_is_an_error},
    {NULL, NULL},
};
