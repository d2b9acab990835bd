/* pubsub.c: topic -> subscribers, in an open-addressing hash map keyed with
 * SipHash-1-3 under a random key (topics come from clients, so the table
 * must not be floodable). A broadcast is encoded at most once per wire
 * format and the same reference-counted buffer is queued to every
 * recipient. Unsubscribing during a fan-out leaves a hole that is compacted
 * when the fan-out ends. */
#include "pubsub.h"

#include <string.h>

#include <openssl/rand.h>

#include "channel.h"
#include "log.h"
#include "mem.h"
#include "serializer.h"
#include "server.h"
#include "socket.h"

struct phx_topic {
    uint64_t hash;
    phx_channel_t **subs;
    uint32_t nsubs; /* used slots, holes included */
    uint32_t cap;
    uint32_t live; /* subscribers */
    uint16_t iterating;
    bool has_holes;
    phx_socket_t *ids; /* sockets whose id is this name */
    uint32_t len;
    char name[];
};

struct phx_pubsub {
    phx_server_t *srv;
    phx_topic_t **slots;
    size_t cap; /* power of two */
    size_t count;
    size_t tombs;
    uint64_t k0, k1;
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

int phx_pubsub_new(phx_pubsub_t **out, phx_server_t *srv)
{
    phx_pubsub_t *ps = phx_calloc(1, sizeof(*ps));
    if (ps == NULL)
        return PHX_ERR_NOMEM;
    ps->srv = srv;
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
    if (t->live > 0 || t->iterating > 0 || t->ids != NULL)
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
        phx_channel_t *ch = t->subs[i];
        if (ch == NULL)
            continue;
        t->subs[j] = ch;
        ch->sub_index = j;
        j++;
    }
    t->nsubs = j;
    t->has_holes = false;
}

/* ---- subscriptions ---- */

int phx_pubsub_subscribe(phx_pubsub_t *ps, phx_channel_t *ch, const char *topic, size_t len)
{
    PHX_ASSERT(ch->topic == NULL);
    phx_topic_t *t = lookup_or_add(ps, topic, len);
    if (t == NULL)
        return PHX_ERR_NOMEM;
    if (t->nsubs == t->cap) {
        uint32_t cap = t->cap ? t->cap * 2 : 1;
        phx_channel_t **subs = phx_realloc(t->subs, cap * sizeof(*subs));
        if (subs == NULL) {
            maybe_drop(ps, t);
            return PHX_ERR_NOMEM;
        }
        t->subs = subs;
        t->cap = cap;
    }
    ch->sub_index = t->nsubs;
    t->subs[t->nsubs++] = ch;
    t->live++;
    ch->topic = t;
    return 0;
}

void phx_pubsub_unsubscribe(phx_pubsub_t *ps, phx_channel_t *ch)
{
    phx_topic_t *t = ch->topic;
    if (t == NULL)
        return;
    uint32_t i = ch->sub_index;
    PHX_ASSERT(i < t->nsubs && t->subs[i] == ch);
    if (t->iterating) {
        t->subs[i] = NULL;
        t->has_holes = true;
    } else {
        phx_channel_t *last = t->subs[t->nsubs - 1];
        t->subs[i] = last;
        last->sub_index = i;
        t->nsubs--;
        /* Give memory back when a big topic empties. */
        if (t->cap > 16 && t->nsubs < t->cap / 4) {
            phx_channel_t **subs = phx_realloc(t->subs, (t->cap / 2) * sizeof(*subs));
            if (subs) {
                t->subs = subs;
                t->cap /= 2;
            }
        }
    }
    t->live--;
    ch->topic = NULL;
    maybe_drop(ps, t);
}

const char *phx_topic_name(const phx_topic_t *t, size_t *len)
{
    if (len)
        *len = t->len;
    return t->name;
}

/* ---- socket ids ---- */

int phx_pubsub_add_id(phx_pubsub_t *ps, phx_socket_t *s)
{
    phx_topic_t *t = lookup_or_add(ps, s->id, strlen(s->id));
    if (t == NULL)
        return PHX_ERR_NOMEM;
    s->id_prev = NULL;
    s->id_next = t->ids;
    if (t->ids)
        t->ids->id_prev = s;
    t->ids = s;
    return 0;
}

void phx_pubsub_remove_id(phx_pubsub_t *ps, phx_socket_t *s)
{
    if (s->id == NULL)
        return;
    phx_topic_t *t = lookup(ps, s->id, strlen(s->id));
    if (t == NULL)
        return;
    if (s->id_prev)
        s->id_prev->id_next = s->id_next;
    else if (t->ids == s)
        t->ids = s->id_next;
    else
        return; /* not registered */
    if (s->id_next)
        s->id_next->id_prev = s->id_prev;
    s->id_prev = s->id_next = NULL;
    maybe_drop(ps, t);
}

bool phx_pubsub_has_id(const phx_pubsub_t *ps, const char *id, size_t len)
{
    const phx_topic_t *t = lookup(ps, id, len);
    return t != NULL && t->ids != NULL;
}

/* Ends a walk over `t` that may have left holes or emptied it. */
static void walk_done(phx_pubsub_t *ps, phx_topic_t *t)
{
    if (--t->iterating > 0)
        return;
    if (t->has_holes)
        compact(t);
    maybe_drop(ps, t);
}

int phx_pubsub_disconnect(phx_pubsub_t *ps, const char *id, size_t len)
{
    phx_topic_t *t = lookup(ps, id, len);
    if (t == NULL)
        return 0;
    /* Every socket with this id closes; they leave the list as they go.
     * A socket that closes at once also ends its channels, which may be
     * subscribed here (an id chosen equal to a joined topic), so the topic
     * is held as during a fan-out. */
    int closed = 0;
    t->iterating++;
    while (t->ids) {
        phx_socket_t *s = t->ids;
        phx_pubsub_remove_id(ps, s); /* cannot drop t: iterating */
        phx_socket_close(s, 1001);
        closed++;
    }
    walk_done(ps, t);
    return closed;
}

/* ---- fan-out ---- */

int phx_pubsub_broadcast(phx_pubsub_t *ps, const char *topic, size_t topic_len, const char *event,
                         size_t event_len, const phx_payload_t *payload,
                         const phx_channel_t *exclude)
{
    phx_loop_broadcast_started(&ps->srv->loop);
    phx_topic_t *t = lookup(ps, topic, topic_len);
    if (t == NULL)
        return 0;
    int delivered = 0;
    phx_rcbuf_t *enc[PHX_FMT_COUNT] = {NULL};
    phx_out_t m = {
        .kind = PHX_OUT_BROADCAST,
        .join_ref = phx_field_null(),
        .ref = phx_field_null(),
        .topic = phx_field_bytes(topic, topic_len),
        .event = phx_field_bytes(event, event_len),
        .status = phx_field_null(),
        .payload = payload ? payload->data : NULL,
        .payload_len = payload ? payload->len : 0,
        .is_binary = payload && payload->is_binary,
    };
    int rv = 0;
    t->iterating++;
    uint32_t n = t->nsubs;
    for (uint32_t i = 0; i < n; i++) {
        phx_channel_t *ch = t->subs[i];
        if (ch == NULL || ch == exclude || ch->state != PHX_CHAN_JOINED)
            continue;
        phx_socket_t *s = ch->sock;
        if (s->is_closing)
            continue;
        if (m.is_binary && (s->fmt == PHX_FMT_V1_JSON || !s->ops->supports_binary))
            continue; /* V1 and LongPoll cannot carry binary payloads */
        if (enc[s->fmt] == NULL) {
            rv = phx_msg_encode(&enc[s->fmt], s->fmt, &m);
            if (rv != 0)
                break;
        }
        s->ops->send(s->transport, phx_rcbuf_ref(enc[s->fmt]));
        delivered++;
    }
    for (int f = 0; f < PHX_FMT_COUNT; f++)
        phx_rcbuf_unref(enc[f]);
    walk_done(ps, t);
    return rv != 0 ? rv : delivered;
}

size_t phx_pubsub_topic_count(const phx_pubsub_t *ps)
{
    return ps->count;
}

size_t phx_pubsub_subscriber_count(const phx_pubsub_t *ps, const char *topic, size_t len)
{
    phx_topic_t *t = lookup(ps, topic, len);
    return t ? t->live : 0;
}
