/* rules.c: parsing, matching and formatting of channel rules (see
 * rules.h). Owns the rules it parses; policy.c only reads them. */
#include "rules.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conffile.h"
#include "phx.h"

/* ---- the built-in policy ---- */

static const phx_rule_event_t ping_reply[] = {{"ping", PHX_RULE_REPLY}};

static const phx_rule_t default_items[] = {
    {.pattern = "user:*",
     .prefix_len = 5,
     .is_prefix = true,
     .join = PHX_RULE_JOIN_USER,
     .events = PHX_RULE_BROADCAST,
     .overrides = ping_reply,
     .noverrides = 1},
    {.pattern = "room:*",
     .prefix_len = 5,
     .is_prefix = true,
     .join = PHX_RULE_JOIN_ANY,
     .events = PHX_RULE_BROADCAST,
     .overrides = ping_reply,
     .noverrides = 1},
};

static const phx_rules_t default_rules = {(phx_rule_t *)default_items, 2, true};

const phx_rules_t *phx_rules_default(void)
{
    return &default_rules;
}

/* ---- names ---- */

static const char *const join_names[] = {"any", "user", "none", "backend"};
static const char *const action_names[] = {"broadcast", "broadcast_from", "reply", "refuse",
                                           "backend"};

const char *phx_rule_join_name(phx_rule_join_t j)
{
    return join_names[j];
}

const char *phx_rule_action_name(phx_rule_action_t a)
{
    return action_names[a];
}

static bool parse_action(const char *s, phx_rule_action_t *out)
{
    for (size_t i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
        if (strcmp(s, action_names[i]) == 0) {
            *out = (phx_rule_action_t)i;
            return true;
        }
    }
    if (strcmp(s, "broadcast-from") == 0) {
        *out = PHX_RULE_BROADCAST_FROM;
        return true;
    }
    return false;
}

/* A decimal count from 1 to `max`, with an optional k/m (KiB/MiB) suffix
 * when `allow_suffix`. */
static bool parse_count(const char *s, bool allow_suffix, unsigned long long max, size_t *out)
{
    if (*s < '0' || *s > '9')
        return false;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return false;
    unsigned long long mul = 1;
    if (allow_suffix && *end) {
        if (strcasecmp(end, "k") == 0 || strcasecmp(end, "kib") == 0)
            mul = 1024;
        else if (strcasecmp(end, "m") == 0 || strcasecmp(end, "mib") == 0)
            mul = 1024 * 1024;
        else
            return false;
    } else if (*end) {
        return false;
    }
    if (v == 0 || v > max / mul)
        return false;
    *out = (size_t)(v * mul);
    return true;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* ---- parsing ---- */

static void rule_dispose(phx_rule_t *r)
{
    phx_free((char *)r->pattern);
    for (size_t i = 0; i < r->noverrides; i++)
        phx_free((char *)r->overrides[i].name);
    phx_free((phx_rule_event_t *)r->overrides);
    phx_free((char *)r->backend_url);
    memset(r, 0, sizeof(*r));
}

void phx_rules_dispose(phx_rules_t *rules)
{
    if (rules->is_static)
        return;
    for (size_t i = 0; i < rules->count; i++)
        rule_dispose(&rules->items[i]);
    phx_free(rules->items);
    memset(rules, 0, sizeof(*rules));
}

enum {
    SET_JOIN = 1,
    SET_EVENTS = 2,
    SET_MAX_PAYLOAD = 4,
    SET_MAX_SUBS = 8,
    SET_SEGMENT = 16,
    SET_PRESENCE = 32,
    SET_PRESENCE_MAX = 64,
    SET_BACKEND = 128,
};

bool phx_rule_uses_backend(const phx_rule_t *r)
{
    if (r->join == PHX_RULE_JOIN_BACKEND || r->events == PHX_RULE_BACKEND)
        return true;
    for (size_t i = 0; i < r->noverrides; i++)
        if (r->overrides[i].action == PHX_RULE_BACKEND)
            return true;
    return false;
}

static int add_override(phx_rule_t *r, const char *name, phx_rule_action_t a, const char **why)
{
    for (size_t i = 0; i < r->noverrides; i++) {
        if (strcmp(r->overrides[i].name, name) == 0) {
            *why = "the same event:NAME is given twice";
            return PHX_ERR_INVALID;
        }
    }
    if (r->noverrides >= PHX_RULE_MAX_EVENTS) {
        *why = "too many event:NAME settings";
        return PHX_ERR_LIMIT;
    }
    phx_rule_event_t *ev =
        phx_realloc((phx_rule_event_t *)r->overrides, (r->noverrides + 1) * sizeof(*ev));
    if (ev == NULL)
        return PHX_ERR_NOMEM;
    r->overrides = ev;
    char *copy = phx_strdup(name);
    if (copy == NULL)
        return PHX_ERR_NOMEM;
    ev[r->noverrides++] = (phx_rule_event_t){copy, a};
    return 0;
}

/* Applies one `key=value` word to the rule. */
static int apply_setting(phx_rule_t *r, char *word, unsigned *seen, const char **why)
{
    if (strncmp(word, "backend=", 8) == 0) {
        /* a URL may hold '=' itself */
        const char *url = word + 8;
        if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
            has_control(url)) {
            *why = "backend must be an http:// or https:// URL";
            return PHX_ERR_INVALID;
        }
        if (*seen & SET_BACKEND) {
            *why = "setting given twice";
            return PHX_ERR_INVALID;
        }
        *seen |= SET_BACKEND;
        if ((r->backend_url = phx_strdup(url)) == NULL)
            return PHX_ERR_NOMEM;
        return 0;
    }
    char *eq = strrchr(word, '=');
    if (eq == NULL || eq == word) {
        *why = "expected setting=value";
        return PHX_ERR_INVALID;
    }
    *eq = '\0';
    const char *key = word, *val = eq + 1;
    unsigned bit = 0;
    bool ok = true;
    if (strcmp(key, "join") == 0) {
        bit = SET_JOIN;
        if (strcmp(val, "any") == 0)
            r->join = PHX_RULE_JOIN_ANY;
        else if (strcmp(val, "user") == 0)
            r->join = PHX_RULE_JOIN_USER;
        else if (strcmp(val, "none") == 0)
            r->join = PHX_RULE_JOIN_NONE;
        else if (strcmp(val, "backend") == 0)
            r->join = PHX_RULE_JOIN_BACKEND;
        else
            ok = false;
        *why = "join must be any, user, none or backend";
    } else if (strcmp(key, "events") == 0) {
        bit = SET_EVENTS;
        ok = parse_action(val, &r->events);
        *why = "events must be broadcast, broadcast_from, reply, refuse or backend";
    } else if (strncmp(key, "event:", 6) == 0) {
        phx_rule_action_t a;
        if (key[6] == '\0' || has_control(key + 6)) {
            *why = "event:NAME needs an event name";
            return PHX_ERR_INVALID;
        }
        if (!parse_action(val, &a)) {
            *why = "event:NAME must be broadcast, broadcast_from, reply, refuse or backend";
            return PHX_ERR_INVALID;
        }
        return add_override(r, key + 6, a, why);
    } else if (strcmp(key, "max-payload-bytes") == 0) {
        bit = SET_MAX_PAYLOAD;
        ok = parse_count(val, true, 1ULL << 31, &r->max_payload_bytes);
        *why = "max-payload-bytes must be from 1 to 2147483648 (suffixes k, m)";
    } else if (strcmp(key, "max-subscribers") == 0) {
        bit = SET_MAX_SUBS;
        ok = parse_count(val, false, 100000000, &r->max_subscribers);
        *why = "max-subscribers must be from 1 to 100000000";
    } else if (strcmp(key, "user-segment") == 0) {
        size_t seg;
        bit = SET_SEGMENT;
        ok = parse_count(val, false, PHX_RULE_MAX_SEGMENT, &seg);
        r->user_segment = ok ? (unsigned)seg : 0;
        *why = "user-segment must be from 1 to 64";
    } else if (strcmp(key, "presence") == 0) {
        bit = SET_PRESENCE;
        if (strcmp(val, "none") == 0)
            r->presence = PHX_RULE_PRESENCE_NONE;
        else if (strcmp(val, "user") == 0)
            r->presence = PHX_RULE_PRESENCE_USER;
        else
            ok = false;
        *why = "presence must be none or user";
    } else if (strcmp(key, "presence-max") == 0) {
        bit = SET_PRESENCE_MAX;
        ok = parse_count(val, false, 100000000, &r->presence_max);
        *why = "presence-max must be from 1 to 100000000";
    } else {
        *why = "unknown setting (join, events, event:NAME, max-payload-bytes, max-subscribers, "
               "user-segment, presence, presence-max, backend)";
        return PHX_ERR_INVALID;
    }
    if (!ok)
        return PHX_ERR_INVALID;
    if (*seen & bit) {
        *why = "setting given twice";
        return PHX_ERR_INVALID;
    }
    *seen |= bit;
    return 0;
}

static int set_pattern(phx_rule_t *r, const char *pat, const char **why)
{
    size_t len = strlen(pat);
    const char *star = strchr(pat, '*');
    if (len == 0) {
        *why = "empty topic pattern";
        return PHX_ERR_INVALID;
    }
    if (has_control(pat)) {
        *why = "control character in the topic pattern";
        return PHX_ERR_INVALID;
    }
    if (star && star != pat + len - 1) {
        *why = "'*' may only end a topic pattern (room:*)";
        return PHX_ERR_INVALID;
    }
    if ((r->pattern = phx_strdup(pat)) == NULL)
        return PHX_ERR_NOMEM;
    r->is_prefix = star != NULL;
    r->prefix_len = star ? len - 1 : len;
    return 0;
}

/* Reads the next word; *at and *at_len locate it in the rule text (for
 * error messages). */
static int next_word(const char **p, phx_buf_t *w, const char **at, size_t *at_len,
                     const char **why)
{
    while (**p == ' ' || **p == '\t' || **p == '\n' || **p == '\r')
        (*p)++;
    *at = *p;
    int rv = phx_conf_next_word(p, ';', w, why);
    *at_len = (size_t)(*p - *at);
    return rv;
}

/* Parses one rule from *p up to ';' or the end. Returns 1 with a rule, 0
 * when the segment is empty, or a negative code; on error `at` and
 * `at_len` locate the offending word. */
static int parse_one(const char **p, phx_rule_t *r, phx_buf_t *w, const char **why, const char **at,
                     size_t *at_len)
{
    memset(r, 0, sizeof(*r));
    int rv = next_word(p, w, at, at_len, why);
    if (rv <= 0)
        return rv;
    if ((rv = set_pattern(r, (const char *)w->data, why)) != 0)
        return rv;
    const char *rule_start = *at;
    unsigned seen = 0;
    while ((rv = next_word(p, w, at, at_len, why)) == 1) {
        if ((rv = apply_setting(r, (char *)w->data, &seen, why)) != 0)
            return rv;
    }
    if (rv < 0)
        return rv;
    if (r->join == PHX_RULE_JOIN_USER && !r->is_prefix && r->user_segment == 0) {
        *why = "join=user needs a pattern ending in '*' or user-segment=N";
        *at = rule_start;
        *at_len = 0;
        return PHX_ERR_INVALID;
    }
    if (r->presence_max && r->presence != PHX_RULE_PRESENCE_USER) {
        *why = "presence-max=N needs presence=user";
        *at = rule_start;
        *at_len = 0;
        return PHX_ERR_INVALID;
    }
    return 1;
}

int phx_rules_parse(phx_rules_t *rules, const char *text, char *err)
{
    size_t before = rules->count;
    phx_buf_t w = {0};
    const char *p = text;
    int rv = 0;
    for (;;) {
        const char *start = p, *at = p;
        size_t at_len = 0;
        phx_rule_t r;
        const char *why = NULL;
        rv = parse_one(&p, &r, &w, &why, &at, &at_len);
        if (rv == 1 && rules->count >= PHX_RULES_MAX) {
            why = "too many channel rules";
            rv = PHX_ERR_LIMIT;
            at_len = 0;
        }
        if (rv == 1) {
            phx_rule_t *items = phx_realloc(rules->items, (rules->count + 1) * sizeof(*items));
            if (items == NULL) {
                rv = PHX_ERR_NOMEM;
            } else {
                rules->items = items;
                items[rules->count++] = r;
            }
        }
        if (rv < 0) {
            rule_dispose(&r);
            while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r')
                start++;
            int n = (int)strcspn(start, ";");
            if (rv == PHX_ERR_NOMEM)
                snprintf(err, PHX_ERR_LEN, "out of memory");
            else if (at_len)
                snprintf(err, PHX_ERR_LEN, "channel rule (%.*s%s): %.*s: %s", n > 60 ? 57 : n,
                         start, n > 60 ? "..." : "", at_len > 60 ? 60 : (int)at_len, at, why);
            else
                snprintf(err, PHX_ERR_LEN, "channel rule (%.*s%s): %s", n > 60 ? 57 : n, start,
                         n > 60 ? "..." : "", why);
            break;
        }
        if (*p == ';') {
            p++;
            continue;
        }
        if (*p == '\0')
            break;
    }
    phx_buf_dispose(&w);
    if (rv >= 0 && rules->count == before) {
        snprintf(err, PHX_ERR_LEN, "empty channel rule (expected PATTERN [setting=value ...])");
        rv = PHX_ERR_INVALID;
    }
    if (rv < 0) {
        while (rules->count > before)
            rule_dispose(&rules->items[--rules->count]);
        if (rules->count == 0) {
            phx_free(rules->items);
            rules->items = NULL;
        }
        return rv;
    }
    return 0;
}

/* ---- matching ---- */

bool phx_rule_matches(const phx_rule_t *r, const char *topic, size_t len)
{
    if (r->is_prefix)
        return len >= r->prefix_len && memcmp(topic, r->pattern, r->prefix_len) == 0;
    return len == r->prefix_len && memcmp(topic, r->pattern, len) == 0;
}

const phx_rule_t *phx_rules_match(const phx_rules_t *rules, const char *topic, size_t len)
{
    for (size_t i = 0; i < rules->count; i++)
        if (phx_rule_matches(&rules->items[i], topic, len))
            return &rules->items[i];
    return NULL;
}

bool phx_rule_user_part(const phx_rule_t *r, const char *topic, const char **part, size_t *len)
{
    size_t tlen = strlen(topic);
    if (r->user_segment == 0) {
        if (!r->is_prefix || tlen < r->prefix_len)
            return false;
        *part = topic + r->prefix_len;
        *len = tlen - r->prefix_len;
        return *len > 0;
    }
    const char *s = topic;
    for (unsigned i = 1; i < r->user_segment; i++) {
        s = strchr(s, ':');
        if (s == NULL)
            return false;
        s++;
    }
    const char *colon = strchr(s, ':');
    *part = s;
    *len = colon ? (size_t)(colon - s) : strlen(s);
    return *len > 0;
}

phx_rule_action_t phx_rule_action(const phx_rule_t *r, const char *event)
{
    for (size_t i = 0; i < r->noverrides; i++)
        if (strcmp(r->overrides[i].name, event) == 0)
            return r->overrides[i].action;
    return r->events;
}

/* ---- formatting ---- */

int phx_rule_format(const phx_rule_t *r, phx_buf_t *out)
{
    phx_buf_t word = {0};
    /* The pattern is always quoted: a shell would expand an unquoted '*'. */
    if (phx_buf_append_byte(out, '"') != 0)
        goto nomem;
    for (const char *s = r->pattern; *s; s++) {
        if ((*s == '"' || *s == '\\') && phx_buf_append_byte(out, '\\') != 0)
            goto nomem;
        if (phx_buf_append_byte(out, (uint8_t)*s) != 0)
            goto nomem;
    }
    if (phx_buf_printf(out, "\" join=%s events=%s", join_names[r->join], action_names[r->events]) !=
        0)
        goto nomem;
    for (size_t i = 0; i < r->noverrides; i++) {
        word.len = 0;
        if (phx_buf_printf(&word, "event:%s=%s", r->overrides[i].name,
                           action_names[r->overrides[i].action]) != 0 ||
            phx_buf_append_byte(&word, 0) != 0 || phx_buf_append_byte(out, ' ') != 0 ||
            phx_conf_append_quoted(out, (const char *)word.data) != 0)
            goto nomem;
    }
    if (r->max_payload_bytes &&
        phx_buf_printf(out, " max-payload-bytes=%zu", r->max_payload_bytes) != 0)
        goto nomem;
    if (r->max_subscribers && phx_buf_printf(out, " max-subscribers=%zu", r->max_subscribers) != 0)
        goto nomem;
    if (r->user_segment && phx_buf_printf(out, " user-segment=%u", r->user_segment) != 0)
        goto nomem;
    if (r->presence == PHX_RULE_PRESENCE_USER && phx_buf_append_str(out, " presence=user") != 0)
        goto nomem;
    if (r->presence_max && phx_buf_printf(out, " presence-max=%zu", r->presence_max) != 0)
        goto nomem;
    if (r->backend_url) {
        word.len = 0;
        if (phx_buf_printf(&word, "backend=%s", r->backend_url) != 0 ||
            phx_buf_append_byte(&word, 0) != 0 || phx_buf_append_byte(out, ' ') != 0 ||
            phx_conf_append_quoted(out, (const char *)word.data) != 0)
            goto nomem;
    }
    phx_buf_dispose(&word);
    return 0;
nomem:
    phx_buf_dispose(&word);
    return PHX_ERR_NOMEM;
}
