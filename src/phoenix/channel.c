/* channel.c: channel instances and their lifecycle (docs/protocol.md §3):
 * join (routing by topic pattern, the per-socket channel limit, the join
 * callback), duplicate joins, leave, stale join_refs, handle_in with its
 * reply/noreply/stop/crash outcomes, and the channel API (push, broadcast,
 * broadcast_from). */
#include "channel.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "expiry.h"
#include "json.h"
#include "list.h"
#include "log.h"
#include "presence.h"
#include "pubsub.h"
#include "socket.h"

static bool chan_deliver(phx_sub_t *sub, phx_fanout_t *f);

/* A channel's route: an index, since the routes array may grow (realloc). */
static const phx_route_t *chan_route(const phx_channel_t *ch)
{
    return &ch->sock->ep->routes[ch->route];
}

static const char empty_object[] = "{}";

/* ---- refs ---- */

static int ref_copy(phx_ref_t *r, const phx_field_t *f)
{
    r->kind = (uint8_t)f->kind;
    r->len = 0;
    r->bytes = NULL;
    if (f->kind == PHX_FIELD_NULL)
        return 0;
    if (f->len > UINT16_MAX)
        return PHX_ERR_LIMIT;
    r->bytes = (uint8_t *)phx_strndup((const char *)f->p, f->len);
    if (r->bytes == NULL)
        return PHX_ERR_NOMEM;
    r->len = (uint16_t)f->len;
    return 0;
}

phx_field_t phx_ref_field(const phx_ref_t *r)
{
    phx_field_t f = {(phx_field_kind_t)r->kind, r->bytes, r->len};
    return f;
}

static bool ref_equals(const phx_ref_t *r, const phx_field_t *f)
{
    return (phx_field_kind_t)r->kind == f->kind && r->len == f->len &&
           (f->len == 0 || memcmp(r->bytes, f->p, f->len) == 0);
}

/* The join_ref as the phx_join sent it (borrowed bytes). */
static phx_ref_t join_ref_of(const phx_channel_t *ch)
{
    phx_ref_t null_ref = {.kind = PHX_FIELD_NULL};
    return ch->join_ref_is_null ? null_ref : ch->own_ref;
}

/* Whether a message's non-null join_ref names this instance. */
static bool is_own_join_ref(const phx_channel_t *ch, const phx_field_t *f)
{
    return !ch->join_ref_is_null && ref_equals(&ch->own_ref, f);
}

/* ---- deferred answers: the messages that wait for them ---- */

/* A client message kept until the channel's deferred answer comes: a
 * copy of the decoded message, its fields pointing into `bytes`. */
typedef struct phx_waiting {
    struct phx_waiting *next;
    phx_msg_t m;
    size_t size; /* counted in ep->waiting_bytes */
    uint8_t bytes[];
} phx_waiting_t;

struct phx_chan_wait {
    char *topic_name;   /* a joining channel's name, while the wait holds its slot */
    phx_ref_t ref;      /* the deferred message's ref and join_ref, as sent */
    phx_ref_t join_ref; /* (the reply's) */
    bool is_join;
    bool is_parked; /* its callback returned PHX_DEFER */
    uint32_t count;
    phx_waiting_t *head;
    phx_waiting_t **tail;
};

static void waiting_free(phx_endpoint_t *ep, phx_waiting_t *w)
{
    ep->waiting_bytes -= w->size;
    phx_free(w);
}

static void wait_free(phx_endpoint_t *ep, struct phx_chan_wait *w)
{
    if (w == NULL)
        return;
    while (w->head) {
        phx_waiting_t *next = w->head->next;
        waiting_free(ep, w->head);
        w->head = next;
    }
    phx_free(w->topic_name);
    phx_free(w->ref.bytes);
    phx_free(w->join_ref.bytes);
    phx_free(w);
}

/* Takes the wait off the channel (the name goes back to its slot). */
static struct phx_chan_wait *wait_take(phx_channel_t *ch)
{
    if (!ch->has_wait)
        return NULL;
    struct phx_chan_wait *w = ch->wait;
    ch->has_wait = false;
    ch->topic_name = w->topic_name;
    w->topic_name = NULL;
    return w;
}

static phx_field_t field_copy(uint8_t **at, const phx_field_t *f)
{
    phx_field_t out = *f;
    if (f->len) {
        memcpy(*at, f->p, f->len);
        out.p = *at;
        *at += f->len;
    }
    return out;
}

/* Keeps `m` at the end of the channel's waiting messages. Returns 0, or
 * PHX_ERR_LIMIT beyond max_waiting_msgs / max_waiting_bytes. */
static int wait_push(phx_channel_t *ch, const phx_msg_t *m)
{
    phx_endpoint_t *ep = ch->sock->ep;
    struct phx_chan_wait *w = ch->wait;
    size_t n = m->join_ref.len + m->ref.len + m->topic.len + m->event.len + m->payload_len;
    size_t size = sizeof(phx_waiting_t) + n;
    if (w->count >= (uint32_t)ep->cfg->max_waiting_msgs ||
        ep->waiting_bytes + size > ep->cfg->max_waiting_bytes)
        return PHX_ERR_LIMIT;
    phx_waiting_t *q = phx_malloc(size);
    if (q == NULL)
        return PHX_ERR_LIMIT;
    uint8_t *at = q->bytes;
    q->next = NULL;
    q->size = size;
    q->m.join_ref = field_copy(&at, &m->join_ref);
    q->m.ref = field_copy(&at, &m->ref);
    q->m.topic = field_copy(&at, &m->topic);
    q->m.event = field_copy(&at, &m->event);
    q->m.payload = at;
    if (m->payload_len)
        memcpy(at, m->payload, m->payload_len);
    q->m.payload_len = m->payload_len;
    q->m.is_binary = m->is_binary;
    *w->tail = q;
    w->tail = &q->next;
    w->count++;
    ep->waiting_bytes += size;
    return 0;
}

/* ---- channel objects ---- */

static const char *chan_topic(const phx_channel_t *ch, size_t *len)
{
    if (ch->sub.topic)
        return phx_topic_name(ch->sub.topic, len);
    const char *name = ch->has_wait ? ch->wait->topic_name : ch->topic_name;
    if (len)
        *len = strlen(name);
    return name;
}

static void chan_free(phx_channel_t *ch)
{
    if (ch->presence)
        phx_presence_end(ch); /* the leave diff (or the pending track dropped) */
    if (ch->has_wait)
        wait_free(ch->sock->ep, wait_take(ch));
    phx_free(ch->own_ref.bytes);
    phx_free(ch->topic_name);
    phx_free(ch);
}

static phx_channel_t *find(const phx_socket_t *s, const phx_field_t *topic)
{
    if (topic->kind != PHX_FIELD_STRING)
        return NULL;
    for (phx_channel_t *ch = s->channels; ch; ch = ch->next) {
        size_t len;
        const char *name = chan_topic(ch, &len);
        if (len == topic->len && memcmp(name, topic->p, len) == 0)
            return ch;
    }
    return NULL;
}

static void unlink_chan(phx_socket_t *s, phx_channel_t *ch)
{
    for (phx_channel_t **pp = &s->channels; *pp; pp = &(*pp)->next) {
        if (*pp == ch) {
            *pp = ch->next;
            s->nchannels--;
            return;
        }
    }
}

/* Runs terminate, unsubscribes, unlinks and frees. */
static void chan_end(phx_channel_t *ch, const char *reason)
{
    phx_socket_t *s = ch->sock;
    bool was_live = ch->state != PHX_CHAN_CLOSED;
    if (ch->state == PHX_CHAN_JOINED)
        s->ep->loop->stats.joined_channels--;
    ch->state = PHX_CHAN_CLOSED;
    const phx_route_t *route = chan_route(ch);
    if (was_live && route->handler->terminate)
        route->handler->terminate(ch, reason, route->user);
    /* A deferred answer will never come: what waited for it goes. */
    if (ch->has_wait)
        wait_free(s->ep, wait_take(ch));
    /* Keep the name for messages sent after unsubscribing. */
    if (ch->sub.topic && ch->topic_name == NULL) {
        size_t len;
        const char *name = phx_topic_name(ch->sub.topic, &len);
        ch->topic_name = phx_strndup(name, len);
    }
    phx_pubsub_unsubscribe(s->ep->pubsub, &ch->sub);
    unlink_chan(s, ch);
    chan_free(ch);
}

/* ---- sending ---- */

static void send_reply(phx_socket_t *s, phx_field_t join_ref, phx_field_t ref, phx_field_t topic,
                       const char *status, const char *json)
{
    phx_out_t out = {
        .kind = PHX_OUT_REPLY,
        .join_ref = join_ref,
        .ref = ref,
        .topic = topic,
        .status = phx_field_str(status),
        .payload = (const uint8_t *)json,
        .payload_len = strlen(json),
    };
    phx_socket_send(s, &out);
}

static void send_reply_obj(phx_socket_t *s, phx_field_t join_ref, phx_field_t ref,
                           phx_field_t topic, const phx_reply_t *r, const char *default_status)
{
    phx_out_t out = {
        .kind = PHX_OUT_REPLY,
        .join_ref = join_ref,
        .ref = ref,
        .topic = topic,
        .status = phx_field_str(r->status[0] ? r->status : default_status),
        .payload = r->is_set ? r->payload.data : (const uint8_t *)empty_object,
        .payload_len = r->is_set ? r->payload.len : 2,
        .is_binary = r->is_set && r->is_binary,
    };
    if (phx_socket_send(s, &out) == PHX_ERR_INVALID && out.is_binary) {
        /* A binary reply on a socket that cannot carry it (V1). */
        out.is_binary = false;
        out.payload = (const uint8_t *)empty_object;
        out.payload_len = 2;
        phx_socket_send(s, &out);
    }
}

/* phx_close / phx_error: join_ref as both join_ref and ref (docs/protocol.md §3.8). */
static void send_lifecycle(phx_socket_t *s, const phx_ref_t *join_ref, phx_field_t topic,
                           const char *event, const char *json)
{
    phx_field_t jr = phx_ref_field(join_ref);
    phx_out_t out = {
        .kind = PHX_OUT_MESSAGE,
        .join_ref = jr,
        .ref = jr,
        .topic = topic,
        .event = phx_field_str(event),
        .payload = (const uint8_t *)json,
        .payload_len = strlen(json),
    };
    phx_socket_send(s, &out);
}

/* The same for a live instance: its join_ref as the phx_join sent it. */
static void chan_lifecycle(phx_channel_t *ch, phx_field_t topic, const char *event,
                           const char *payload)
{
    phx_ref_t jr = join_ref_of(ch);
    send_lifecycle(ch->sock, &jr, topic, event, payload);
}

static phx_field_t topic_field(const phx_channel_t *ch)
{
    size_t len;
    const char *name = chan_topic(ch, &len);
    return phx_field_bytes(name, len);
}

/* ---- replies built by handlers ---- */

int phx_reply_set(phx_reply_t *r, const phx_payload_t *response)
{
    r->payload.len = 0;
    r->is_set = false;
    if (response == NULL)
        return 0;
    if (phx_buf_append(&r->payload, response->data, response->len) != 0)
        return PHX_ERR_NOMEM;
    r->is_binary = response->is_binary;
    r->is_set = true;
    return 0;
}

int phx_reply_set_status(phx_reply_t *r, const char *status)
{
    size_t len = strlen(status);
    if (len == 0 || len >= sizeof(r->status))
        return PHX_ERR_INVALID;
    memcpy(r->status, status, len + 1);
    return 0;
}

/* ---- join / leave / events ---- */

/* The info line of a join, or of a refused one with its reason (never the
 * params or the reply). */
static void join_log(const phx_socket_t *s, phx_field_t topic, const char *reason)
{
    if (PHX_LOG_LEVEL_INFO > phx_log_level)
        return;
    char id[160], name[256];
    phx_log_value(id, sizeof(id), s->id, s->id ? strlen(s->id) : 0);
    phx_log_value(name, sizeof(name), topic.p ? (const char *)topic.p : "", topic.len);
    if (reason)
        PHX_LOG_INFO("event=join_refused socket_id=%s topic=%s reason=%s", id, name, reason);
    else
        PHX_LOG_INFO("event=join socket_id=%s topic=%s", id, name);
}

/* Counts and logs a refused join. */
static void join_refused(phx_socket_t *s, phx_field_t topic, phx_join_refuse_t why)
{
    s->ep->loop->stats.refused_joins[why]++;
    join_log(s, topic, phx_join_refuse_name(why));
}

/* A join handler's refusal: "unauthorized" when its reply is exactly
 * {"reason":"unauthorized"} (what phxd's rules and most Phoenix apps
 * answer), else a handler error. */
static phx_join_refuse_t handler_refusal(const phx_reply_t *r)
{
    static const char unauthorized[] = "{\"reason\":\"unauthorized\"}";
    bool is_unauthorized = r->is_set && !r->is_binary &&
                           r->payload.len == sizeof(unauthorized) - 1 &&
                           memcmp(r->payload.data, unauthorized, r->payload.len) == 0;
    return is_unauthorized ? PHX_JOIN_REFUSE_UNAUTHORIZED : PHX_JOIN_REFUSE_HANDLER;
}

static void link_chan(phx_socket_t *s, phx_channel_t *ch)
{
    ch->next = s->channels;
    s->channels = ch;
    s->nchannels++;
}

/* Runs a join or handle_in callback with the message it answers noted
 * for phx_channel_defer. */
static void dispatching(phx_endpoint_t *ep, const phx_msg_t *m, phx_channel_t *ch,
                        const phx_msg_t **prev_m, phx_channel_t **prev_ch)
{
    *prev_m = ep->dispatching;
    *prev_ch = ep->dispatching_ch;
    ep->dispatching = m;
    ep->dispatching_ch = ch;
}

/* After a callback: whether it deferred its answer (it asked with
 * phx_channel_defer and returned PHX_DEFER). A deferral asked for and not
 * returned is dropped; PHX_DEFER without asking is a crash. */
static bool deferred(phx_channel_t *ch, phx_result_t *res)
{
    if (*res == PHX_DEFER && ch->has_wait && !ch->wait->is_parked) {
        ch->wait->is_parked = true;
        return true;
    }
    if (ch->has_wait && !ch->wait->is_parked)
        wait_free(ch->sock->ep, wait_take(ch));
    if (*res == PHX_DEFER)
        *res = PHX_CRASH;
    return false;
}

/* The end of a join whose callback answered `res` with `reply`: subscribe
 * and reply ok, or reply the refusal and free the channel. `linked`: the
 * channel is in the socket's list already (a deferred join). */
static void join_finish(phx_socket_t *s, phx_channel_t *ch, phx_result_t res, phx_reply_t *reply,
                        phx_field_t join_ref, phx_field_t ref, bool linked)
{
    phx_endpoint_t *ep = s->ep;
    phx_field_t topic = topic_field(ch); /* ch->topic_name: valid until the channel changes */
    if (res == PHX_REPLY_OK &&
        phx_pubsub_subscribe(ep->pubsub, &ch->sub, ch->topic_name, topic.len) != 0)
        res = PHX_CRASH;
    if (res == PHX_REPLY_OK) {
        phx_free(ch->topic_name);
        ch->topic_name = NULL;
        ch->state = PHX_CHAN_JOINED;
        topic = topic_field(ch);
        ep->loop->stats.joined_channels++;
        ep->loop->stats.joins++;
        join_log(s, topic, NULL);
        if (!linked)
            link_chan(s, ch);
        send_reply_obj(s, join_ref, ref, topic, reply, "ok");
        /* After the reply, as Phoenix's after_join: the track goes in and
         * presence_state follows (on every join, rejoins too). */
        if (ch->presence || ch->wants_presence)
            phx_presence_joined(ch);
        return;
    }
    join_refused(s, topic, res == PHX_CRASH ? PHX_JOIN_REFUSE_CRASHED : handler_refusal(reply));
    if (res == PHX_CRASH) {
        send_reply(s, join_ref, ref, topic, "error", "{\"reason\":\"join crashed\"}");
    } else {
        if (reply->status[0] == '\0')
            phx_reply_set_status(reply, "error");
        send_reply_obj(s, join_ref, ref, topic, reply, "error");
    }
    if (linked)
        unlink_chan(s, ch);
    ch->state = PHX_CHAN_CLOSED;
    chan_free(ch);
}

static void join(phx_socket_t *s, const phx_msg_t *m, phx_channel_t *old)
{
    phx_endpoint_t *ep = s->ep;
    const char *name = (const char *)m->topic.p;
    /* Socket-id topics are internal whatever the routes say (a '*' rule
     * matches them too): refused as if no route matched. */
    bool is_id_topic =
        m->topic.kind == PHX_FIELD_STRING && phx_socket_id_topic(ep, name, m->topic.len);
    const phx_route_t *route = m->topic.kind == PHX_FIELD_STRING && !is_id_topic
                                   ? phx_endpoint_route(ep, name, m->topic.len)
                                   : NULL;
    phx_ref_t old_ref = {0};
    phx_field_t topic = m->topic;
    if (old) {
        /* Duplicate join: the old instance ends first; its phx_close goes
         * out after the reply to the new join. */
        old_ref = join_ref_of(old);
        if (!old->join_ref_is_null)
            old->own_ref.bytes = NULL; /* now old_ref's */
        chan_end(old, "duplicate_join");
    }
    if (route == NULL) {
        join_refused(s, topic, is_id_topic ? PHX_JOIN_REFUSE_SOCKET_ID : PHX_JOIN_REFUSE_UNMATCHED);
        send_reply(s, phx_field_null(), m->ref, topic, "error", "{\"reason\":\"unmatched topic\"}");
        goto done;
    }
    if (s->nchannels >= ep->cfg->max_channels) {
        join_refused(s, topic, PHX_JOIN_REFUSE_TOO_MANY);
        send_reply(s, m->join_ref, m->ref, topic, "error",
                   "{\"reason\":\"too many channels joined\"}");
        goto done;
    }
    phx_channel_t *ch = phx_calloc(1, sizeof(*ch));
    if (ch)
        ch->sub.deliver = chan_deliver;
    bool join_ref_is_null = m->join_ref.kind == PHX_FIELD_NULL;
    if (ch == NULL || ref_copy(&ch->own_ref, join_ref_is_null ? &m->ref : &m->join_ref) != 0 ||
        (ch->topic_name = phx_strndup((const char *)topic.p, topic.len)) == NULL) {
        if (ch)
            chan_free(ch);
        join_refused(s, topic, PHX_JOIN_REFUSE_CRASHED);
        send_reply(s, m->join_ref, m->ref, topic, "error", "{\"reason\":\"join crashed\"}");
        goto done;
    }
    ch->join_ref_is_null = join_ref_is_null;
    ch->sock = s;
    ch->route = (uint16_t)(route - ep->routes);
    ch->state = PHX_CHAN_JOINING;
    phx_reply_t reply = {0};
    phx_payload_t params = {m->payload, m->payload_len, m->is_binary};
    const phx_msg_t *prev_m;
    phx_channel_t *prev_ch;
    dispatching(ep, m, ch, &prev_m, &prev_ch);
    phx_result_t res = route->handler->join(ch, ch->topic_name, &params, &reply, route->user);
    ep->dispatching = prev_m;
    ep->dispatching_ch = prev_ch;
    if (s->is_closing) {
        /* The join callback closed the socket. */
        phx_buf_dispose(&reply.payload);
        chan_free(ch);
        goto done;
    }
    if (deferred(ch, &res))
        link_chan(s, ch); /* waits in JOINING for phx_channel_resolve */
    else
        join_finish(s, ch, res, &reply, m->join_ref, m->ref, false);
    phx_buf_dispose(&reply.payload);
done:
    if (old) {
        send_lifecycle(s, &old_ref, topic, "phx_close", empty_object);
        phx_free(old_ref.bytes);
    }
}

static void leave(phx_socket_t *s, const phx_msg_t *m, phx_channel_t *ch)
{
    if (ch == NULL) {
        /* Not joined: ok at once, join_ref echoed as sent, no phx_close. */
        send_reply(s, m->join_ref, m->ref, m->topic, "ok", empty_object);
        return;
    }
    if (m->join_ref.kind != PHX_FIELD_NULL && !is_own_join_ref(ch, &m->join_ref))
        return; /* stale: no reply at all */
    phx_field_t topic = topic_field(ch);
    send_reply(s, phx_ref_field(&ch->own_ref), m->ref, topic, "ok", empty_object);
    chan_lifecycle(ch, topic, "phx_close", empty_object);
    chan_end(ch, "left");
}

/* access_token {"access_token": T} on any joined topic, with
 * cfg.expire_sockets: the in-band refresh (Supabase's shape). T is
 * verified as at connect and must name the same user; then the socket's
 * expiry moves. Anything else closes the socket with 4001 after the error
 * reply. At most one refresh per refresh_interval_s is looked at. */
static void refresh(phx_socket_t *s, const phx_msg_t *m, phx_channel_t *ch)
{
    phx_endpoint_t *ep = s->ep;
    phx_field_t topic = topic_field(ch);
    phx_field_t own = phx_ref_field(&ch->own_ref);
    if (!phx_expiry_may_refresh(&ep->expiry, s, phx_wall_ms())) {
        send_reply(s, own, m->ref, topic, "error", "{\"reason\":\"too many refreshes\"}");
        return;
    }
    phx_buf_t token = {0}, uid = {0};
    phx_json_span_t raw;
    int64_t expires_ms = INT64_MAX;
    phx_refuse_t why;
    int rv = PHX_ERR_AUTH;
    if (!m->is_binary && phx_json_member(m->payload, m->payload_len, "access_token", &token, &raw))
        rv = phx_endpoint_token_user(ep, (const char *)token.data, &uid, &expires_ms, &why);
    const char *mine = phx_socket_assign(s, "user_id");
    if (rv == 0 && (mine == NULL || strcmp(mine, (const char *)uid.data) != 0))
        rv = PHX_ERR_AUTH; /* another user's token */
    phx_buf_dispose(&token);
    phx_buf_dispose(&uid);
    if (rv == 0)
        rv = phx_expiry_track(&ep->expiry, s, expires_ms); /* INT64_MAX: never due */
    if (rv != 0) {
        ep->loop->stats.token_refusals++;
        PHX_LOG_INFO("event=token_refresh_refused socket_id=%s", s->id ? s->id : "-");
        send_reply(s, own, m->ref, topic, "error", "{\"reason\":\"invalid token\"}");
        phx_socket_close(s, 4001);
        return;
    }
    ep->loop->stats.token_refreshes++;
    char json[48];
    if (expires_ms == INT64_MAX) {
        snprintf(json, sizeof(json), "{\"expires_at\":null}");
    } else {
        snprintf(json, sizeof(json), "{\"expires_at\":%lld}",
                 (long long)((expires_ms + 999) / 1000));
    }
    send_reply(s, own, m->ref, topic, "ok", json);
}

/* The end of a handle_in whose callback answered `res` with `reply` to
 * the message of `ref`. */
static void event_finish(phx_socket_t *s, phx_channel_t *ch, phx_result_t res,
                         const phx_reply_t *reply, phx_field_t ref)
{
    phx_field_t topic = topic_field(ch);
    switch (res) {
    case PHX_REPLY_OK:
    case PHX_REPLY_ERROR:
        send_reply_obj(s, phx_ref_field(&ch->own_ref), ref, topic, reply,
                       res == PHX_REPLY_OK ? "ok" : "error");
        break;
    case PHX_NOREPLY:
        break;
    case PHX_STOP:
        if (reply->is_set || reply->status[0])
            send_reply_obj(s, phx_ref_field(&ch->own_ref), ref, topic, reply, "ok");
        chan_lifecycle(ch, topic, "phx_close", empty_object);
        chan_end(ch, "stop");
        break;
    case PHX_CRASH:
    default:
        chan_lifecycle(ch, topic, "phx_error", "{\"reason\":\"channel_crash\"}");
        chan_end(ch, "crash");
        break;
    }
}

static void event(phx_socket_t *s, const phx_msg_t *m, phx_channel_t *ch)
{
    if (ch == NULL) {
        send_reply(s, phx_field_null(), m->ref, m->topic, "error",
                   "{\"reason\":\"unmatched topic\"}");
        return;
    }
    if (m->join_ref.kind != PHX_FIELD_NULL && !is_own_join_ref(ch, &m->join_ref))
        return; /* a message for an earlier join of this topic: dropped */
    if (s->ep->cfg->expire_sockets && ch->state == PHX_CHAN_JOINED &&
        phx_field_eq(&m->event, "access_token")) {
        refresh(s, m, ch);
        return;
    }
    const phx_route_t *route = chan_route(ch);
    const phx_channel_handler_t *h = route->handler;
    phx_reply_t reply = {0};
    phx_result_t res = PHX_CRASH;
    if (h->handle_in && m->event.kind == PHX_FIELD_STRING) {
        char *name = phx_strndup((const char *)m->event.p, m->event.len);
        if (name) {
            phx_payload_t payload = {m->payload, m->payload_len, m->is_binary};
            const phx_msg_t *prev_m;
            phx_channel_t *prev_ch;
            dispatching(s->ep, m, ch, &prev_m, &prev_ch);
            res = h->handle_in(ch, name, &payload, &reply, route->user);
            s->ep->dispatching = prev_m;
            s->ep->dispatching_ch = prev_ch;
            phx_free(name);
        }
    }
    if (s->is_closing || ch->state == PHX_CHAN_CLOSED) {
        phx_buf_dispose(&reply.payload);
        return;
    }
    if (!deferred(ch, &res))
        event_finish(s, ch, res, &reply, m->ref);
    phx_buf_dispose(&reply.payload);
}

/* A client message for a channel whose deferred answer has not come: it
 * waits, or is answered "unavailable" beyond the bounds. */
static void wait_or_refuse(phx_socket_t *s, phx_channel_t *ch, const phx_msg_t *m)
{
    if (wait_push(ch, m) == 0)
        return;
    static const char unavailable[] = "{\"reason\":\"unavailable\"}";
    if (phx_field_eq(&m->event, "phx_join"))
        send_reply(s, m->join_ref, m->ref, m->topic, "error", unavailable);
    else
        send_reply(s, phx_ref_field(&ch->own_ref), m->ref, m->topic, "error", unavailable);
}

void phx_channel_dispatch(phx_socket_t *s, const phx_msg_t *m)
{
    phx_channel_t *ch = find(s, &m->topic);
    if (ch && ch->has_wait)
        wait_or_refuse(s, ch, m);
    else if (phx_field_eq(&m->event, "phx_join"))
        join(s, m, ch);
    else if (phx_field_eq(&m->event, "phx_leave"))
        leave(s, m, ch);
    else
        event(s, m, ch);
}

void phx_channel_close_all(phx_socket_t *s, const char *reason)
{
    while (s->channels)
        chan_end(s->channels, reason);
}

/* ---- the public channel API ---- */

phx_socket_t *phx_channel_socket(const phx_channel_t *ch)
{
    return ch->sock;
}

const char *phx_channel_topic(const phx_channel_t *ch)
{
    return chan_topic(ch, NULL);
}

size_t phx_channel_subscriber_count(const phx_channel_t *ch)
{
    size_t len;
    const char *name = chan_topic(ch, &len);
    return phx_pubsub_subscriber_count(ch->sock->ep->pubsub, name, len);
}

void *phx_channel_data(const phx_channel_t *ch)
{
    return ch->data;
}

void phx_channel_set_data(phx_channel_t *ch, void *data)
{
    ch->data = data;
}

int phx_channel_push(phx_channel_t *ch, const char *event_name, const phx_payload_t *payload)
{
    if (ch->state != PHX_CHAN_JOINED)
        return PHX_ERR_STATE; /* no pushes before the join reply, or after the end */
    phx_out_t out = {
        .kind = PHX_OUT_PUSH,
        .join_ref = phx_ref_field(&ch->own_ref),
        .ref = phx_field_null(),
        .topic = topic_field(ch),
        .event = phx_field_str(event_name),
        .payload = payload ? payload->data : NULL,
        .payload_len = payload ? payload->len : 0,
        .is_binary = payload && payload->is_binary,
    };
    return phx_socket_send(ch->sock, &out);
}

static int chan_broadcast(phx_channel_t *ch, const char *event_name, const phx_payload_t *payload,
                          const phx_channel_t *exclude)
{
    /* A client event: never one of the protocol's or phxd's own, and it
     * never disconnects, whatever its name. */
    if (phx_event_is_reserved(event_name, strlen(event_name)))
        return PHX_ERR_PROTO;
    size_t len;
    const char *topic = chan_topic(ch, &len);
    return phx_endpoint_broadcast(ch->sock->ep, topic, len, event_name, payload,
                                  exclude ? phx_sub_origin_id(&exclude->sub) : 0,
                                  PHX_ORIGIN_CLIENT);
}

int phx_channel_broadcast(phx_channel_t *ch, const char *event_name, const phx_payload_t *payload)
{
    return chan_broadcast(ch, event_name, payload, NULL);
}

int phx_channel_broadcast_from(phx_channel_t *ch, const char *event_name,
                               const phx_payload_t *payload)
{
    return chan_broadcast(ch, event_name, payload, ch);
}

int phx_channel_defer(phx_channel_t *ch)
{
    phx_endpoint_t *ep = ch->sock->ep;
    const phx_msg_t *m = ep->dispatching;
    if (m == NULL || ep->dispatching_ch != ch || ch->has_wait)
        return PHX_ERR_STATE;
    struct phx_chan_wait *w = phx_calloc(1, sizeof(*w));
    if (w == NULL || ref_copy(&w->ref, &m->ref) != 0 || ref_copy(&w->join_ref, &m->join_ref) != 0) {
        wait_free(ep, w);
        return PHX_ERR_NOMEM;
    }
    w->is_join = ch->state == PHX_CHAN_JOINING;
    w->tail = &w->head;
    w->topic_name = ch->topic_name; /* the wait takes the name's slot */
    ch->wait = w;
    ch->has_wait = true;
    return 0;
}

int phx_channel_resolve(phx_channel_t *ch, phx_result_t result, const char *status,
                        const phx_payload_t *response)
{
    return phx_channel_resolve_then(ch, result, status, response, NULL, NULL);
}

bool phx_channel_refs(const phx_channel_t *ch, phx_field_t *join_ref, phx_field_t *ref)
{
    const phx_endpoint_t *ep = ch->sock->ep;
    if (ep->dispatching == NULL || ep->dispatching_ch != ch)
        return false;
    *join_ref = ep->dispatching->join_ref;
    *ref = ep->dispatching->ref;
    return true;
}

int phx_channel_resolve_then(phx_channel_t *ch, phx_result_t result, const char *status,
                             const phx_payload_t *response, void (*after)(phx_channel_t *, void *),
                             void *arg)
{
    if (!ch->has_wait || !ch->wait->is_parked)
        return PHX_ERR_STATE;
    phx_socket_t *s = ch->sock;
    if (s->is_closing)
        return PHX_ERR_CLOSED; /* the channel ends with its socket */
    phx_endpoint_t *ep = s->ep;
    struct phx_chan_wait *w = wait_take(ch);
    phx_reply_t reply = {0};
    if ((response && phx_reply_set(&reply, response) != 0) ||
        (status && phx_reply_set_status(&reply, status) != 0))
        result = PHX_CRASH;
    if (result == PHX_DEFER)
        result = PHX_CRASH;
    phx_socket_hold(s);
    if (w->is_join) {
        if (result != PHX_REPLY_OK && result != PHX_REPLY_ERROR)
            result = PHX_CRASH;
        join_finish(s, ch, result, &reply, phx_ref_field(&w->join_ref), phx_ref_field(&w->ref),
                    true);
        if (after && result == PHX_REPLY_OK && !s->is_closing)
            after(ch, arg); /* joined: pushes follow the reply */
    } else {
        event_finish(s, ch, result, &reply, phx_ref_field(&w->ref));
    }
    phx_buf_dispose(&reply.payload);
    /* The messages that waited, in order; each may defer again, and those
     * after it then wait for that answer. */
    while (w->head && !s->is_closing) {
        phx_waiting_t *q = w->head;
        w->head = q->next;
        w->count--;
        phx_channel_dispatch(s, &q->m);
        waiting_free(ep, q);
    }
    wait_free(ep, w);
    phx_socket_release(s);
    return 0;
}

/* A broadcast reaches a channel: sent in its socket's wire format, the
 * same buffer for every socket of that format. */
static bool chan_deliver(phx_sub_t *sub, phx_fanout_t *f)
{
    phx_channel_t *ch = PHX_CONTAINER_OF(sub, phx_channel_t, sub);
    if (ch->state != PHX_CHAN_JOINED)
        return false;
    phx_socket_t *s = ch->sock;
    if (s->is_closing)
        return false;
    if (f->msg.is_binary && (s->fmt == PHX_FMT_V1_JSON || !s->ops->supports_binary))
        return false; /* V1 and LongPoll cannot carry binary payloads */
    phx_rcbuf_t *enc = phx_fanout_encoded(f, s->fmt);
    if (enc == NULL)
        return false;
    s->ops->send(s->transport, phx_rcbuf_ref(enc));
    return true;
}
