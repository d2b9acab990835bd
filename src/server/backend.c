/* backend.c: backend callbacks over HTTP (see backend.h and
 * docs/backend.md): the calls' JSON, the signature, the answers' parser
 * and what they do, the circuit breaker, leave batches and metrics. */
#include "backend.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "api.h"
#include "base64.h"
#include "channel.h"
#include "client.h"
#include "counters.h"
#include "http.h"
#include "log.h"
#include "presence.h"
#include "serializer.h"
#include "socket.h"

/* The assign that holds what backends set, as one JSON object. */
#define ASSIGNS_KEY "phxd.assigns"
/* Leaves of one loop turn sent in one batch call at most. */
#define LEAVE_BATCH_MAX 100
/* What phx_backend_close gives the calls still in flight. */
#define CLOSE_GRACE_MS 1000

static const char unavailable_json[] = "{\"reason\":\"unavailable\"}";

enum { BREAKER_CLOSED = 0, BREAKER_OPEN, BREAKER_HALF_OPEN };

typedef struct bcall bcall_t;

struct phx_backend_target {
    phx_backend_target_t *next;
    phx_backend_t *b;
    char *url;
    phx_httpc_t *http;
    /* the circuit breaker: the outcomes of the last calls (bit set: failed) */
    uint64_t window;
    uint32_t nwindow;
    uint8_t breaker;
    bool is_probing;
    uint64_t open_until;
    /* leave calls of this loop turn, comma-separated JSON objects */
    phx_buf_t leaves;
    uint32_t nleaves;
};

struct phx_backend {
    phx_loop_t *loop;
    phx_endpoint_t *ep;
    const phx_config_t *cfg;
    phx_backend_target_t *targets;
    bcall_t *calls; /* every call in flight */
    bool is_closing;
    bool is_pools_closed;
    bool has_timer;
    uv_timer_t close_timer;
    int closing; /* pools and the timer not yet closed */
    void (*done)(void *arg);
    void *done_arg;
};

struct bcall {
    bcall_t *prev, *next; /* b->calls */
    phx_backend_target_t *t;
    phx_bcall_t type;
    bool is_probe;
    uint32_t nleaves;    /* a leave call: the leaves it carries */
    phx_channel_t *ch;   /* join, event: NULL once the channel is gone */
    phx_connect_t *conn; /* connect: the deferred step */
    uint64_t start_ns;
    phx_httpc_req_t *req;
};

/* ---- calls in flight ---- */

static bcall_t *call_new(phx_backend_target_t *t, phx_bcall_t type)
{
    bcall_t *c = phx_calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->t = t;
    c->type = type;
    c->start_ns = uv_hrtime();
    phx_backend_t *b = t->b;
    c->next = b->calls;
    if (b->calls)
        b->calls->prev = c;
    b->calls = c;
    return c;
}

static void call_free(bcall_t *c)
{
    phx_backend_t *b = c->t->b;
    if (c->prev)
        c->prev->next = c->next;
    else
        b->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    phx_free(c);
}

static void count(phx_backend_t *b, phx_bcall_t type, phx_bout_t out)
{
    b->loop->stats.backend_calls[type][out]++;
}

static void gauges(phx_backend_t *b)
{
    size_t inflight = 0, queued = 0;
    for (phx_backend_target_t *t = b->targets; t; t = t->next) {
        if (t->http) {
            inflight += phx_httpc_inflight(t->http);
            queued += phx_httpc_queued(t->http);
        }
    }
    b->loop->stats.backend_inflight = inflight;
    b->loop->stats.backend_queued = queued;
}

static void observe(phx_backend_t *b, uint64_t start_ns)
{
    phx_stats_t *st = &b->loop->stats;
    phx_hist_add(st->backend_hist, phx_backend_bounds_us(), PHX_BACKEND_BUCKETS, &st->backend_sum_s,
                 &st->backend_count, (uv_hrtime() - start_ns) / 1000);
}

/* ---- the circuit breaker ---- */

static bool breaker_on(const phx_backend_t *b)
{
    return b->cfg->backend_breaker_open_ms > 0;
}

/* Whether a call may go out now; sets *probe for the one call that tests
 * a half-open breaker. */
static bool breaker_allows(phx_backend_target_t *t, bool *probe)
{
    phx_backend_t *b = t->b;
    *probe = false;
    if (!breaker_on(b) || t->breaker == BREAKER_CLOSED)
        return true;
    if (t->breaker == BREAKER_OPEN) {
        if (uv_now(b->loop->uv) < t->open_until)
            return false;
        t->breaker = BREAKER_HALF_OPEN;
        t->is_probing = false;
        PHX_LOG_INFO("event=backend_breaker state=half_open url=%s", t->url);
    }
    if (t->is_probing)
        return false;
    t->is_probing = true;
    *probe = true;
    return true;
}

static void breaker_open(phx_backend_target_t *t, const char *why)
{
    phx_backend_t *b = t->b;
    if (t->breaker == BREAKER_CLOSED)
        b->loop->stats.backend_breakers_open++;
    t->breaker = BREAKER_OPEN;
    t->is_probing = false;
    t->open_until = uv_now(b->loop->uv) + (uint64_t)b->cfg->backend_breaker_open_ms;
    b->loop->stats.backend_breaker_trips++;
    PHX_LOG_WARN("event=backend_breaker state=open url=%s reason=%s open_ms=%d", t->url, why,
                 b->cfg->backend_breaker_open_ms);
}

static void breaker_record(phx_backend_target_t *t, bool failed, bool is_probe)
{
    phx_backend_t *b = t->b;
    if (!breaker_on(b))
        return;
    if (t->breaker != BREAKER_CLOSED) {
        if (!is_probe)
            return; /* a call made before the breaker opened */
        if (failed) {
            breaker_open(t, "probe_failed");
            return;
        }
        t->breaker = BREAKER_CLOSED;
        t->is_probing = false;
        t->window = 0;
        t->nwindow = 0;
        b->loop->stats.backend_breakers_open--;
        PHX_LOG_INFO("event=backend_breaker state=closed url=%s", t->url);
        return;
    }
    uint32_t calls = (uint32_t)b->cfg->backend_breaker_calls;
    if (calls == 0 || calls > 64)
        calls = 64;
    t->window = (t->window << 1) | (failed ? 1u : 0u);
    if (t->nwindow < calls)
        t->nwindow++;
    uint64_t mask = t->nwindow >= 64 ? UINT64_MAX : ((UINT64_C(1) << t->nwindow) - 1);
    uint32_t fails = (uint32_t)__builtin_popcountll(t->window & mask);
    if (failed && t->nwindow >= calls &&
        (uint64_t)fails * 100 >= (uint64_t)b->cfg->backend_breaker_percent * t->nwindow)
        breaker_open(t, "failures");
}

/* ---- the JSON of a call ---- */

static int put_str(phx_buf_t *b, const char *s)
{
    return s ? phx_json_append_string(b, (const uint8_t *)s, strlen(s))
             : phx_buf_append_str(b, "null");
}

/* A ref or join_ref as the client sent it: a string, null, or (a client
 * sending a number) the number's text. */
static int put_field(phx_buf_t *b, const phx_field_t *f)
{
    if (f->kind == PHX_FIELD_NULL)
        return phx_buf_append_str(b, "null");
    if (f->kind == PHX_FIELD_STRING)
        return phx_json_append_string(b, f->p, f->len);
    return phx_buf_append(b, f->p, f->len);
}

/* "payload":<json> or, for a binary payload, "payload_base64":"...". */
static int put_payload(phx_buf_t *b, const phx_payload_t *p)
{
    if (p->is_binary) {
        phx_buf_t enc = {0};
        int rv = phx_base64_encode(&enc, p->data, p->len);
        if (rv == 0)
            rv = phx_buf_append_str(b, "\"payload_base64\":");
        if (rv == 0)
            rv = phx_json_append_string(b, enc.data ? enc.data : (const uint8_t *)"", enc.len);
        phx_buf_dispose(&enc);
        return rv;
    }
    if (phx_buf_append_str(b, "\"payload\":") != 0)
        return PHX_ERR_NOMEM;
    return p->len ? phx_buf_append(b, p->data, p->len) : phx_buf_append_str(b, "{}");
}

/* Whether the JSON object `obj` has member `key`. */
static bool has_member(const char *obj, const char *key)
{
    phx_json_span_t raw;
    return obj && phx_json_member((const uint8_t *)obj, strlen(obj), key, NULL, &raw);
}

/* "socket":{"id":...,"user_id":...,"assigns":{...}}: the backend's own
 * assigns (one JSON object) and the string assigns of the connect step
 * (user_id), the backend's winning a key both have. */
static int put_socket(phx_buf_t *b, const char *id, const char *packed, size_t len)
{
    const char *json = phx_assigns_get(packed, len, ASSIGNS_KEY);
    int rv = phx_buf_append_str(b, "\"socket\":{\"id\":");
    rv = rv ? rv : put_str(b, id);
    rv = rv ? rv : phx_buf_append_str(b, ",\"user_id\":");
    rv = rv ? rv : put_str(b, phx_assigns_get(packed, len, "user_id"));
    rv = rv ? rv : phx_buf_append_str(b, ",\"assigns\":{");
    bool first = true;
    if (rv == 0 && json && strlen(json) > 2) {
        rv = phx_buf_append(b, json + 1, strlen(json) - 2); /* its members */
        first = false;
    }
    const char *p = packed, *end = packed ? packed + len : NULL;
    while (rv == 0 && p && p < end) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, ASSIGNS_KEY) != 0 && !has_member(json, p)) {
            rv = first ? 0 : phx_buf_append_byte(b, ',');
            rv = rv ? rv : put_str(b, p);
            rv = rv ? rv : phx_buf_append_byte(b, ':');
            rv = rv ? rv : put_str(b, v);
            first = false;
        }
        p = v + strlen(v) + 1;
    }
    return rv ? rv : phx_buf_append_str(b, "}}");
}

static int put_socket_of(phx_buf_t *b, const phx_socket_t *s)
{
    return put_socket(b, s->id, s->assigns, s->assigns_len);
}

/* x-phxd-signature: sha256=<hex HMAC-SHA256 of the body> */
static int sign(const phx_config_t *cfg, const phx_buf_t *body, char *headers, size_t cap)
{
    static const char ct[] = "content-type: application/json\r\n";
    const char *secret = cfg->backend_secret;
    if (secret == NULL || secret[0] == '\0') {
        snprintf(headers, cap, "%s", ct);
        return 0;
    }
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), body->data, body->len, md, &md_len) == NULL)
        return PHX_ERR_NOMEM;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    for (unsigned i = 0; i < md_len; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    snprintf(headers, cap, "%sx-phxd-signature: sha256=%s\r\n", ct, hex);
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

static void on_answer(void *arg, int err, int status, const uint8_t *body, size_t len);
static void close_pools(phx_backend_t *b);

/* Sends the call's body. Returns 0, or PHX_ERR_LIMIT when the breaker is
 * open (or the backend closing), or an error: the caller answers now. */
static int call_post(bcall_t *c, const phx_buf_t *body)
{
    phx_backend_target_t *t = c->t;
    phx_backend_t *b = t->b;
    if (b->is_closing && c->type != PHX_BCALL_LEAVE)
        return PHX_ERR_LIMIT;
    /* A full queue fails here, at once (the pool would say so a turn
     * later, in the same words as an answer too large). */
    if (phx_httpc_inflight(t->http) >= (size_t)b->cfg->backend_max_inflight &&
        phx_httpc_queued(t->http) >= (size_t)b->cfg->backend_max_queue)
        return PHX_ERR_LIMIT;
    if (!breaker_allows(t, &c->is_probe))
        return PHX_ERR_LIMIT;
    char headers[256];
    int rv = sign(b->cfg, body, headers, sizeof(headers));
    if (rv == 0)
        rv = phx_httpc_post(t->http, headers, body->data, body->len, on_answer, c, &c->req);
    if (rv != 0 && c->is_probe)
        t->is_probing = false;
    gauges(b);
    return rv;
}

/* ---- what an answer does ---- */

/* The decoded string of a span (NUL-terminated in `out`), or false. */
static bool span_string(const phx_json_span_t *s, phx_buf_t *out)
{
    out->len = 0;
    if (s->type == PHX_JSON_NUMBER)
        return phx_buf_append(out, s->p, s->len) == 0 && phx_buf_append_byte(out, 0) == 0;
    if (s->type != PHX_JSON_STRING || phx_buf_reserve(out, s->len + 1) != 0)
        return false;
    size_t n;
    bool nul;
    if (phx_json_string_decode(s->p, s->len, out->data, &n, &nul) != 0 || nul)
        return false;
    out->data[n] = '\0';
    out->len = n;
    return true;
}

/* The socket's backend assigns with `add`'s members merged over them
 * (a key `add` has replaces the old one). */
static int merge_assigns(phx_socket_t *s, const phx_json_span_t *answer)
{
    if (answer->type != PHX_JSON_OBJECT)
        return 0;
    /* Minified, so that "{}" is exactly an empty object and what is kept
     * (and sent back in every call) has no blanks. */
    phx_buf_t a = {0}, b = {0};
    size_t alen;
    int rv = phx_buf_append(&a, answer->p, answer->len);
    rv = rv ? rv : phx_json_minify(a.data, a.len, NULL, &alen);
    const char *old = phx_socket_assign(s, ASSIGNS_KEY);
    rv = rv ? rv : phx_buf_append_byte(&b, '{');
    bool first = true;
    size_t members = 0;
    phx_json_iter_t it;
    phx_json_span_t key, val;
    if (rv == 0 && old && phx_json_iter_init(&it, (const uint8_t *)old, strlen(old)) == 0) {
        while (rv == 0 && phx_json_iter_next(&it, &key, &val)) {
            /* kept unless the answer sets it again */
            phx_json_iter_t it2;
            phx_json_span_t k2, v2;
            bool replaced = false;
            phx_json_iter_init(&it2, a.data, alen);
            while (!replaced && phx_json_iter_next(&it2, &k2, &v2))
                replaced = k2.len == key.len && memcmp(k2.p, key.p, key.len) == 0;
            if (replaced)
                continue;
            rv = first ? 0 : phx_buf_append_byte(&b, ',');
            rv = rv ? rv : phx_buf_append(&b, key.p, key.len);
            rv = rv ? rv : phx_buf_append_byte(&b, ':');
            rv = rv ? rv : phx_buf_append(&b, val.p, val.len);
            first = false;
            members++;
        }
    }
    if (rv == 0 && alen > 2) {
        rv = first ? 0 : phx_buf_append_byte(&b, ',');
        rv = rv ? rv : phx_buf_append(&b, a.data + 1, alen - 2);
    }
    rv = rv ? rv : phx_buf_append_str(&b, "}");
    rv = rv ? rv : phx_buf_append_byte(&b, 0);
    /* Bounded whole (bytes, and members: each answer's merge looks at
     * every kept member). */
    if (rv == 0 && (b.len > PHX_BACKEND_MAX_ASSIGNS || members > PHX_BACKEND_MAX_LIST))
        rv = PHX_ERR_LIMIT;
    if (rv == 0)
        rv = phx_socket_put_assign(s, ASSIGNS_KEY, (const char *)b.data);
    phx_buf_dispose(&a);
    phx_buf_dispose(&b);
    return rv;
}

static void do_pushes(phx_channel_t *ch, const phx_json_span_t *list)
{
    if (list->type != PHX_JSON_ARRAY)
        return;
    phx_json_iter_t it;
    phx_json_span_t el;
    phx_json_iter_init(&it, list->p, list->len);
    while (phx_json_iter_next(&it, NULL, &el) && !phx_channel_socket(ch)->is_closing) {
        phx_buf_t ev = {0}, bin = {0};
        phx_payload_t p;
        if (phx_backend_push_parse(el.p, el.len, &ev, &bin, &p) == NULL)
            phx_channel_push(ch, (const char *)ev.data, &p);
        phx_buf_dispose(&ev);
        phx_buf_dispose(&bin);
    }
}

/* The subscriber a broadcast_from to `topic` skips: the socket's own
 * channel on that topic, if it has one. */
static uint64_t sender_on(phx_socket_t *s, const char *topic, size_t len)
{
    for (phx_channel_t *c = s->channels; c; c = c->next) {
        if (c->sub.topic == NULL)
            continue;
        size_t n;
        const char *name = phx_topic_name(c->sub.topic, &n);
        if (n == len && memcmp(name, topic, len) == 0)
            return phx_sub_origin_id(&c->sub);
    }
    return 0;
}

static void do_broadcasts(phx_backend_t *b, phx_socket_t *s, const phx_json_span_t *list, bool from)
{
    if (list->type != PHX_JSON_ARRAY)
        return;
    phx_json_iter_t it;
    phx_json_span_t el, unknown;
    phx_json_iter_init(&it, list->p, list->len);
    while (phx_json_iter_next(&it, NULL, &el)) {
        phx_api_msg_t m = {0};
        if (phx_api_msg_parse(el.p, el.len, &m, &unknown) == NULL) {
            uint64_t sender = from && s ? sender_on(s, (const char *)m.topic.data, m.topic.len) : 0;
            phx_endpoint_broadcast(b->ep, (const char *)m.topic.data, m.topic.len,
                                   (const char *)m.event.data, &m.payload, sender, 0);
        }
        phx_api_msg_dispose(&m);
    }
}

/* presence in an answer: {"key": K, "meta": {...}} tracks (or updates)
 * under K (an event may leave out the key: the one tracked), null leaves. */
static void do_presence(phx_channel_t *ch, const phx_json_span_t *pr)
{
    if (pr->type == PHX_JSON_NULL) {
        phx_presence_untrack(ch);
        return;
    }
    if (pr->type != PHX_JSON_OBJECT)
        return;
    phx_buf_t key = {0}, meta = {0};
    phx_json_span_t raw;
    const char *k = NULL;
    if (phx_json_member(pr->p, pr->len, "key", &key, &raw))
        k = (const char *)key.data;
    else if (phx_json_member(pr->p, pr->len, "key", NULL, &raw) && raw.type == PHX_JSON_NUMBER &&
             span_string(&raw, &key))
        k = (const char *)key.data;
    else
        k = phx_presence_key_of(ch);
    const char *why = NULL;
    if (phx_json_member(pr->p, pr->len, "meta", NULL, &raw) && raw.type == PHX_JSON_OBJECT &&
        phx_buf_append(&meta, raw.p, raw.len) == 0 && phx_buf_append_byte(&meta, 0) == 0) {
        /* the key copied: an update may free the one tracked */
        phx_buf_t kc = {0};
        if (k && phx_buf_append(&kc, k, strlen(k) + 1) == 0)
            phx_presence_track_why(ch, (const char *)kc.data, (const char *)meta.data, &why);
        phx_buf_dispose(&kc);
    } else if (k) {
        phx_buf_t kc = {0};
        if (phx_buf_append(&kc, k, strlen(k) + 1) == 0)
            phx_presence_track_why(ch, (const char *)kc.data, NULL, &why);
        phx_buf_dispose(&kc);
    }
    if (why)
        PHX_LOG_INFO("event=backend_presence_refused reason=\"%s\"", why);
    phx_buf_dispose(&key);
    phx_buf_dispose(&meta);
}

typedef struct join_after {
    phx_backend_t *b;
    const phx_backend_answer_t *ans;
} join_after_t;

/* A join answered ok, its reply sent: pushes and broadcasts. */
static void after_join(phx_channel_t *ch, void *arg)
{
    join_after_t *ja = arg;
    do_pushes(ch, &ja->ans->push);
    do_broadcasts(ja->b, phx_channel_socket(ch), &ja->ans->broadcast, false);
    do_broadcasts(ja->b, phx_channel_socket(ch), &ja->ans->broadcast_from, true);
}

static const phx_payload_t unavailable = {(const uint8_t *)unavailable_json,
                                          sizeof(unavailable_json) - 1, false};

static void join_answered(phx_backend_t *b, phx_channel_t *ch, const phx_backend_answer_t *a)
{
    phx_socket_t *s = phx_channel_socket(ch);
    if (a == NULL) {
        phx_channel_resolve(ch, PHX_REPLY_ERROR, NULL, &unavailable);
        return;
    }
    if (a->is_ok)
        merge_assigns(s, &a->assigns);
    if (a->is_ok && a->presence.type == PHX_JSON_OBJECT)
        do_presence(ch, &a->presence); /* goes in right after the reply */
    phx_payload_t resp = {(const uint8_t *)"{}", 2, false};
    if (a->response.type == PHX_JSON_OBJECT)
        resp = (phx_payload_t){a->response.p, a->response.len, false};
    join_after_t ja = {b, a};
    if (a->is_ok) {
        phx_channel_resolve_then(ch, PHX_REPLY_OK, NULL, &resp, after_join, &ja);
        return;
    }
    phx_channel_resolve(ch, PHX_REPLY_ERROR, NULL, &resp);
    do_broadcasts(b, NULL, &a->broadcast, false);
    do_broadcasts(b, NULL, &a->broadcast_from, false);
}

static void event_answered(phx_backend_t *b, phx_channel_t *ch, const phx_backend_answer_t *a)
{
    phx_socket_t *s = phx_channel_socket(ch);
    if (a == NULL) {
        phx_channel_resolve(ch, PHX_REPLY_ERROR, NULL, &unavailable);
        return;
    }
    merge_assigns(s, &a->assigns);
    if (a->presence.type != PHX_JSON_INVALID)
        do_presence(ch, &a->presence);
    /* As in a Phoenix handle_in: pushes and broadcasts made while handling
     * go out before the reply. */
    do_pushes(ch, &a->push);
    do_broadcasts(b, s, &a->broadcast, false);
    do_broadcasts(b, s, &a->broadcast_from, true);
    if (s->is_closing)
        return;
    phx_payload_t resp = {(const uint8_t *)"{}", 2, false};
    if (a->response.type == PHX_JSON_OBJECT)
        resp = (phx_payload_t){a->response.p, a->response.len, false};
    phx_result_t res = a->has_reply ? (a->is_ok ? PHX_REPLY_OK : PHX_REPLY_ERROR) : PHX_NOREPLY;
    if (a->stop.type == PHX_JSON_OBJECT) {
        res = PHX_STOP;
        if (!a->has_reply) {
            phx_channel_resolve(ch, PHX_STOP, NULL, NULL);
            return;
        }
        phx_channel_resolve(ch, res, a->is_ok ? "ok" : "error", &resp);
        return;
    }
    phx_channel_resolve(ch, res, NULL, res == PHX_NOREPLY ? NULL : &resp);
}

static void connect_answered(phx_connect_t *d, const phx_backend_answer_t *a)
{
    if (a == NULL || !a->is_ok) {
        d->refused = a == NULL ? PHX_REFUSE_BACKEND : PHX_REFUSE_CALLBACK;
        phx_connect_resume(d, PHX_CONNECT_REFUSE);
        return;
    }
    phx_buf_t v = {0};
    int rv = 0;
    if (a->socket_id.type == PHX_JSON_STRING && span_string(&a->socket_id, &v) && v.len > 0)
        rv = phx_connect_set_id(d, (const char *)v.data);
    if (rv == 0 && a->user_id.type != PHX_JSON_INVALID && a->user_id.type != PHX_JSON_NULL &&
        phx_assigns_get((const char *)d->assigns.data, d->assigns.len, "user_id") == NULL &&
        span_string(&a->user_id, &v) && v.len > 0)
        rv = phx_connect_assign(d, "user_id", (const char *)v.data);
    if (rv == 0 && a->assigns.type == PHX_JSON_OBJECT) {
        v.len = 0;
        rv = phx_buf_append(&v, a->assigns.p, a->assigns.len);
        rv = rv ? rv
                : phx_json_minify(v.data, v.len, NULL, &v.len); /* as merge_assigns keeps them */
        rv = rv ? rv : phx_buf_append_byte(&v, 0);
        rv = rv ? rv : phx_connect_assign(d, ASSIGNS_KEY, (const char *)v.data);
    }
    phx_buf_dispose(&v);
    if (rv != 0) {
        d->refused = PHX_REFUSE_BACKEND;
        phx_connect_resume(d, PHX_CONNECT_REFUSE);
        return;
    }
    phx_connect_resume(d, PHX_CONNECT_OK);
}

static phx_backend_call_t answer_type(phx_bcall_t t)
{
    return t == PHX_BCALL_CONNECT ? PHX_BACKEND_CONNECT
           : t == PHX_BCALL_JOIN  ? PHX_BACKEND_JOIN
                                  : PHX_BACKEND_EVENT;
}

static void on_answer(void *arg, int err, int status, const uint8_t *body, size_t len)
{
    bcall_t *c = arg;
    phx_backend_target_t *t = c->t;
    phx_backend_t *b = t->b;
    c->req = NULL;
    observe(b, c->start_ns);
    phx_bout_t out = PHX_BOUT_OK;
    const char *why = NULL;
    phx_backend_answer_t ans;
    if (err == UV_ETIMEDOUT) {
        out = PHX_BOUT_TIMEOUT;
    } else if (err == PHX_ERR_LIMIT) {
        out = PHX_BOUT_INVALID; /* an answer over --backend-max-answer-bytes */
        why = "answer too large";
    } else if (err != 0) {
        out = PHX_BOUT_TRANSPORT;
    } else if (status < 200 || status > 299) {
        out = PHX_BOUT_STATUS;
    } else if (c->type != PHX_BCALL_LEAVE) {
        phx_json_limits_t lim = {.max_depth = (uint32_t)b->cfg->max_json_depth};
        why = phx_backend_answer_parse(body, len, answer_type(c->type), &lim, &ans);
        if (why)
            out = PHX_BOUT_INVALID;
        else if ((c->type == PHX_BCALL_CONNECT || c->type == PHX_BCALL_JOIN) && !ans.is_ok)
            out = PHX_BOUT_REFUSED;
    }
    bool failed = out != PHX_BOUT_OK && out != PHX_BOUT_REFUSED && out != PHX_BOUT_UNAVAILABLE;
    if (err != PHX_ERR_CLOSED)
        breaker_record(t, failed, c->is_probe);
    if (failed || out == PHX_BOUT_UNAVAILABLE) {
        PHX_LOG_INFO("event=backend_call_failed type=%s outcome=%s status=%d error=%s%s%s%s",
                     phx_bcall_name(c->type), phx_bout_name(out), status,
                     err ? phx_err_name(err) : "-", why ? " reason=\"" : "", why ? why : "",
                     why ? "\"" : "");
    }
    const phx_backend_answer_t *a = failed || out == PHX_BOUT_UNAVAILABLE ? NULL : &ans;
    bool dropped = false;
    if (c->type == PHX_BCALL_CONNECT) {
        phx_connect_t *d = c->conn;
        dropped = d->is_parked && d->resume_arg == NULL;
        connect_answered(d, a);
    } else if (c->type != PHX_BCALL_LEAVE) {
        phx_channel_t *ch = c->ch;
        if (ch == NULL) {
            dropped = true;
        } else {
            phx_socket_t *s = phx_channel_socket(ch);
            ch->data = NULL;
            /* Pushes may close the socket: it stays allocated until the
             * answer is done. */
            phx_socket_hold(s);
            if (!s->is_closing) {
                if (c->type == PHX_BCALL_JOIN)
                    join_answered(b, ch, a);
                else
                    event_answered(b, ch, a);
            }
            phx_socket_release(s);
        }
    }
    b->loop->stats.backend_calls[c->type][dropped ? PHX_BOUT_DROPPED : out] +=
        c->type == PHX_BCALL_LEAVE ? c->nleaves : 1;
    call_free(c);
    gauges(b);
    if (b->is_closing && b->calls == NULL && b->has_timer)
        close_pools(b); /* the last call of the grace period */
}

/* ---- the calls ---- */

static void reply_unavailable(phx_reply_t *reply)
{
    phx_reply_set(reply, &unavailable);
}

/* Starts a join or event call for `ch`: defers its answer. Returns
 * PHX_DEFER, or PHX_REPLY_ERROR with "unavailable" in `reply`. */
static phx_result_t channel_call(phx_backend_target_t *t, phx_channel_t *ch, phx_bcall_t type,
                                 phx_buf_t *body, phx_reply_t *reply)
{
    phx_backend_t *b = t->b;
    bcall_t *c = NULL;
    int rv = phx_channel_defer(ch);
    if (rv == 0 && (c = call_new(t, type)) == NULL)
        rv = PHX_ERR_NOMEM;
    if (rv == 0) {
        c->ch = ch;
        rv = call_post(c, body);
    }
    phx_buf_dispose(body);
    if (rv != 0) {
        if (c)
            call_free(c);
        count(b, type, PHX_BOUT_UNAVAILABLE);
        reply_unavailable(reply);
        return PHX_REPLY_ERROR;
    }
    ch->data = c;
    return PHX_DEFER;
}

/* {"type":T,"topic":...,"<payload>",...: the common start of a channel call. */
static int channel_body(phx_buf_t *b, const char *type, phx_channel_t *ch, const char *topic,
                        const phx_payload_t *payload)
{
    int rv = phx_buf_printf(b, "{\"type\":\"%s\",\"topic\":", type);
    rv = rv ? rv : put_str(b, topic);
    rv = rv ? rv : phx_buf_append_byte(b, ',');
    rv = rv ? rv : put_payload(b, payload);
    return rv;
}

/* A join or event call: {"type","topic","payload",("join_ref" | "event","ref"),"socket"}. */
static phx_result_t channel_request(phx_backend_target_t *t, phx_channel_t *ch, phx_bcall_t type,
                                    const char *topic, const char *event,
                                    const phx_payload_t *payload, phx_reply_t *reply)
{
    phx_buf_t body = {0};
    phx_field_t join_ref, ref;
    int rv = phx_channel_refs(ch, &join_ref, &ref) ? 0 : PHX_ERR_STATE;
    rv = rv ? rv : channel_body(&body, event ? "event" : "join", ch, topic, payload);
    if (event) {
        rv = rv ? rv : phx_buf_append_str(&body, ",\"event\":");
        rv = rv ? rv : put_str(&body, event);
        rv = rv ? rv : phx_buf_append_str(&body, ",\"ref\":");
        rv = rv ? rv : put_field(&body, &ref);
    } else {
        rv = rv ? rv : phx_buf_append_str(&body, ",\"join_ref\":");
        rv = rv ? rv : put_field(&body, &join_ref);
    }
    rv = rv ? rv : phx_buf_append_byte(&body, ',');
    rv = rv ? rv : put_socket_of(&body, phx_channel_socket(ch));
    rv = rv ? rv : phx_buf_append_byte(&body, '}');
    if (rv != 0) {
        phx_buf_dispose(&body);
        reply_unavailable(reply);
        return PHX_REPLY_ERROR;
    }
    return channel_call(t, ch, type, &body, reply);
}

phx_result_t phx_backend_join(phx_backend_target_t *t, phx_channel_t *ch, const char *topic,
                              const phx_payload_t *params, phx_reply_t *reply)
{
    return channel_request(t, ch, PHX_BCALL_JOIN, topic, NULL, params, reply);
}

phx_result_t phx_backend_event(phx_backend_target_t *t, phx_channel_t *ch, const char *event,
                               const phx_payload_t *payload, phx_reply_t *reply)
{
    return channel_request(t, ch, PHX_BCALL_EVENT, phx_channel_topic(ch), event, payload, reply);
}

/* ---- leaves ---- */

static void send_leaves(phx_backend_target_t *t)
{
    if (t->nleaves == 0)
        return;
    phx_backend_t *b = t->b;
    phx_buf_t body = {0};
    int rv = 0;
    if (t->nleaves == 1) {
        body = t->leaves;
    } else {
        rv = phx_buf_append_str(&body, "{\"type\":\"batch\",\"calls\":[");
        rv = rv ? rv : phx_buf_append(&body, t->leaves.data, t->leaves.len);
        rv = rv ? rv : phx_buf_append_str(&body, "]}");
        phx_buf_dispose(&t->leaves);
        b->loop->stats.backend_leave_batches++;
    }
    uint32_t n = t->nleaves;
    memset(&t->leaves, 0, sizeof(t->leaves));
    t->nleaves = 0;
    bcall_t *c = rv == 0 ? call_new(t, PHX_BCALL_LEAVE) : NULL;
    if (c)
        c->nleaves = n; /* each leave of a batch is counted with its outcome */
    if (c == NULL || call_post(c, &body) != 0) {
        if (c)
            call_free(c);
        b->loop->stats.backend_calls[PHX_BCALL_LEAVE][PHX_BOUT_UNAVAILABLE] += n;
    }
    phx_buf_dispose(&body);
}

static void flush_leaves(void *arg)
{
    phx_backend_t *b = arg;
    for (phx_backend_target_t *t = b->targets; t; t = t->next)
        send_leaves(t);
}

static const char *leave_reason(const phx_channel_t *ch, const char *reason)
{
    if (phx_channel_socket(ch)->is_kicked)
        return "kicked"; /* its socket was disconnected by id */
    if (strcmp(reason, "left") == 0 || strcmp(reason, "duplicate_join") == 0)
        return "leave";
    if (strcmp(reason, "kicked") == 0 || strcmp(reason, "stop") == 0 ||
        strcmp(reason, "crash") == 0)
        return "kicked";
    return "closed";
}

void phx_backend_end(phx_backend_target_t *t, phx_channel_t *ch, const char *reason, bool leave)
{
    bcall_t *c = ch->data;
    if (c) {
        c->ch = NULL; /* its answer is dropped */
        ch->data = NULL;
    }
    if (!leave)
        return;
    phx_buf_t *b = &t->leaves;
    size_t mark = b->len;
    int rv = t->nleaves ? phx_buf_append_byte(b, ',') : 0;
    rv = rv ? rv : phx_buf_append_str(b, "{\"type\":\"leave\",\"topic\":");
    rv = rv ? rv : put_str(b, phx_channel_topic(ch));
    rv = rv ? rv : phx_buf_printf(b, ",\"reason\":\"%s\",", leave_reason(ch, reason));
    rv = rv ? rv : put_socket_of(b, phx_channel_socket(ch));
    rv = rv ? rv : phx_buf_append_byte(b, '}');
    if (rv != 0) {
        b->len = mark;
        t->b->loop->stats.backend_calls[PHX_BCALL_LEAVE][PHX_BOUT_UNAVAILABLE]++;
        return;
    }
    if (++t->nleaves >= LEAVE_BATCH_MAX)
        send_leaves(t);
}

/* ---- connect ---- */

static int put_x_headers(phx_buf_t *b, const phx_http_t *h)
{
    int rv = phx_buf_append_str(b, "\"x_headers\":{");
    bool first = true;
    const char *p = h ? (const char *)h->headers.data : NULL;
    const char *end = p ? p + h->headers.len : NULL;
    while (rv == 0 && p && p < end) {
        const char *v = p + strlen(p) + 1;
        if (strncmp(p, "x-", 2) == 0) {
            rv = first ? 0 : phx_buf_append_byte(b, ',');
            rv = rv ? rv : put_str(b, p);
            rv = rv ? rv : phx_buf_append_byte(b, ':');
            rv = rv ? rv : put_str(b, v);
            first = false;
        }
        p = v + strlen(v) + 1;
    }
    return rv ? rv : phx_buf_append_byte(b, '}');
}

int phx_backend_connect(phx_connect_t *ci, void *user)
{
    phx_backend_t *b = user;
    phx_backend_target_t *t = phx_backend_target(b, NULL, NULL);
    if (t == NULL)
        return PHX_CONNECT_REFUSE;
    /* With a secret, the token is checked first: a socket the app never
     * sees is refused as Phoenix refuses it. */
    if (b->ep->token && phx_endpoint_default_connect(ci, b->ep) != PHX_CONNECT_OK)
        return PHX_CONNECT_REFUSE;
    phx_buf_t body = {0};
    char peer[80];
    snprintf(peer, sizeof(peer), "%s:%d", ci->peer ? ci->peer : "", ci->peer_port);
    int rv = phx_buf_append_str(&body, "{\"type\":\"connect\",\"params\":");
    rv = rv ? rv : phx_buf_append_str(&body, phx_connect_params_json(ci));
    rv = rv ? rv : phx_buf_append_str(&body, ",\"connect_info\":{\"peer\":");
    rv = rv ? rv : put_str(&body, peer);
    rv = rv ? rv : phx_buf_append_str(&body, ",\"transport\":");
    rv = rv ? rv : put_str(&body, phx_connect_transport(ci));
    rv = rv ? rv : phx_buf_append_str(&body, ",\"user_agent\":");
    rv = rv ? rv : put_str(&body, phx_connect_header(ci, "user-agent"));
    rv = rv ? rv : phx_buf_append_str(&body, ",\"origin\":");
    rv = rv ? rv : put_str(&body, phx_connect_header(ci, "origin"));
    rv = rv ? rv : phx_buf_append_byte(&body, ',');
    rv = rv ? rv : put_x_headers(&body, ci->http);
    rv = rv ? rv : phx_buf_append_str(&body, "},");
    rv = rv ? rv : put_socket(&body, ci->id, (const char *)ci->assigns.data, ci->assigns.len);
    rv = rv ? rv : phx_buf_append_byte(&body, '}');
    phx_connect_t *d = rv == 0 ? phx_connect_defer(ci) : NULL;
    bcall_t *c = d ? call_new(t, PHX_BCALL_CONNECT) : NULL;
    if (c) {
        c->conn = d;
        rv = call_post(c, &body);
    }
    phx_buf_dispose(&body);
    if (d == NULL) {
        ci->refused = PHX_REFUSE_BACKEND;
        count(b, PHX_BCALL_CONNECT, PHX_BOUT_UNAVAILABLE);
        return PHX_CONNECT_REFUSE;
    }
    if (c == NULL || rv != 0) {
        /* Deferred already: the transport gets the refusal as it parks. */
        if (c)
            call_free(c);
        count(b, PHX_BCALL_CONNECT, PHX_BOUT_UNAVAILABLE);
        d->refused = PHX_REFUSE_BACKEND;
        phx_connect_resume(d, PHX_CONNECT_REFUSE);
    }
    return PHX_CONNECT_DEFER;
}

/* ---- the backend ---- */

int phx_backend_new(phx_backend_t **out, phx_loop_t *loop, phx_endpoint_t *ep)
{
    phx_backend_t *b = phx_calloc(1, sizeof(*b));
    if (b == NULL)
        return PHX_ERR_NOMEM;
    b->loop = loop;
    b->ep = ep;
    b->cfg = ep->cfg;
    phx_loop_hook_t hook = {.before_flush = flush_leaves, .arg = b};
    phx_loop_add_hook(loop, &hook);
    *out = b;
    return 0;
}

phx_backend_target_t *phx_backend_target(phx_backend_t *b, const char *url, char *err)
{
    if (url == NULL || url[0] == '\0')
        url = b->cfg->backend_url;
    if (url == NULL || url[0] == '\0') {
        if (err)
            snprintf(err, PHX_ERR_LEN, "a backend rule needs --backend-url or backend=URL");
        return NULL;
    }
    for (phx_backend_target_t *t = b->targets; t; t = t->next)
        if (strcmp(t->url, url) == 0)
            return t;
    if (err == NULL)
        return NULL; /* lookups only (the connect step) never create */
    phx_backend_target_t *t = phx_calloc(1, sizeof(*t));
    if (t == NULL || (t->url = phx_strdup(url)) == NULL) {
        phx_free(t);
        snprintf(err, PHX_ERR_LEN, "out of memory");
        return NULL;
    }
    phx_httpc_opts_t o;
    phx_httpc_opts_init(&o);
    o.max_conns = b->cfg->backend_max_inflight;
    o.max_queue = b->cfg->backend_max_queue;
    o.timeout_ms = b->cfg->backend_timeout_ms;
    o.connect_timeout_ms = b->cfg->backend_timeout_ms;
    o.max_response_bytes = b->cfg->backend_max_answer_bytes;
    o.ca_file = b->cfg->backend_ca_file;
    /* A call may not run twice (a join, a saved message): never resent.
     * Idle connections close before common servers close them (Node's
     * keep-alive timeout is 5 s), so a call rarely meets one closing. */
    o.retry_reused = false;
    o.idle_ms = 4000;
    if (phx_httpc_new(&t->http, b->loop->uv, url, &o, err) != 0) {
        phx_free(t->url);
        phx_free(t);
        return NULL;
    }
    t->b = b;
    t->next = b->targets;
    b->targets = t;
    return t;
}

static void close_step(phx_backend_t *b)
{
    if (--b->closing == 0 && b->done)
        b->done(b->done_arg);
}

static void pool_closed(void *arg)
{
    close_step(arg);
}

static void timer_closed(uv_handle_t *h)
{
    close_step(h->data);
}

/* Closes every pool; the calls still in flight are cancelled (a connect
 * waiting on one is refused). */
static void close_pools(phx_backend_t *b)
{
    if (b->is_pools_closed)
        return;
    b->is_pools_closed = true;
    while (b->calls) {
        bcall_t *c = b->calls;
        if (c->req)
            phx_httpc_cancel(c->req);
        if (c->type == PHX_BCALL_CONNECT) {
            c->conn->refused = PHX_REFUSE_BACKEND;
            phx_connect_resume(c->conn, PHX_CONNECT_REFUSE);
        } else if (c->ch) {
            c->ch->data = NULL;
        }
        b->loop->stats.backend_calls[c->type][PHX_BOUT_DROPPED] +=
            c->type == PHX_BCALL_LEAVE ? c->nleaves : 1;
        call_free(c);
    }
    if (b->has_timer && !uv_is_closing((uv_handle_t *)&b->close_timer)) {
        uv_timer_stop(&b->close_timer);
        uv_close((uv_handle_t *)&b->close_timer, timer_closed);
    }
    for (phx_backend_target_t *t = b->targets; t; t = t->next) {
        if (t->http) {
            phx_httpc_t *h = t->http;
            t->http = NULL;
            phx_httpc_close(h, pool_closed, b);
        }
    }
}

static void on_close_timer(uv_timer_t *timer)
{
    close_pools(timer->data);
}

bool phx_backend_close(phx_backend_t *b, void (*done)(void *arg), void *arg)
{
    if (b == NULL || b->is_closing)
        return false;
    flush_leaves(b);
    b->is_closing = true;
    phx_loop_remove_hook(b->loop, b);
    if (b->targets == NULL)
        return false;
    b->done = done;
    b->done_arg = arg;
    b->closing = 1; /* the timer */
    for (phx_backend_target_t *t = b->targets; t; t = t->next)
        b->closing += t->http != NULL;
    uv_timer_init(b->loop->uv, &b->close_timer);
    b->close_timer.data = b;
    b->has_timer = true;
    uv_timer_start(&b->close_timer, on_close_timer, CLOSE_GRACE_MS, 0);
    if (b->calls == NULL)
        close_pools(b);
    return true;
}

void phx_backend_free(phx_backend_t *b)
{
    if (b == NULL)
        return;
    if (!b->is_closing)
        phx_loop_remove_hook(b->loop, b);
    while (b->calls) {
        if (b->calls->req)
            phx_httpc_cancel(b->calls->req);
        call_free(b->calls);
    }
    while (b->targets) {
        phx_backend_target_t *t = b->targets;
        b->targets = t->next;
        /* never closed (a server that never ran): its handles close with
         * the loop's next run, if it has one */
        phx_httpc_close(t->http, NULL, NULL);
        phx_buf_dispose(&t->leaves);
        phx_free(t->url);
        phx_free(t);
    }
    phx_free(b);
}
