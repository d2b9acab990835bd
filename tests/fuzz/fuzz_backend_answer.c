/* fuzz_backend_answer: a backend's answer (backend.c) as any bytes, parsed
 * as the answer to each call type. Invariants: an accepted answer's spans
 * lie inside the input and each validates on its own with the type the
 * contract gives it (response, assigns and stop objects, lists of objects,
 * presence an object or null); an event answer without a reply is never
 * "ok"; every list entry an accepted answer holds is an object. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "json.h"
#include "fuzz.h"

static void check_span(const uint8_t *data, size_t size, const phx_json_span_t *s,
                       phx_json_type_t want, bool null_ok)
{
    if (s->type == PHX_JSON_INVALID)
        return;
    CHECK(s->p >= data && s->p + s->len <= data + size);
    CHECK(phx_json_validate(s->p, s->len, NULL) == 0);
    CHECK(s->type == want || (null_ok && s->type == PHX_JSON_NULL));
    CHECK(phx_json_type(s->p, s->len) == s->type);
}

static void check_list(const uint8_t *data, size_t size, const phx_json_span_t *s)
{
    check_span(data, size, s, PHX_JSON_ARRAY, false);
    if (s->type != PHX_JSON_ARRAY)
        return;
    phx_json_iter_t it;
    phx_json_span_t el;
    size_t n = 0;
    CHECK(phx_json_iter_init(&it, s->p, s->len) == 0);
    while (phx_json_iter_next(&it, NULL, &el)) {
        CHECK(el.type == PHX_JSON_OBJECT);
        n++;
    }
    CHECK(n <= PHX_BACKEND_MAX_LIST);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    /* A copy of exactly `size` bytes: reads past it are caught. */
    uint8_t *copy = malloc(size ? size : 1);
    CHECK(copy != NULL);
    if (size)
        memcpy(copy, data, size);
    phx_json_limits_t lim = {.max_depth = 32};
    for (int type = PHX_BACKEND_CONNECT; type <= PHX_BACKEND_EVENT; type++) {
        phx_backend_answer_t a;
        const char *why = phx_backend_answer_parse(copy, size, (phx_backend_call_t)type, &lim, &a);
        if (why) {
            CHECK(*why != '\0');
            continue;
        }
        check_span(copy, size, &a.response, PHX_JSON_OBJECT, false);
        check_span(copy, size, &a.assigns, PHX_JSON_OBJECT, false);
        check_span(copy, size, &a.stop, PHX_JSON_OBJECT, false);
        check_span(copy, size, &a.presence, PHX_JSON_OBJECT, true);
        check_span(copy, size, &a.socket_id, PHX_JSON_STRING, true);
        check_list(copy, size, &a.push);
        check_list(copy, size, &a.broadcast);
        check_list(copy, size, &a.broadcast_from);
        if (type == PHX_BACKEND_EVENT && !a.has_reply)
            CHECK(!a.is_ok);
    }
    free(copy);
    return 0;
}
