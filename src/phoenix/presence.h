/* presence.h: Phoenix.Presence on one node (docs/protocol.md, "Presence").
 *
 * A topic's presences are keys (strings), each with one or more metas (a
 * JSON object per tracked channel, with its own phx_ref). A joining
 * channel that asked for it receives `presence_state` (the whole list)
 * right after its join reply; changes reach every subscriber of the topic
 * as `presence_diff` broadcasts ({"joins": {...}, "leaves": {...}}),
 * published through the PubSub (so encoded once per wire format).
 *
 * Coalescing: a topic's changes within cfg.presence_diff_ms leave as one
 * presence_diff per window (0: one per loop turn). A join followed by its
 * own leave inside one window cancels out, unless a presence_state that
 * showed the join went out in between (then both go in the diff, which
 * phoenix.js applies joins first, so the net is nothing for everyone).
 *
 * The public half (phx_presence_track, _untrack, _sync) is in
 * include/phx.h; a channel tracked here leaves its presence when it ends
 * (leave, close, crash, disconnect: channel.c calls phx_presence_end). */
#ifndef PHX_PRESENCE_H
#define PHX_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"
#include "phx.h"

typedef struct phx_presence phx_presence_t;
typedef struct phx_pmeta phx_pmeta_t;
struct phx_endpoint;

/* Creates the presence state of `ep` and takes part in its loop (a hook).
 * Returns 0 or PHX_ERR_NOMEM. */
int phx_presence_new(phx_presence_t **out, struct phx_endpoint *ep);
/* Leaves the loop and frees everything (pending diffs are dropped).
 * NULL is a no-op. */
void phx_presence_free(phx_presence_t *p);

/* channel.c: the join reply went out; commits a track asked for during
 * the join callback and pushes presence_state when the channel asked for
 * it. */
void phx_presence_joined(phx_channel_t *ch);
/* channel.c: the channel ends (or its join failed): leaves its presence. */
void phx_presence_end(phx_channel_t *ch);

/* phx_presence_track, with why a refused track was refused (a static
 * string: "too many presences on this topic", "too many metas for this
 * key", "meta too large", ...), or NULL. */
int phx_presence_track_why(phx_channel_t *ch, const char *key, const char *meta_json,
                           const char **why);
/* phx_presence_track_why with a cap of `max_keys` keys (presences) on the
 * topic as well as cfg.presence_max_keys (the smaller applies; 0: only the
 * config's): a channel rule's presence-max=N. A new key beyond it is
 * refused as beyond the config's ("too many presences on this topic"). */
int phx_presence_track_max(phx_channel_t *ch, const char *key, const char *meta_json,
                           size_t max_keys, const char **why);

/* Sends every topic's pending diff now (tests; the loop does it by
 * itself). */
void phx_presence_flush(phx_presence_t *p);

/* The topic's presences in the presence_state shape ({} when none),
 * appended to `out`. Returns 0 or PHX_ERR_NOMEM. */
int phx_presence_list_json(phx_presence_t *p, const char *topic, size_t len, phx_buf_t *out);

/* Counts: metas tracked, topics with presences, diffs sent. */
size_t phx_presence_count(const phx_presence_t *p);
size_t phx_presence_topic_count(const phx_presence_t *p);
/* Metas of `key` on `topic` (0 when none). */
size_t phx_presence_key_metas(phx_presence_t *p, const char *topic, const char *key);

/* Whether a client may not broadcast `event` (len bytes): every phx_*
 * name and presence_state / presence_diff (events of the protocol or
 * pushed by phxd itself). */
bool phx_event_is_reserved(const char *event, size_t len);

#endif /* PHX_PRESENCE_H */
