/* Unit tests for rules.c: channel rule syntax, defaults, every error,
 * matching (first rule wins), the user part of a topic, per-event actions,
 * and formatting that parses back to the same rule. */
#include "rules.h"

#include <string.h>

#include "phx.h"
#include "runner.h"

static void parse_ok(phx_rules_t *rules, const char *text)
{
    char err[PHX_ERR_LEN] = "";
    int rv = phx_rules_parse(rules, text, err);
    if (rv != 0)
        printf("# %s\n", err);
    ASSERT_EQ(rv, 0);
}

static void expect_error(const char *text, const char *want)
{
    phx_rules_t rules = {0};
    char err[PHX_ERR_LEN] = "";
    ASSERT(phx_rules_parse(&rules, text, err) < 0);
    ASSERT_STR_EQ(err, want);
    ASSERT_EQ(rules.count, 0);
    ASSERT(rules.items == NULL);
}

static void a_bare_pattern_gets_the_defaults(void)
{
    phx_rules_t rules = {0};
    parse_ok(&rules, "room:*");
    ASSERT_EQ(rules.count, 1);
    const phx_rule_t *r = &rules.items[0];
    ASSERT_STR_EQ(r->pattern, "room:*");
    ASSERT(r->is_prefix);
    ASSERT_EQ(r->prefix_len, 5);
    ASSERT_EQ(r->join, PHX_RULE_JOIN_ANY);
    ASSERT_EQ(r->events, PHX_RULE_BROADCAST);
    ASSERT_EQ(r->noverrides, 0);
    ASSERT_EQ(r->max_payload_bytes, 0);
    ASSERT_EQ(r->max_subscribers, 0);
    ASSERT_EQ(r->user_segment, 0);
    phx_rules_dispose(&rules);
    ASSERT(rules.items == NULL && rules.count == 0);
}

static void every_setting(void)
{
    phx_rules_t rules = {0};
    parse_ok(&rules, "\"private:*\" join=user events=broadcast_from event:ping=reply "
                     "event:'new msg'=refuse event:a=b=broadcast max-payload-bytes=64k "
                     "max-subscribers=2 user-segment=2");
    const phx_rule_t *r = &rules.items[0];
    ASSERT_STR_EQ(r->pattern, "private:*");
    ASSERT_EQ(r->join, PHX_RULE_JOIN_USER);
    ASSERT_EQ(r->events, PHX_RULE_BROADCAST_FROM);
    ASSERT_EQ(r->noverrides, 3);
    ASSERT_STR_EQ(r->overrides[0].name, "ping");
    ASSERT_EQ(r->overrides[0].action, PHX_RULE_REPLY);
    ASSERT_STR_EQ(r->overrides[1].name, "new msg");
    ASSERT_EQ(r->overrides[1].action, PHX_RULE_REFUSE);
    /* The last '=' separates the value, so event names may contain '='. */
    ASSERT_STR_EQ(r->overrides[2].name, "a=b");
    ASSERT_EQ(r->max_payload_bytes, 65536);
    ASSERT_EQ(r->max_subscribers, 2);
    ASSERT_EQ(r->user_segment, 2);
    ASSERT_EQ(r->presence_max, 0);
    phx_rules_dispose(&rules);
}

static void several_rules_and_calls_append(void)
{
    phx_rules_t rules = {0};
    parse_ok(&rules, "a:* join=none ; b:x events=reply;;\n c:* events=broadcast-from;");
    ASSERT_EQ(rules.count, 3);
    ASSERT_STR_EQ(rules.items[0].pattern, "a:*");
    ASSERT_EQ(rules.items[0].join, PHX_RULE_JOIN_NONE);
    ASSERT_STR_EQ(rules.items[1].pattern, "b:x");
    ASSERT(!rules.items[1].is_prefix);
    ASSERT_EQ(rules.items[1].events, PHX_RULE_REPLY);
    ASSERT_EQ(rules.items[2].events, PHX_RULE_BROADCAST_FROM);
    parse_ok(&rules, "'semi;colon:*' events=refuse");
    ASSERT_EQ(rules.count, 4);
    ASSERT_STR_EQ(rules.items[3].pattern, "semi;colon:*");
    /* A failing call keeps what was there before. */
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_rules_parse(&rules, "d:*; e:* join=maybe", err), PHX_ERR_INVALID);
    ASSERT_EQ(rules.count, 4);
    phx_rules_dispose(&rules);
}

static void errors_name_the_rule_and_the_word(void)
{
    expect_error("", "empty channel rule (expected PATTERN [setting=value ...])");
    expect_error(" ; ;", "empty channel rule (expected PATTERN [setting=value ...])");
    expect_error(
        "room:* join=maybe",
        "channel rule (room:* join=maybe): join=maybe: join must be any, user, none or backend");
    expect_error("room:* events=shout",
                 "channel rule (room:* events=shout): events=shout: events "
                 "must be broadcast, broadcast_from, reply, refuse or backend");
    expect_error("room:* jion=any",
                 "channel rule (room:* jion=any): jion=any: unknown setting "
                 "(join, events, event:NAME, max-payload-bytes, "
                 "max-subscribers, user-segment, presence, presence-max, backend)");
    expect_error("room:* presence=all",
                 "channel rule (room:* presence=all): presence=all: presence must be none or user");
    expect_error("room:* presence=user presence=none", "channel rule (room:* presence=user "
                                                       "presence=none): presence=none: setting "
                                                       "given twice");
    expect_error("room:* presence=user presence-max=0",
                 "channel rule (room:* presence=user presence-max=0): presence-max=0: "
                 "presence-max must be from 1 to 100000000");
    expect_error("room:* presence=user presence-max=100000001",
                 "channel rule (room:* presence=user presence-max=100000001): "
                 "presence-max=100000001: presence-max must be from 1 to 100000000");
    expect_error("room:* presence=user presence-max=2k",
                 "channel rule (room:* presence=user presence-max=2k): presence-max=2k: "
                 "presence-max must be from 1 to 100000000");
    expect_error("room:* presence=user presence-max=", "channel rule (room:* presence=user "
                                                       "presence-max=): presence-max=: "
                                                       "presence-max must be from 1 to 100000000");
    expect_error("room:* presence=user presence-max=2 presence-max=3",
                 "channel rule (room:* presence=user presence-max=2 presence-max=3): "
                 "presence-max=3: setting given twice");
    expect_error("room:* presence-max=2",
                 "channel rule (room:* presence-max=2): presence-max=N needs presence=user");
    expect_error("room:* presence=none presence-max=2", "channel rule (room:* presence=none "
                                                        "presence-max=2): presence-max=N needs "
                                                        "presence=user");
    expect_error("room:* join", "channel rule (room:* join): join: expected setting=value");
    expect_error("room:* =any", "channel rule (room:* =any): =any: expected setting=value");
    expect_error("room:* join=any join=none",
                 "channel rule (room:* join=any join=none): join=none: setting given twice");
    expect_error("room:*x", "channel rule (room:*x): room:*x: '*' may only end a topic pattern "
                            "(room:*)");
    expect_error("*room:*", "channel rule (*room:*): *room:*: '*' may only end a topic pattern "
                            "(room:*)");
    expect_error("'' join=any", "channel rule ('' join=any): '': empty topic pattern");
    expect_error("room:x join=user", "channel rule (room:x join=user): join=user needs a pattern "
                                     "ending in '*' or user-segment=N");
    expect_error("a:* max-payload-bytes=0", "channel rule (a:* max-payload-bytes=0): "
                                            "max-payload-bytes=0: max-payload-bytes must be from "
                                            "1 to 2147483648 (suffixes k, m)");
    expect_error("a:* max-payload-bytes=3g", "channel rule (a:* max-payload-bytes=3g): "
                                             "max-payload-bytes=3g: max-payload-bytes must be "
                                             "from 1 to 2147483648 (suffixes k, m)");
    expect_error("a:* max-subscribers=-1",
                 "channel rule (a:* max-subscribers=-1): max-subscribers=-1: max-subscribers "
                 "must be from 1 to 100000000");
    expect_error("a:* user-segment=65", "channel rule (a:* user-segment=65): user-segment=65: "
                                        "user-segment must be from 1 to 64");
    expect_error("a:* event:=reply",
                 "channel rule (a:* event:=reply): event:=reply: event:NAME needs an event name");
    expect_error("a:* event:x=reply event:x=refuse",
                 "channel rule (a:* event:x=reply event:x=refuse): event:x=refuse: the same "
                 "event:NAME is given twice");
    expect_error("a:* event:x=maybe", "channel rule (a:* event:x=maybe): event:x=maybe: "
                                      "event:NAME must be broadcast, broadcast_from, reply, "
                                      "refuse or backend");
    expect_error("ok:*; \"open:*", "channel rule (\"open:*): unterminated quote");
    expect_error("a:\001* join=any", "channel rule (a:\001* join=any): a:\001*: control "
                                     "character in the topic pattern");
}

static void error_text_is_cut_for_long_rules(void)
{
    phx_buf_t b = {0};
    ASSERT_EQ(phx_buf_append_str(&b, "room:* "), 0);
    for (int i = 0; i < 40; i++)
        ASSERT_EQ(phx_buf_printf(&b, "event:e%d=reply ", i), 0);
    ASSERT_EQ(phx_buf_append_str(&b, "bogus=1"), 0);
    phx_rules_t rules = {0};
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_rules_parse(&rules, (const char *)b.data, err), PHX_ERR_INVALID);
    ASSERT(strlen(err) < PHX_ERR_LEN);
    ASSERT(strstr(err, "...): bogus=1: unknown setting") != NULL);
    phx_buf_dispose(&b);
}

static void limits_on_rules_and_events(void)
{
    phx_buf_t b = {0};
    for (int i = 0; i <= PHX_RULES_MAX; i++)
        ASSERT_EQ(phx_buf_printf(&b, "t%d;", i), 0);
    phx_rules_t rules = {0};
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_rules_parse(&rules, (const char *)b.data, err), PHX_ERR_LIMIT);
    ASSERT_STR_EQ(err, "channel rule (t1000): too many channel rules");
    ASSERT_EQ(rules.count, 0);
    b.len = 0;
    ASSERT_EQ(phx_buf_append_str(&b, "x:*"), 0);
    for (int i = 0; i <= PHX_RULE_MAX_EVENTS; i++)
        ASSERT_EQ(phx_buf_printf(&b, " event:e%d=reply", i), 0);
    ASSERT_EQ(phx_rules_parse(&rules, (const char *)b.data, err), PHX_ERR_LIMIT);
    ASSERT(strstr(err, "too many event:NAME settings") != NULL);
    phx_buf_dispose(&b);
}

static void first_matching_rule_wins(void)
{
    phx_rules_t rules = {0};
    parse_ok(&rules, "room:lobby join=none; room:* join=any; *");
    ASSERT(phx_rules_match(&rules, "room:lobby", 10) == &rules.items[0]);
    ASSERT(phx_rules_match(&rules, "room:lobby2", 11) == &rules.items[1]);
    ASSERT(phx_rules_match(&rules, "room:", 5) == &rules.items[1]);
    ASSERT(phx_rules_match(&rules, "room", 4) == &rules.items[2]);
    ASSERT(phx_rules_match(&rules, "", 0) == &rules.items[2]);
    phx_rules_dispose(&rules);
    parse_ok(&rules, "room:lobby; user:*");
    ASSERT(phx_rules_match(&rules, "room:lobb", 9) == NULL);
    ASSERT(phx_rules_match(&rules, "room:lobbyx", 11) == NULL);
    ASSERT(phx_rules_match(&rules, "user", 4) == NULL);
    ASSERT(phx_rules_match(&rules, "user:", 5) == &rules.items[1]);
    /* Lengths are explicit: a topic is matched on its bytes only. */
    ASSERT(phx_rules_match(&rules, "room:lobby!", 10) == &rules.items[0]);
    phx_rules_dispose(&rules);
}

static void user_part_of_a_topic(void)
{
    phx_rules_t rules = {0};
    parse_ok(&rules, "private:* join=user; inbox:* join=user user-segment=2; "
                     "exact join=user user-segment=1");
    const char *part;
    size_t len;
    ASSERT(phx_rule_user_part(&rules.items[0], "private:42", &part, &len));
    ASSERT_MEM_EQ(part, len, "42", 2);
    ASSERT(phx_rule_user_part(&rules.items[0], "private:42:x", &part, &len));
    ASSERT_MEM_EQ(part, len, "42:x", 4);
    ASSERT(!phx_rule_user_part(&rules.items[0], "private:", &part, &len));
    ASSERT(phx_rule_user_part(&rules.items[1], "inbox:7:unread", &part, &len));
    ASSERT_MEM_EQ(part, len, "7", 1);
    ASSERT(phx_rule_user_part(&rules.items[1], "inbox:7", &part, &len));
    ASSERT_MEM_EQ(part, len, "7", 1);
    ASSERT(!phx_rule_user_part(&rules.items[1], "inbox::x", &part, &len));
    ASSERT(!phx_rule_user_part(&rules.items[1], "inbox", &part, &len));
    ASSERT(phx_rule_user_part(&rules.items[2], "exact", &part, &len));
    ASSERT_MEM_EQ(part, len, "exact", 5);
    phx_rules_dispose(&rules);
}

static void actions_per_event(void)
{
    phx_rules_t rules = {0};
    parse_ok(&rules, "r:* events=refuse event:ping=reply event:shout=broadcast");
    const phx_rule_t *r = &rules.items[0];
    ASSERT_EQ(phx_rule_action(r, "ping"), PHX_RULE_REPLY);
    ASSERT_EQ(phx_rule_action(r, "shout"), PHX_RULE_BROADCAST);
    ASSERT_EQ(phx_rule_action(r, "other"), PHX_RULE_REFUSE);
    ASSERT_EQ(phx_rule_action(r, "Ping"), PHX_RULE_REFUSE);
    phx_rules_dispose(&rules);
}

static void rules_equal(const phx_rule_t *a, const phx_rule_t *b)
{
    ASSERT_STR_EQ(a->pattern, b->pattern);
    ASSERT_EQ(a->is_prefix, b->is_prefix);
    ASSERT_EQ(a->prefix_len, b->prefix_len);
    ASSERT_EQ(a->presence, b->presence);
    ASSERT_EQ(a->presence_max, b->presence_max);
    ASSERT_EQ(a->join, b->join);
    ASSERT_EQ(a->events, b->events);
    ASSERT_EQ(a->max_payload_bytes, b->max_payload_bytes);
    ASSERT_EQ(a->max_subscribers, b->max_subscribers);
    ASSERT_EQ(a->user_segment, b->user_segment);
    ASSERT_EQ(a->noverrides, b->noverrides);
    for (size_t i = 0; i < a->noverrides; i++) {
        ASSERT_STR_EQ(a->overrides[i].name, b->overrides[i].name);
        ASSERT_EQ(a->overrides[i].action, b->overrides[i].action);
    }
}

static void format_parses_back(void)
{
    static const char *texts[] = {
        "room:*",
        "\"we\\\"ird; #topic*\" join=none events=reply",
        "p:* join=user events=broadcast_from event:ping=reply \"event:new msg=refuse\" "
        "max-payload-bytes=1m max-subscribers=3",
        "inbox:* join=user user-segment=2 event:a=b=reply",
        "room:* join=any presence=user",
        "room:* presence=none",
        "room:* presence-max=2 presence=user",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        phx_rules_t a = {0}, b = {0};
        parse_ok(&a, texts[i]);
        phx_buf_t out = {0};
        ASSERT_EQ(phx_rule_format(&a.items[0], &out), 0);
        ASSERT_EQ(phx_buf_append_byte(&out, 0), 0);
        parse_ok(&b, (const char *)out.data);
        ASSERT_EQ(b.count, 1);
        rules_equal(&a.items[0], &b.items[0]);
        phx_buf_dispose(&out);
        phx_rules_dispose(&a);
        phx_rules_dispose(&b);
    }
    phx_rules_t r = {0};
    parse_ok(&r, "room:* event:ping=reply max-payload-bytes=64k");
    phx_buf_t out = {0};
    ASSERT_EQ(phx_rule_format(&r.items[0], &out), 0);
    ASSERT_EQ(phx_buf_append_byte(&out, 0), 0);
    ASSERT_STR_EQ((const char *)out.data,
                  "\"room:*\" join=any events=broadcast event:ping=reply max-payload-bytes=65536");
    phx_buf_dispose(&out);
    phx_rules_dispose(&r);
    parse_ok(&r, "lobby:* presence=user presence-max=100000000");
    ASSERT_EQ(r.items[0].presence_max, 100000000);
    out = (phx_buf_t){0};
    ASSERT_EQ(phx_rule_format(&r.items[0], &out), 0);
    ASSERT_EQ(phx_buf_append_byte(&out, 0), 0);
    ASSERT_STR_EQ((const char *)out.data,
                  "\"lobby:*\" join=any events=broadcast presence=user presence-max=100000000");
    phx_buf_dispose(&out);
    phx_rules_dispose(&r);
}

static void the_built_in_policy_as_rules(void)
{
    const phx_rules_t *d = phx_rules_default();
    ASSERT_EQ(d->count, 2);
    phx_buf_t out = {0};
    ASSERT_EQ(phx_rule_format(&d->items[0], &out), 0);
    ASSERT_EQ(phx_buf_append_byte(&out, ' '), 0);
    ASSERT_EQ(phx_rule_format(&d->items[1], &out), 0);
    ASSERT_EQ(phx_buf_append_byte(&out, 0), 0);
    ASSERT_STR_EQ((const char *)out.data, "\"user:*\" join=user events=broadcast event:ping=reply "
                                          "\"room:*\" join=any events=broadcast event:ping=reply");
    phx_buf_dispose(&out);
    /* The same rules parsed from text behave the same. */
    phx_rules_t parsed = {0};
    parse_ok(&parsed, "user:* join=user event:ping=reply; room:* event:ping=reply");
    rules_equal(&d->items[0], &parsed.items[0]);
    rules_equal(&d->items[1], &parsed.items[1]);
    phx_rules_dispose(&parsed);
    const char *part;
    size_t len;
    ASSERT(phx_rule_user_part(&d->items[0], "user:42", &part, &len));
    ASSERT_MEM_EQ(part, len, "42", 2);
    /* Disposing the static default is a no-op. */
    phx_rules_dispose((phx_rules_t *)d);
    ASSERT_EQ(phx_rules_default()->count, 2);
}

static void allocation_failures_are_clean(void)
{
    const char *text = "a:* join=user event:x=reply event:y=refuse event:z=reply; b:c; d:*";
    phx_rules_t rules = {0};
    char err[PHX_ERR_LEN];
    phx_mem_reset_count();
    ASSERT_EQ(phx_rules_parse(&rules, text, err), 0);
    unsigned long n = phx_mem_count();
    ASSERT(n >= 8);
    phx_rules_dispose(&rules);
    for (unsigned long i = 1; i <= n; i++) {
        phx_mem_reset_count();
        phx_mem_fail_at(i);
        int rv = phx_rules_parse(&rules, text, err);
        phx_mem_fail_at(0);
        ASSERT_EQ(rv, PHX_ERR_NOMEM);
        ASSERT_STR_EQ(err, "out of memory");
        ASSERT_EQ(rules.count, 0);
        ASSERT(rules.items == NULL);
    }
    /* Formatting too. */
    parse_ok(&rules, text);
    for (unsigned long i = 1; i <= 6; i++) {
        phx_buf_t out = {0};
        phx_mem_reset_count();
        phx_mem_fail_at(i);
        int rv = phx_rule_format(&rules.items[0], &out);
        phx_mem_fail_at(0);
        ASSERT(rv == 0 || rv == PHX_ERR_NOMEM);
        phx_buf_dispose(&out);
    }
    phx_rules_dispose(&rules);
}

const phx_test_t phx_tests_rules[] = {
    {"a_bare_pattern_gets_the_defaults", a_bare_pattern_gets_the_defaults},
    {"every_setting", every_setting},
    {"several_rules_and_calls_append", several_rules_and_calls_append},
    {"errors_name_the_rule_and_the_word", errors_name_the_rule_and_the_word},
    {"error_text_is_cut_for_long_rules", error_text_is_cut_for_long_rules},
    {"limits_on_rules_and_events", limits_on_rules_and_events},
    {"first_matching_rule_wins", first_matching_rule_wins},
    {"user_part_of_a_topic", user_part_of_a_topic},
    {"actions_per_event", actions_per_event},
    {"format_parses_back", format_parses_back},
    {"the_built_in_policy_as_rules", the_built_in_policy_as_rules},
    {"allocation_failures_are_clean", allocation_failures_are_clean},
    {NULL, NULL},
};
