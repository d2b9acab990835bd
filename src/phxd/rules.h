/* rules.h: channel rules, phxd's configurable channel policy. Pure: parses
 * rule text, matches topics and formats rules back; policy.c turns them
 * into channel handlers. Leaf module (mem, conffile's quoting).
 *
 * A rule is a topic pattern followed by settings, separated by blanks;
 * several rules in one text are separated by ';':
 *
 *   "room:*" join=any events=broadcast event:ping=reply max-payload-bytes=64k
 *   private:* join=user events=broadcast_from max-subscribers=2
 *   notice:all join=any events=refuse
 *
 * pattern           an exact topic, or a prefix ending in '*' (the only '*')
 * join=             any (default): any connected socket; user: only the
 *                   socket whose user id equals the part of the topic
 *                   matched by '*' (or segment N, below); none: nobody
 * events=           what a client event does: broadcast (default; to every
 *                   subscriber, sender included, then reply ok {}),
 *                   broadcast_from (to the others, then ok {}), reply (ok
 *                   with the event's own payload), refuse (error
 *                   {"reason":"unauthorized"})
 * event:NAME=       the same choice for one event name, overriding events=
 * max-payload-bytes=N  larger client payloads get error
 *                   {"reason":"payload too large"} (suffixes k, m)
 * max-subscribers=N a join beyond N subscribers of the topic gets error
 *                   {"reason":"too many subscribers"}
 * user-segment=N    join=user compares with the N-th ':'-separated part of
 *                   the topic (1 = the first) instead of the '*' part
 * presence=         none (default) or user: every join of a matching topic
 *                   is tracked in Phoenix.Presence under the socket's
 *                   user_id with meta {"online_at": "<unix seconds>"}, and
 *                   gets presence_state after its reply (presence.h)
 * presence-max=N    with presence=user: at most N presences (user ids) per
 *                   topic; a join beyond still succeeds, untracked, its
 *                   reply {"presence":"not tracked","reason":"too many
 *                   presences on this topic"} (as --presence-max-keys)
 *
 * join=backend     the application's backend decides (a join call, whose
 *                   answer is the reply; docs/backend.md)
 * events=backend    every client event is an event call (handle_in), as is
 *                   one event with event:NAME=backend
 * backend=URL       the backend of this rule's calls (default --backend-url)
 *
 * Words may be quoted as in the config file ("..." or '...'). */
#ifndef PHX_RULES_H
#define PHX_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define PHX_RULES_MAX 1000      /* rules in one policy */
#define PHX_RULE_MAX_EVENTS 64  /* event:NAME overrides per rule */
#define PHX_RULE_MAX_SEGMENT 64 /* largest user-segment */

typedef enum {
    PHX_RULE_JOIN_ANY = 0,
    PHX_RULE_JOIN_USER,
    PHX_RULE_JOIN_NONE,
    PHX_RULE_JOIN_BACKEND,
} phx_rule_join_t;

typedef enum {
    PHX_RULE_BROADCAST = 0,
    PHX_RULE_BROADCAST_FROM,
    PHX_RULE_REPLY,
    PHX_RULE_REFUSE,
    PHX_RULE_BACKEND,
} phx_rule_action_t;

typedef enum {
    PHX_RULE_PRESENCE_NONE = 0,
    PHX_RULE_PRESENCE_USER,
} phx_rule_presence_t;

typedef struct phx_rule_event {
    const char *name; /* owned by the rule (const only for static rules) */
    phx_rule_action_t action;
} phx_rule_event_t;

typedef struct phx_rule {
    const char *pattern; /* as given, with its '*' */
    size_t prefix_len;   /* bytes before the '*', or the whole length */
    bool is_prefix;
    phx_rule_join_t join;
    phx_rule_action_t events;
    const phx_rule_event_t *overrides;
    size_t noverrides;
    size_t max_payload_bytes; /* 0: no limit */
    size_t max_subscribers;   /* 0: no limit */
    unsigned user_segment;    /* 0: the part matched by '*' */
    phx_rule_presence_t presence;
    size_t presence_max;               /* presences per topic; 0: only --presence-max-keys */
    const char *backend_url;           /* backend=URL (owned), or NULL: --backend-url */
    struct phx_backend_target *target; /* set when the rules are installed */
} phx_rule_t;

/* A list of rules; the first that matches a topic wins. */
typedef struct phx_rules {
    phx_rule_t *items;
    size_t count;
    bool is_static; /* phx_rules_default(): never disposed */
} phx_rules_t;

/* Parses `text` (one or more rules separated by ';'; borrowed) and appends
 * the rules to `rules` (copies everything). Returns 0, or PHX_ERR_INVALID /
 * PHX_ERR_LIMIT with one line in `err` (PHX_ERR_LEN bytes) naming the rule,
 * or PHX_ERR_NOMEM; on error `rules` keeps only what it held before. */
int phx_rules_parse(phx_rules_t *rules, const char *text, char *err);

/* Frees every rule (and resets the list). No-op on the static default. */
void phx_rules_dispose(phx_rules_t *rules);

/* phxd's built-in policy as rules:
 *   "user:*" join=user events=broadcast event:ping=reply
 *   "room:*" join=any events=broadcast event:ping=reply
 * Static; valid for the life of the process. */
const phx_rules_t *phx_rules_default(void);

/* Whether `topic` (len bytes) matches the rule's pattern, as Phoenix routes
 * channels: the exact topic, or any topic starting with the prefix. */
bool phx_rule_matches(const phx_rule_t *r, const char *topic, size_t len);
/* The first rule matching `topic`, or NULL. Borrowed from `rules`. */
const phx_rule_t *phx_rules_match(const phx_rules_t *rules, const char *topic, size_t len);

/* The part of `topic` that join=user compares with the user id: the text
 * after the prefix, or segment user_segment. False when there is none or
 * it is empty (`private:`, `inbox::x`). *part points into `topic`. */
bool phx_rule_user_part(const phx_rule_t *r, const char *topic, const char **part, size_t *len);

/* What client event `event` does under the rule. */
phx_rule_action_t phx_rule_action(const phx_rule_t *r, const char *event);

/* Appends the rule in the syntax above, every setting spelled out, so that
 * the text parses back to the same rule. Returns 0 or PHX_ERR_NOMEM. */
int phx_rule_format(const phx_rule_t *r, phx_buf_t *out);

/* Whether the rule makes backend calls (join=backend, events=backend or
 * an event:NAME=backend). */
bool phx_rule_uses_backend(const phx_rule_t *r);

const char *phx_rule_join_name(phx_rule_join_t j);
const char *phx_rule_action_name(phx_rule_action_t a);

#endif /* PHX_RULES_H */
