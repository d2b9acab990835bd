/* policy.c: phxd's default channel handlers (see policy.h). */
#include "policy.h"

#include <string.h>

static const char unauthorized[] = "{\"reason\":\"unauthorized\"}";

static phx_result_t user_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                              phx_reply_t *reply, void *user)
{
    const char *uid = phx_socket_assign(phx_channel_socket(ch), "user_id");
    const char *want = strchr(topic, ':');
    if (uid != NULL && want != NULL && strcmp(want + 1, uid) == 0)
        return PHX_REPLY_OK;
    phx_payload_t reason = {(const uint8_t *)unauthorized, sizeof(unauthorized) - 1, false};
    phx_reply_set(reply, &reason);
    return PHX_REPLY_ERROR;
}

static phx_result_t any_join(phx_channel_t *ch, const char *topic, const phx_payload_t *params,
                             phx_reply_t *reply, void *user)
{
    return PHX_REPLY_OK;
}

/* "ping" answers with its own payload; anything else goes to every
 * subscriber of the topic, then the sender gets ok {}. */
static phx_result_t room_in(phx_channel_t *ch, const char *event, const phx_payload_t *payload,
                            phx_reply_t *reply, void *user)
{
    if (strcmp(event, "ping") == 0) {
        phx_reply_set(reply, payload);
        return PHX_REPLY_OK;
    }
    int rv = phx_channel_broadcast(ch, event, payload);
    if (rv < 0 && rv != PHX_ERR_INVALID)
        return PHX_CRASH;
    if (rv == PHX_ERR_INVALID) {
        /* Phoenix refuses to broadcast a payload that is not a map. */
        static const char bad[] = "{\"reason\":\"payload must be an object\"}";
        phx_payload_t reason = {(const uint8_t *)bad, sizeof(bad) - 1, false};
        phx_reply_set(reply, &reason);
        return PHX_REPLY_ERROR;
    }
    return PHX_REPLY_OK;
}

static const phx_channel_handler_t user_handler = {
    .join = user_join,
    .handle_in = room_in,
};

static const phx_channel_handler_t room_handler = {
    .join = any_join,
    .handle_in = room_in,
};

int phx_policy_install(phx_server_t *srv)
{
    int rv = phx_server_channel(srv, "user:*", &user_handler, NULL);
    if (rv == 0)
        rv = phx_server_channel(srv, "room:*", &room_handler, NULL);
    return rv;
}
