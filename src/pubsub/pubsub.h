/* pubsub.h: the local PubSub. A keyed hash map from topic to its
 * subscribers (channel instances), fan-out that encodes each broadcast once
 * per wire format and hands the same buffer to every recipient, and the
 * registry of socket ids that disconnect by id closes. The two never meet:
 * a broadcast only delivers, and only phx_pubsub_disconnect closes. */
#ifndef PHX_PUBSUB_H
#define PHX_PUBSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phx.h"

typedef struct phx_pubsub phx_pubsub_t;
typedef struct phx_topic phx_topic_t;

/* Creates the PubSub of `srv`. Returns 0 or PHX_ERR_NOMEM. */
int phx_pubsub_new(phx_pubsub_t **out, phx_server_t *srv);
/* Frees it; every subscription must be gone. NULL is a no-op. */
void phx_pubsub_free(phx_pubsub_t *ps);

/* Subscribes `ch` to `topic` (copied). Returns 0 or PHX_ERR_NOMEM. */
int phx_pubsub_subscribe(phx_pubsub_t *ps, phx_channel_t *ch, const char *topic, size_t len);
/* Removes the subscription of `ch` (no-op when it has none). Safe during a
 * broadcast to the same topic. */
void phx_pubsub_unsubscribe(phx_pubsub_t *ps, phx_channel_t *ch);
/* The topic name of a subscribed channel (NUL-terminated). */
const char *phx_topic_name(const phx_topic_t *t, size_t *len);

/* Delivers `event`/`payload` to every subscriber of `topic` except
 * `exclude` (may be NULL), encoded once per wire format. Never closes a
 * socket, whatever the event: client events are broadcast through here, so
 * a client's "disconnect" is an ordinary event. Returns the number of
 * recipients or a negative code (PHX_ERR_INVALID: a payload that cannot be
 * encoded; PHX_ERR_NOMEM). */
int phx_pubsub_broadcast(phx_pubsub_t *ps, const char *topic, size_t topic_len, const char *event,
                         size_t event_len, const phx_payload_t *payload,
                         const phx_channel_t *exclude);

/* Socket ids: register/unregister a socket under its id (phx_socket_id). */
int phx_pubsub_add_id(phx_pubsub_t *ps, phx_socket_t *s);
void phx_pubsub_remove_id(phx_pubsub_t *ps, phx_socket_t *s);
/* Whether some socket is registered under the id `id`. */
bool phx_pubsub_has_id(const phx_pubsub_t *ps, const char *id, size_t len);
/* Closes (1001) every socket registered under `id`; the topic's
 * subscribers are not told. For server-side sources only (the HTTP API,
 * phx_broadcast): nothing a client sends leads here. Returns the number of
 * sockets closed. */
int phx_pubsub_disconnect(phx_pubsub_t *ps, const char *id, size_t len);

/* Counts for metrics and tests. */
size_t phx_pubsub_topic_count(const phx_pubsub_t *ps);
size_t phx_pubsub_subscriber_count(const phx_pubsub_t *ps, const char *topic, size_t len);

#endif /* PHX_PUBSUB_H */
