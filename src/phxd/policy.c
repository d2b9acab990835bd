/* policy.c: channel handlers that carry out a channel rule (see policy.h).
 * Each route's user pointer is its phx_rule_t; nothing here allocates. */
#include "policy.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "log.h"
#include "presence.h"
#include "server.h"

static phx_result_t refuse(phx_reply_t *reply, const char *json)
{
    phx_payload_t reason = {(const uint8_t *)json, strlen(json), false};
    phx_reply_set(reply, &reason);
    return PHX_REPLY_ERROR;
}

static const char unauthorized[] = "{\"reason\":\"unauthorized\"}";

/* presence=user: the socket is tracked under its user id with Phoenix's
 * generator's meta, and gets presence_state after the join reply whether
 * tracked or not (a socket without a user id only watches). A refused
 * track (beyond the rule's presence-max or a --presence-max-* bound) still
 * joins: the reply says why it is not in the list. */
static void track_user(phx_channel_t *ch, const phx_rule_t *r, phx_reply_t *reply)
{
    const char *uid = phx_socket_assign(phx_channel_socket(ch), "user_id");
    phx_presence_sync(ch);
    if (uid == NULL)
        return;
    char meta[48];
    snprintf(meta, sizeof(meta), "{\"online_at\":\"%lld\"}", (long long)time(NULL));
    const char *why = NULL;
    if (phx_presence_track_max(ch, uid, meta, r->presence_max, &why) != 0 && why) {
        char json[160];
        snprintf(json, sizeof(json), "{\"presence\":\"not tracked\",\"reason\":\"%s\"}", why);
        phx_payload_t p = {(const uint8_t *)json, strlen(json), false};
        phx_reply_set(reply, &p);
    }
}

static phx_result_t rule_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                              phx_reply_t *reply, void *user)
{
    const phx_rule_t *r = user;
    if (r->join == PHX_RULE_JOIN_NONE)
        return refuse(reply, unauthorized);
    if (r->join == PHX_RULE_JOIN_BACKEND) {
        /* The rule's own bounds first, then the application decides. */
        if (r->max_subscribers && phx_channel_subscriber_count(ch) >= r->max_subscribers)
            return refuse(reply, "{\"reason\":\"too many subscribers\"}");
        if (r->presence == PHX_RULE_PRESENCE_USER)
            track_user(ch, r, reply);
        return phx_backend_join(r->target, ch, topic, params, reply);
    }
    if (r->join == PHX_RULE_JOIN_USER) {
        const char *uid = phx_socket_assign(phx_channel_socket(ch), "user_id");
        const char *part;
        size_t len;
        if (uid == NULL || !phx_rule_user_part(r, topic, &part, &len) || strlen(uid) != len ||
            memcmp(part, uid, len) != 0)
            return refuse(reply, unauthorized);
    }
    /* The joining channel is not subscribed yet, so the count is of the
     * others. */
    if (r->max_subscribers && phx_channel_subscriber_count(ch) >= r->max_subscribers)
        return refuse(reply, "{\"reason\":\"too many subscribers\"}");
    if (r->presence == PHX_RULE_PRESENCE_USER)
        track_user(ch, r, reply);
    return PHX_REPLY_OK;
}

static phx_result_t rule_in(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                            phx_reply_t *reply, void *user)
{
    const phx_rule_t *r = user;
    if (r->max_payload_bytes && payload->len > r->max_payload_bytes)
        return refuse(reply, "{\"reason\":\"payload too large\"}");
    phx_rule_action_t action = phx_rule_action(r, event);
    int rv;
    switch (action) {
    case PHX_RULE_REFUSE:
        return refuse(reply, unauthorized);
    case PHX_RULE_REPLY:
        phx_reply_set(reply, payload);
        return PHX_REPLY_OK;
    case PHX_RULE_BROADCAST:
        rv = phx_channel_broadcast(ch, event, payload);
        break;
    case PHX_RULE_BROADCAST_FROM:
        rv = phx_channel_broadcast_from(ch, event, payload);
        break;
    case PHX_RULE_BACKEND:
        return phx_backend_event(r->target, ch, event, payload, reply);
    default:
        return PHX_CRASH;
    }
    /* The library never relays phx_* or presence_* from a client. */
    if (rv == PHX_ERR_PROTO)
        return refuse(reply, "{\"reason\":\"reserved event\"}");
    /* Phoenix refuses to broadcast a payload that is not a map. */
    if (rv == PHX_ERR_INVALID)
        return refuse(reply, "{\"reason\":\"payload must be an object\"}");
    if (rv < 0)
        return PHX_CRASH;
    return PHX_REPLY_OK;
}

/* A channel of a backend rule ends: the call in flight is forgotten, and
 * the backend hears of the leave when it decided the join. */
static void rule_terminate(phx_channel_t *ch, const char *reason, void *user)
{
    const phx_rule_t *r = user;
    if (r->target)
        phx_backend_end(r->target, ch, reason, r->join == PHX_RULE_JOIN_BACKEND);
}

static const phx_channel_handler_t rule_handler = {
    .join = rule_join,
    .handle_in = rule_in,
    .terminate = rule_terminate,
};

int phx_policy_install_rules(phx_server_t *srv, const phx_rules_t *rules)
{
    for (size_t i = 0; i < rules->count; i++) {
        const phx_rule_t *r = &rules->items[i];
        if (!rules->is_static && phx_rule_uses_backend(r)) {
            phx_backend_t *b = phx_server_backend(srv);
            char err[PHX_ERR_LEN];
            phx_backend_target_t *t = b ? phx_backend_target(b, r->backend_url, err) : NULL;
            if (t == NULL) {
                PHX_LOG_ERROR("event=rules_error pattern=\"%s\" error=\"%s\"", r->pattern,
                              b ? err : "out of memory");
                return b ? PHX_ERR_INVALID : PHX_ERR_NOMEM;
            }
            ((phx_rule_t *)r)->target = t;
        }
        int rv = phx_server_channel(srv, r->pattern, &rule_handler, (void *)r);
        if (rv != 0)
            return rv;
    }
    return 0;
}

int phx_policy_install(phx_server_t *srv)
{
    return phx_policy_install_rules(srv, phx_rules_default());
}
