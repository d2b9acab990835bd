/* channel.h: channel instances (one per joined topic per socket) and the
 * join/leave/dispatch lifecycle of docs/protocol.md §3, calling the
 * handlers registered by topic pattern. */
#ifndef PHX_CHANNEL_H
#define PHX_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "endpoint.h"
#include "phx.h"
#include "pubsub.h"
#include "serializer.h"

/* A ref kept beyond the frame it arrived in (join_ref as sent). */
typedef struct phx_ref {
    uint8_t kind; /* phx_field_kind_t */
    uint16_t len;
    uint8_t *bytes; /* owned; NULL for null */
} phx_ref_t;

typedef enum {
    PHX_CHAN_JOINING = 0, /* inside the join callback */
    PHX_CHAN_JOINED,
    PHX_CHAN_CLOSED, /* terminated, waiting to be freed */
} phx_chan_state_t;

struct phx_channel {
    phx_socket_t *sock;
    phx_channel_t *next; /* the socket's channels */
    phx_sub_t sub;       /* sub.topic is set while subscribed */
    uint8_t state;
    bool join_ref_is_null; /* the phx_join had no join_ref */
    bool wants_presence;   /* gets presence_state after each join */
    bool has_wait;         /* `wait` holds a deferred answer (and the name while joining) */
    uint16_t route;        /* index of its route in the endpoint's (stable when routes grow) */
    void *data;
    union {
        char *topic_name;           /* only while not subscribed (joining) */
        struct phx_chan_wait *wait; /* with has_wait: a deferred answer and what waits for it */
    };
    /* The join_ref as the phx_join sent it, or the join's ref when that was
     * null (then join_ref_is_null): the ref of this instance's replies. */
    phx_ref_t own_ref;
    struct phx_pmeta *presence; /* its tracked presence (presence.c), or NULL */
};

struct phx_reply {
    phx_buf_t payload;
    bool is_binary;
    bool is_set;
    char status[32];
};

/* The socket's handling of one decoded message that is not a heartbeat. */
void phx_channel_dispatch(phx_socket_t *s, const phx_msg_t *m);
/* Terminates every channel of a socket that is going away (no messages are
 * sent) and frees them. */
void phx_channel_close_all(phx_socket_t *s, const char *reason);

phx_field_t phx_ref_field(const phx_ref_t *r);

/* Inside a join or handle_in callback of `ch`: the join_ref and ref of the
 * message it handles (borrowed for the call). False elsewhere. */
bool phx_channel_refs(const phx_channel_t *ch, phx_field_t *join_ref, phx_field_t *ref);
/* phx_channel_resolve, running `after(ch, arg)` once a deferred join has
 * been answered ok (its reply sent) and before the messages that waited
 * are handled: what the join's answer pushes goes out in its place. */
int phx_channel_resolve_then(phx_channel_t *ch, phx_result_t result, const char *status,
                             const phx_payload_t *response, void (*after)(phx_channel_t *, void *),
                             void *arg);

#endif /* PHX_CHANNEL_H */
