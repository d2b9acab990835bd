/* presence.h: Phoenix.Presence on one node (docs/protocol.md, "Presence").
 *
 * A topic's presences are keys (strings), each with one or more metas (a
 * JSON object per tracked channel, with its own phx_ref). A joining
 * channel that asked for it receives `presence_state` (the whole list)
 * right after its join reply; changes reach every subscriber of the topic
 * as `presence_diff` broadcasts ({"joins": {...}, "leaves": {...}}),
 * delivered through the PubSub to this node's subscribers (so encoded once
 * per wire format). In a cluster every node holds the whole cluster's
 * presences (presence_cluster.h replicates them) and makes the diffs for
 * its own subscribers: a diff never crosses to another node.
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

#include "list.h"
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

/* The key the channel is tracked under, or NULL. */
const char *phx_presence_key_of(const phx_channel_t *ch);

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

/* ---- other nodes' presences (presence_cluster.h) ----
 * Metas of other nodes sit in the same topics and keys as this node's own,
 * so presence_state, presence_diff and phx_presence_list_json show the
 * whole cluster. Each belongs to a source (one per other node) whose metas
 * can leave all at once. The bounds of a local track apply to the merged
 * view, and cfg.presence_max_remote caps other nodes' metas in all. */
typedef struct phx_presence_src {
    phx_list_t metas; /* its metas, in order of arrival */
    uint32_t gen;     /* a state being applied marks the metas it names */
    uint32_t refused; /* joins refused by the bounds since its last state */
} phx_presence_src_t;

struct phx_pmsg_op;
typedef struct phx_pcluster phx_pcluster_t;

/* Another node's join (op->kind ignored; fields borrowed, copied): tracked
 * under `src` with the diffs a local join makes, or only marked with
 * src->gen when `src` has that ref there already. Returns 0, PHX_ERR_LIMIT
 * (the bounds) or PHX_ERR_NOMEM. */
int phx_presence_remote_join(phx_presence_t *p, phx_presence_src_t *src,
                             const struct phx_pmsg_op *op);
/* Another node's leave of op->ref on op->topic / op->key. Returns 0 or
 * PHX_ERR_NOTFOUND. */
int phx_presence_remote_leave(phx_presence_t *p, phx_presence_src_t *src,
                              const struct phx_pmsg_op *op);
/* Leaves every meta of `src` (all), or those not marked with src->gen.
 * Returns how many left. */
size_t phx_presence_remote_sweep(phx_presence_t *p, phx_presence_src_t *src, bool all);
/* Calls `fn` with a join op for every committed local meta (a state for
 * the other nodes). `fn` must not change presences. */
void phx_presence_foreach_local(phx_presence_t *p,
                                void (*fn)(void *arg, const struct phx_pmsg_op *op), void *arg);
/* Metas of this node's channels / of other nodes. */
size_t phx_presence_local_count(const phx_presence_t *p);
size_t phx_presence_remote_count(const phx_presence_t *p);
/* The replication of `p` (valid for its life). */
phx_pcluster_t *phx_presence_cluster(const phx_presence_t *p);

/* Whether a client may not broadcast `event` (len bytes): every phx_*
 * name and presence_state / presence_diff (events of the protocol or
 * pushed by phxd itself). */
bool phx_event_is_reserved(const char *event, size_t len);

#endif /* PHX_PRESENCE_H */
