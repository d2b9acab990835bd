/* pubsub.c: topic -> subscribers, in an open-addressing hash map keyed with
 * SipHash-1-3 under a random key (topics come from clients, so the table
 * must not be floodable). A broadcast is encoded at most once per wire
 * format and the same reference-counted buffer is queued to every
 * recipient. Unsubscribing during a walk leaves a hole that is compacted
 * when the walk ends. */
#include "pubsub.h"

#include <string.h>

#include <openssl/rand.h>

#include "log.h"
#include "mem.h"

struct phx_topic {
    uint64_t hash;
    phx_sub_t **subs;
    uint32_t nsubs; /* used slots, holes included */
    uint32_t cap;
    uint32_t live; /* subscriptions, id subscriptions included */
    uint32_t nids; /* id subscriptions */
    uint16_t iterating;
    bool has_holes;
    uint32_t len;
    char name[];
};

struct phx_pubsub {
    phx_loop_t *loop;
    phx_topic_t **slots;
    size_t cap; /* power of two */
    size_t count;
    size_t tombs;
    uint64_t k0, k1;
    const phx_pubsub_backend_t *backend;
    void *be;
    const phx_node_handler_t *node_handler;
    void *node_arg;
};

static phx_topic_t tombstone_marker;
#define TOMB (&tombstone_marker)

/* ---- SipHash-1-3 (Aumasson and Bernstein), 64-bit output ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

static uint64_t load64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t siphash13(uint64_t k0, uint64_t k1, const uint8_t *p, size_t len)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = k1 ^ 0x7465646279746573ULL;
    size_t end = len - len % 8;
    for (size_t i = 0; i < end; i += 8) {
        uint64_t m = load64(p + i);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)len << 56;
    for (size_t i = 0; i < len % 8; i++)
        b |= (uint64_t)p[end + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the map ---- */

int phx_pubsub_new(phx_pubsub_t **out, phx_loop_t *loop)
{
    phx_pubsub_t *ps = phx_calloc(1, sizeof(*ps));
    if (ps == NULL)
        return PHX_ERR_NOMEM;
    ps->loop = loop;
    ps->cap = 64;
    ps->slots = phx_calloc(ps->cap, sizeof(*ps->slots));
    if (ps->slots == NULL) {
        phx_free(ps);
        return PHX_ERR_NOMEM;
    }
    uint8_t key[16];
    if (RAND_bytes(key, sizeof(key)) != 1) {
        phx_free(ps->slots);
        phx_free(ps);
        return PHX_ERR_INVALID;
    }
    ps->k0 = load64(key);
    ps->k1 = load64(key + 8);
    *out = ps;
    return 0;
}

void phx_pubsub_free(phx_pubsub_t *ps)
{
    if (ps == NULL)
        return;
    for (size_t i = 0; i < ps->cap; i++) {
        phx_topic_t *t = ps->slots[i];
        if (t && t != TOMB) {
            phx_free(t->subs);
            phx_free(t);
        }
    }
    phx_free(ps->slots);
    phx_free(ps);
}

void phx_pubsub_set_backend(phx_pubsub_t *ps, const phx_pubsub_backend_t *ops, void *be)
{
    ps->backend = ops;
    ps->be = be;
    if (ops == NULL || ops->topic_up == NULL)
        return;
    for (size_t i = 0; i < ps->cap; i++) {
        phx_topic_t *t = ps->slots[i];
        if (t && t != TOMB && t->live > 0)
            ops->topic_up(be, t->name, t->len);
    }
}

void phx_pubsub_foreach_topic(const phx_pubsub_t *ps,
                              void (*fn)(void *arg, const char *topic, size_t len), void *arg)
{
    for (size_t i = 0; i < ps->cap; i++) {
        phx_topic_t *t = ps->slots[i];
        if (t && t != TOMB && t->live > 0)
            fn(arg, t->name, t->len);
    }
}

static size_t find_slot(const phx_pubsub_t *ps, const char *name, size_t len, uint64_t hash,
                        bool *found)
{
    size_t mask = ps->cap - 1;
    size_t i = (size_t)hash & mask;
    size_t first_tomb = SIZE_MAX;
    for (;;) {
        phx_topic_t *t = ps->slots[i];
        if (t == NULL) {
            *found = false;
            return first_tomb != SIZE_MAX ? first_tomb : i;
        }
        if (t == TOMB) {
            if (first_tomb == SIZE_MAX)
                first_tomb = i;
        } else if (t->hash == hash && t->len == len && memcmp(t->name, name, len) == 0) {
            *found = true;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static phx_topic_t *lookup(const phx_pubsub_t *ps, const char *name, size_t len)
{
    uint64_t hash = siphash13(ps->k0, ps->k1, (const uint8_t *)name, len);
    bool found;
    size_t i = find_slot(ps, name, len, hash, &found);
    return found ? ps->slots[i] : NULL;
}

static int rehash(phx_pubsub_t *ps, size_t cap)
{
    phx_topic_t **slots = phx_calloc(cap, sizeof(*slots));
    if (slots == NULL)
        return PHX_ERR_NOMEM;
    for (size_t i = 0; i < ps->cap; i++) {
        phx_topic_t *t = ps->slots[i];
        if (t == NULL || t == TOMB)
            continue;
        size_t j = (size_t)t->hash & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = t;
    }
    phx_free(ps->slots);
    ps->slots = slots;
    ps->cap = cap;
    ps->tombs = 0;
    return 0;
}

static phx_topic_t *lookup_or_add(phx_pubsub_t *ps, const char *name, size_t len)
{
    if ((ps->count + ps->tombs + 1) * 4 > ps->cap * 3) {
        size_t cap = (ps->count + 1) * 2 > ps->cap ? ps->cap * 2 : ps->cap;
        if (rehash(ps, cap) != 0)
            return NULL;
    }
    uint64_t hash = siphash13(ps->k0, ps->k1, (const uint8_t *)name, len);
    bool found;
    size_t i = find_slot(ps, name, len, hash, &found);
    if (found)
        return ps->slots[i];
    phx_topic_t *t = phx_calloc(1, sizeof(*t) + len + 1);
    if (t == NULL)
        return NULL;
    t->hash = hash;
    t->len = (uint32_t)len;
    memcpy(t->name, name, len);
    t->name[len] = '\0';
    if (ps->slots[i] == TOMB)
        ps->tombs--;
    ps->slots[i] = t;
    ps->count++;
    return t;
}

/* Frees `t` when nothing refers to it any more. */
static void maybe_drop(phx_pubsub_t *ps, phx_topic_t *t)
{
    if (t->live > 0 || t->iterating > 0)
        return;
    bool found;
    size_t i = find_slot(ps, t->name, t->len, t->hash, &found);
    PHX_ASSERT(found && ps->slots[i] == t);
    ps->slots[i] = TOMB;
    ps->tombs++;
    ps->count--;
    phx_free(t->subs);
    phx_free(t);
}

static void compact(phx_topic_t *t)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < t->nsubs; i++) {
        phx_sub_t *sub = t->subs[i];
        if (sub == NULL)
            continue;
        t->subs[j] = sub;
        sub->index = j;
        j++;
    }
    t->nsubs = j;
    t->has_holes = false;
}

/* ---- subscriptions ---- */

int phx_pubsub_subscribe(phx_pubsub_t *ps, phx_sub_t *sub, const char *topic, size_t len)
{
    PHX_ASSERT(sub->topic == NULL && sub->deliver != NULL);
    phx_topic_t *t = lookup_or_add(ps, topic, len);
    if (t == NULL)
        return PHX_ERR_NOMEM;
    if (t->nsubs == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 1;
        phx_sub_t **subs = phx_realloc(t->subs, cap * sizeof(*subs));
        if (subs == NULL) {
            maybe_drop(ps, t);
            return PHX_ERR_NOMEM;
        }
        t->subs = subs;
        t->cap = cap;
    }
    sub->index = t->nsubs;
    t->subs[t->nsubs++] = sub;
    t->live++;
    if (sub->is_id)
        t->nids++;
    sub->topic = t;
    if (t->live == 1 && ps->backend && ps->backend->topic_up)
        ps->backend->topic_up(ps->be, t->name, t->len);
    return 0;
}

void phx_pubsub_unsubscribe(phx_pubsub_t *ps, phx_sub_t *sub)
{
    phx_topic_t *t = sub->topic;
    if (t == NULL)
        return;
    uint32_t i = sub->index;
    PHX_ASSERT(i < t->nsubs && t->subs[i] == sub);
    if (t->iterating) {
        t->subs[i] = NULL;
        t->has_holes = true;
    } else {
        phx_sub_t *last = t->subs[t->nsubs - 1];
        t->subs[i] = last;
        last->index = i;
        t->nsubs--;
        /* Give memory back when a big topic empties. */
        if (t->cap > 16 && t->nsubs < t->cap / 4) {
            phx_sub_t **subs = phx_realloc(t->subs, (t->cap / 2) * sizeof(*subs));
            if (subs) {
                t->subs = subs;
                t->cap /= 2;
            }
        }
    }
    t->live--;
    if (sub->is_id)
        t->nids--;
    sub->topic = NULL;
    if (t->live == 0 && ps->backend && ps->backend->topic_down)
        ps->backend->topic_down(ps->be, t->name, t->len);
    maybe_drop(ps, t);
}

const char *phx_topic_name(const phx_topic_t *t, size_t *len)
{
    if (len)
        *len = t->len;
    return t->name;
}

bool phx_pubsub_has_id(const phx_pubsub_t *ps, const char *id, size_t len)
{
    const phx_topic_t *t = lookup(ps, id, len);
    return t != NULL && t->nids > 0;
}

uint64_t phx_sub_origin_id(const phx_sub_t *sub)
{
    return (uint64_t)(uintptr_t)sub;
}

/* ---- fan-out ---- */

phx_rcbuf_t *phx_fanout_encoded(phx_fanout_t *f, int fmt)
{
    if (f->enc[fmt] == NULL && f->err == 0)
        f->err = phx_msg_encode(&f->enc[fmt], fmt, &f->msg);
    return f->err == 0 ? f->enc[fmt] : NULL;
}

bool phx_fanout_is_disconnect(const phx_fanout_t *f)
{
    const phx_bcast_t *b = f->b;
    return !(b->origin.flags & PHX_ORIGIN_CLIENT) && b->event_len == 10 &&
           memcmp(b->event, "disconnect", 10) == 0;
}

/* Delivers `b` to the local subscribers of its topic. */
static int deliver_local(phx_pubsub_t *ps, const phx_bcast_t *b)
{
    phx_loop_broadcast_started(ps->loop);
    phx_topic_t *t = lookup(ps, b->topic, b->topic_len);
    if (t == NULL)
        return 0;
    const phx_payload_t *payload = b->payload;
    phx_fanout_t f = {
        .b = b,
        .msg =
            {
                .kind = PHX_OUT_BROADCAST,
                .join_ref = phx_field_null(),
                .ref = phx_field_null(),
                .topic = phx_field_bytes(b->topic, b->topic_len),
                .event = phx_field_bytes(b->event, b->event_len),
                .status = phx_field_null(),
                .payload = payload ? payload->data : NULL,
                .payload_len = payload ? payload->len : 0,
                .is_binary = payload && payload->is_binary,
            },
    };
    /* A sender from another node is nobody here. */
    uint64_t exclude = b->origin.node == NULL ? b->origin.sender : 0;
    bool ids_only = (b->origin.flags & PHX_ORIGIN_IDS_ONLY) != 0;
    int delivered = 0;
    t->iterating++;
    uint32_t n = t->nsubs;
    for (uint32_t i = 0; i < n && f.err == 0; i++) {
        phx_sub_t *sub = t->subs[i];
        if (sub == NULL || (ids_only && !sub->is_id) ||
            (exclude != 0 && phx_sub_origin_id(sub) == exclude))
            continue;
        if (sub->deliver(sub, &f))
            delivered++;
    }
    for (int fmt = 0; fmt < PHX_FMT_COUNT; fmt++)
        phx_rcbuf_unref(f.enc[fmt]);
    if (--t->iterating == 0) {
        if (t->has_holes)
            compact(t);
        maybe_drop(ps, t);
    }
    return f.err != 0 ? f.err : delivered;
}

int phx_pubsub_publish(phx_pubsub_t *ps, const phx_bcast_t *b)
{
    int rv = deliver_local(ps, b);
    if (rv >= 0 && ps->backend && ps->backend->publish) {
        int be_rv = ps->backend->publish(ps->be, b);
        if (be_rv != 0)
            PHX_LOG_WARN("event=pubsub_publish_failed code=%d", be_rv);
    }
    return rv;
}

int phx_pubsub_deliver(phx_pubsub_t *ps, const phx_bcast_t *b)
{
    return deliver_local(ps, b);
}

size_t phx_pubsub_topic_count(const phx_pubsub_t *ps)
{
    return ps->count;
}

size_t phx_pubsub_subscriber_count(const phx_pubsub_t *ps, const char *topic, size_t len)
{
    phx_topic_t *t = lookup(ps, topic, len);
    return t ? t->live - t->nids : 0;
}

/* ---- node messages ---- */

void phx_pubsub_set_node_handler(phx_pubsub_t *ps, const phx_node_handler_t *h, void *arg)
{
    ps->node_handler = h;
    ps->node_arg = arg;
}

int phx_pubsub_node_send(phx_pubsub_t *ps, const char *to, size_t to_len, const void *data,
                         size_t len)
{
    if (ps->backend == NULL || ps->backend->node_send == NULL)
        return PHX_ERR_STATE;
    return ps->backend->node_send(ps->be, to, to_len, data, len);
}

const char *phx_pubsub_node_name(const phx_pubsub_t *ps)
{
    if (ps->backend == NULL || ps->backend->node_name == NULL)
        return NULL;
    return ps->backend->node_name(ps->be);
}

void phx_pubsub_node_message(phx_pubsub_t *ps, const uint8_t *data, size_t len)
{
    if (ps->node_handler && ps->node_handler->on_message)
        ps->node_handler->on_message(ps->node_arg, data, len);
}

void phx_pubsub_node_link(phx_pubsub_t *ps, int state)
{
    if (ps->node_handler && ps->node_handler->on_link)
        ps->node_handler->on_link(ps->node_arg, state);
}
