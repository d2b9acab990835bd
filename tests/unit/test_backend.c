/* Unit tests for the backend answer parser (backend.c): what each call
 * type accepts, and the reason given for what it refuses. The calls
 * themselves run end to end in js-client-fixtures/backend.test.mjs. */
#include "backend.h"

#include <string.h>

#include "json.h"
#include "runner.h"

static const char *parse(const char *body, phx_backend_call_t type, phx_backend_answer_t *a)
{
    phx_json_limits_t lim = PHX_JSON_LIMITS_DEFAULT;
    return phx_backend_answer_parse((const uint8_t *)body, strlen(body), type, &lim, a);
}

static void span_eq(const phx_json_span_t *s, const char *want)
{
    ASSERT(s->type != PHX_JSON_INVALID);
    ASSERT_EQ(s->len, strlen(want));
    ASSERT(memcmp(s->p, want, s->len) == 0);
}

static void join_and_connect_answers(void)
{
    phx_backend_answer_t a;
    ASSERT(parse("{\"status\":\"ok\",\"response\":{\"a\":1},\"assigns\":{\"k\":[1]},"
                 "\"push\":[{\"event\":\"hi\",\"payload\":{}}],\"presence\":{\"key\":\"u\"},"
                 "\"unknown\":true}",
                 PHX_BACKEND_JOIN, &a) == NULL);
    ASSERT(a.is_ok);
    span_eq(&a.response, "{\"a\":1}");
    span_eq(&a.assigns, "{\"k\":[1]}");
    span_eq(&a.push, "[{\"event\":\"hi\",\"payload\":{}}]");
    span_eq(&a.presence, "{\"key\":\"u\"}");
    ASSERT(parse("{\"status\":\"error\",\"response\":{\"reason\":\"no\"}}", PHX_BACKEND_JOIN, &a) ==
           NULL);
    ASSERT(!a.is_ok);
    /* escaped status is decoded */
    ASSERT(parse("{\"status\":\"\\u006fk\"}", PHX_BACKEND_CONNECT, &a) == NULL);
    ASSERT(a.is_ok);
    ASSERT(parse("{\"status\":\"ok\",\"socket_id\":\"users_socket:1\",\"user_id\":42}",
                 PHX_BACKEND_CONNECT, &a) == NULL);
    span_eq(&a.socket_id, "\"users_socket:1\"");
    span_eq(&a.user_id, "42");
    ASSERT_STR_EQ(parse("{}", PHX_BACKEND_JOIN, &a), "status must be ok or error");
    ASSERT_STR_EQ(parse("{\"status\":\"maybe\"}", PHX_BACKEND_CONNECT, &a),
                  "status must be ok or error");
    ASSERT_STR_EQ(parse("{\"status\":\"ok\",\"response\":[1]}", PHX_BACKEND_JOIN, &a),
                  "response must be an object");
    ASSERT_STR_EQ(parse("{\"status\":\"ok\",\"assigns\":1}", PHX_BACKEND_JOIN, &a),
                  "assigns must be an object");
    ASSERT_STR_EQ(parse("{\"status\":\"ok\",\"user_id\":{}}", PHX_BACKEND_CONNECT, &a),
                  "user_id must be a string or a number");
}

static void event_answers(void)
{
    phx_backend_answer_t a;
    ASSERT(parse("{\"reply\":null}", PHX_BACKEND_EVENT, &a) == NULL);
    ASSERT(!a.has_reply);
    ASSERT(!a.is_ok);
    ASSERT(
        parse("{\"reply\":{\"status\":\"ok\",\"response\":{\"n\":1}},\"stop\":{\"reason\":\"x\"}}",
              PHX_BACKEND_EVENT, &a) == NULL);
    ASSERT(a.has_reply);
    ASSERT(a.is_ok);
    span_eq(&a.response, "{\"n\":1}");
    span_eq(&a.stop, "{\"reason\":\"x\"}");
    /* the top-level status of an event answer is not the reply's */
    ASSERT(parse("{\"status\":\"ok\",\"reply\":{\"status\":\"error\"}}", PHX_BACKEND_EVENT, &a) ==
           NULL);
    ASSERT(!a.is_ok);
    ASSERT(parse("{\"reply\":null,\"presence\":null}", PHX_BACKEND_EVENT, &a) == NULL);
    ASSERT_EQ(a.presence.type, PHX_JSON_NULL);
    ASSERT_STR_EQ(parse("{}", PHX_BACKEND_EVENT, &a), "reply is missing");
    ASSERT_STR_EQ(parse("{\"reply\":\"ok\"}", PHX_BACKEND_EVENT, &a),
                  "reply must be an object or null");
    ASSERT_STR_EQ(parse("{\"reply\":{}}", PHX_BACKEND_EVENT, &a), "status must be ok or error");
}

static void lists_are_checked_whole(void)
{
    phx_backend_answer_t a;
    ASSERT(parse("{\"reply\":null,\"broadcast\":[{\"topic\":\"r:1\",\"event\":\"e\","
                 "\"payload\":{}}],\"broadcast_from\":[{\"topic\":\"r:1\",\"event\":\"e\","
                 "\"payload_base64\":\"AAE=\"}],\"push\":[{\"event\":\"p\","
                 "\"payload_base64\":\"\"}]}",
                 PHX_BACKEND_EVENT, &a) == NULL);
    ASSERT_STR_EQ(
        parse("{\"reply\":null,\"push\":[{\"event\":\"phx_close\"}]}", PHX_BACKEND_EVENT, &a),
        "reserved event");
    ASSERT_STR_EQ(parse("{\"reply\":null,\"broadcast\":[{\"topic\":\"r\",\"event\":"
                        "\"presence_diff\",\"payload\":{}}]}",
                        PHX_BACKEND_EVENT, &a),
                  "reserved event");
    ASSERT_STR_EQ(parse("{\"reply\":null,\"broadcast\":[{\"topic\":\"r\",\"event\":\"e\","
                        "\"payload\":[1]}]}",
                        PHX_BACKEND_EVENT, &a),
                  "payload must be an object");
    ASSERT_STR_EQ(parse("{\"reply\":null,\"broadcast\":[{\"topic\":\"r\",\"event\":\"e\","
                        "\"except\":[]}]}",
                        PHX_BACKEND_EVENT, &a),
                  "unknown field in a broadcast");
    ASSERT_STR_EQ(parse("{\"reply\":null,\"push\":[1]}", PHX_BACKEND_EVENT, &a),
                  "list entries must be objects");
    ASSERT_STR_EQ(parse("{\"reply\":null,\"push\":{}}", PHX_BACKEND_EVENT, &a),
                  "push must be a list");
    ASSERT_STR_EQ(parse("{\"reply\":null,\"push\":[{\"event\":\"\"}]}", PHX_BACKEND_EVENT, &a),
                  "a push's event must be a non-empty string");
    ASSERT_STR_EQ(parse("{\"reply\":null,\"push\":[{\"event\":\"e\",\"payload_base64\":\"*\"}]}",
                        PHX_BACKEND_EVENT, &a),
                  "payload_base64 must be standard base64");
    /* too many entries */
    phx_buf_t b = {0};
    ASSERT_EQ(phx_buf_append_str(&b, "{\"reply\":null,\"push\":["), 0);
    for (int i = 0; i <= PHX_BACKEND_MAX_LIST; i++)
        ASSERT_EQ(phx_buf_append_str(&b, i ? ",{\"event\":\"e\"}" : "{\"event\":\"e\"}"), 0);
    ASSERT_EQ(phx_buf_append_str(&b, "]}"), 0);
    ASSERT_EQ(phx_buf_append_byte(&b, 0), 0);
    ASSERT_STR_EQ(parse((const char *)b.data, PHX_BACKEND_EVENT, &a), "too many entries in a list");
    phx_buf_dispose(&b);
}

static void garbage_is_refused(void)
{
    phx_backend_answer_t a;
    ASSERT_STR_EQ(parse("", PHX_BACKEND_JOIN, &a), "not JSON");
    ASSERT_STR_EQ(parse("{\"status\":", PHX_BACKEND_JOIN, &a), "not JSON");
    ASSERT_STR_EQ(parse("[1]", PHX_BACKEND_JOIN, &a), "not an object");
    ASSERT_STR_EQ(parse("\"ok\"", PHX_BACKEND_CONNECT, &a), "not an object");
    /* too deep for the limits */
    char deep[300];
    strcpy(deep, "{\"status\":\"ok\",\"response\":{\"a\":");
    size_t n = strlen(deep);
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n++] = '}';
    deep[n] = '\0';
    ASSERT_STR_EQ(parse(deep, PHX_BACKEND_JOIN, &a), "not JSON");
}

const phx_test_t phx_tests_backend[] = {
    {"join_and_connect_answers", join_and_connect_answers},
    {"event_answers", event_answers},
    {"lists_are_checked_whole", lists_are_checked_whole},
    {"garbage_is_refused", garbage_is_refused},
    {NULL, NULL},
};
