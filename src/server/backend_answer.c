/* backend_answer.c: the answers of backend calls, parsed (see backend.h):
 * pure, no I/O; the fuzz target's entry. Every list entry is checked
 * before the caller carries out anything. */
#include "backend.h"

#include <stddef.h>
#include <string.h>

#include "api.h"
#include "presence.h"

static bool span_is(const phx_json_span_t *s, const char *quoted)
{
    size_t n = strlen(quoted);
    return s->type != PHX_JSON_INVALID && s->len == n && memcmp(s->p, quoted, n) == 0;
}

/* "ok" or "error" (as decoded); -1 for anything else. */
static int status_of(const phx_json_span_t *s)
{
    if (s->type != PHX_JSON_STRING || s->len > 16)
        return -1;
    uint8_t out[16];
    size_t n;
    bool nul;
    if (phx_json_string_decode(s->p, s->len, out, &n, &nul) != 0 || nul)
        return -1;
    if (n == 2 && memcmp(out, "ok", 2) == 0)
        return 1;
    if (n == 5 && memcmp(out, "error", 5) == 0)
        return 0;
    return -1;
}

/* A push entry: {"event": non-empty and not reserved, "payload": object
 * or "payload_base64": base64}. Decoded into `ev` and `bin`. */
const char *phx_backend_push_parse(const uint8_t *obj, size_t len, phx_buf_t *ev, phx_buf_t *bin,
                                   phx_payload_t *payload)
{
    static const char *const fields[] = {"event", "payload", "payload_base64", NULL};
    phx_json_iter_t it;
    phx_json_span_t key, val, raw;
    if (phx_json_iter_init(&it, obj, len) != 0 || !phx_json_iter_is_object(&it))
        return "a push must be an object";
    while (phx_json_iter_next(&it, &key, &val)) {
        bool known = false;
        for (const char *const *f = fields; *f && !known; f++)
            known = key.len == strlen(*f) + 2 && memcmp(key.p + 1, *f, key.len - 2) == 0;
        if (!known)
            return "unknown field in a push";
    }
    if (!phx_json_member(obj, len, "event", ev, &raw) || ev->len == 0)
        return "a push's event must be a non-empty string";
    if (phx_event_is_reserved((const char *)ev->data, ev->len))
        return "reserved event";
    return phx_api_payload_parse(obj, len, bin, payload);
}

/* Checks every entry of a list (push: pushes; else broadcasts). */
static const char *check_list(const phx_json_span_t *list, bool is_push)
{
    if (list->type == PHX_JSON_INVALID)
        return NULL;
    if (list->type != PHX_JSON_ARRAY)
        return is_push ? "push must be a list" : "broadcast must be a list";
    phx_json_iter_t it;
    phx_json_span_t el;
    size_t n = 0;
    phx_json_iter_init(&it, list->p, list->len);
    while (phx_json_iter_next(&it, NULL, &el)) {
        if (++n > PHX_BACKEND_MAX_LIST)
            return "too many entries in a list";
        if (el.type != PHX_JSON_OBJECT)
            return "list entries must be objects";
        const char *why;
        if (is_push) {
            phx_buf_t ev = {0}, bin = {0};
            phx_payload_t p;
            why = phx_backend_push_parse(el.p, el.len, &ev, &bin, &p);
            phx_buf_dispose(&ev);
            phx_buf_dispose(&bin);
        } else {
            phx_api_msg_t m = {0};
            phx_json_span_t unknown;
            why = phx_api_msg_parse(el.p, el.len, &m, &unknown);
            phx_api_msg_dispose(&m);
            if (why && *why == '\0')
                why = "unknown field in a broadcast";
        }
        if (why)
            return why;
    }
    return NULL;
}

/* The members of an answer read as they are (status and reply apart). */
static const struct {
    const char *key; /* quoted, as in the text */
    size_t offset;   /* of its span in phx_backend_answer_t */
} answer_fields[] = {
    {"\"response\"", offsetof(phx_backend_answer_t, response)},
    {"\"assigns\"", offsetof(phx_backend_answer_t, assigns)},
    {"\"push\"", offsetof(phx_backend_answer_t, push)},
    {"\"broadcast\"", offsetof(phx_backend_answer_t, broadcast)},
    {"\"broadcast_from\"", offsetof(phx_backend_answer_t, broadcast_from)},
    {"\"stop\"", offsetof(phx_backend_answer_t, stop)},
    {"\"presence\"", offsetof(phx_backend_answer_t, presence)},
    {"\"socket_id\"", offsetof(phx_backend_answer_t, socket_id)},
    {"\"user_id\"", offsetof(phx_backend_answer_t, user_id)},
};

/* The members of an object or the elements of an array (0 when absent). */
static size_t count_members(const phx_json_span_t *v)
{
    phx_json_iter_t it;
    phx_json_span_t key, val;
    size_t n = 0;
    if (v->type == PHX_JSON_INVALID || phx_json_iter_init(&it, v->p, v->len) != 0)
        return 0;
    while (phx_json_iter_next(&it, &key, &val))
        n++;
    return n;
}

const char *phx_backend_answer_parse(const uint8_t *body, size_t len, phx_backend_call_t type,
                                     const phx_json_limits_t *lim, phx_backend_answer_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len == 0 || phx_json_validate(body, len, lim) != 0)
        return "not JSON";
    phx_json_iter_t it;
    if (phx_json_iter_init(&it, body, len) != 0 || !phx_json_iter_is_object(&it))
        return "not an object";
    phx_json_span_t key, val, status = {0}, reply = {0};
    while (phx_json_iter_next(&it, &key, &val)) {
        if (span_is(&key, "\"status\"")) {
            status = val;
        } else if (span_is(&key, "\"reply\"")) {
            reply = val;
        } else {
            for (size_t i = 0; i < sizeof(answer_fields) / sizeof(answer_fields[0]); i++)
                if (span_is(&key, answer_fields[i].key))
                    *(phx_json_span_t *)((char *)out + answer_fields[i].offset) = val;
        }
    }
    if (type == PHX_BACKEND_EVENT) {
        if (reply.type == PHX_JSON_INVALID)
            return "reply is missing";
        if (reply.type == PHX_JSON_OBJECT) {
            out->has_reply = true;
            phx_json_iter_init(&it, reply.p, reply.len);
            status.type = PHX_JSON_INVALID;
            while (phx_json_iter_next(&it, &key, &val)) {
                if (span_is(&key, "\"status\""))
                    status = val;
                else if (span_is(&key, "\"response\""))
                    out->response = val;
            }
        } else if (reply.type != PHX_JSON_NULL) {
            return "reply must be an object or null";
        }
    }
    if (type != PHX_BACKEND_EVENT || out->has_reply) {
        int st = status_of(&status);
        if (st < 0)
            return "status must be ok or error";
        out->is_ok = st == 1;
    }
    if (out->response.type != PHX_JSON_INVALID && out->response.type != PHX_JSON_OBJECT)
        return "response must be an object";
    if (out->assigns.type != PHX_JSON_INVALID && out->assigns.type != PHX_JSON_OBJECT)
        return "assigns must be an object";
    if (out->assigns.len > PHX_BACKEND_MAX_ASSIGNS ||
        count_members(&out->assigns) > PHX_BACKEND_MAX_LIST)
        return "assigns too large";
    if (out->stop.type != PHX_JSON_INVALID && out->stop.type != PHX_JSON_OBJECT &&
        out->stop.type != PHX_JSON_NULL)
        return "stop must be an object";
    if (out->stop.type == PHX_JSON_NULL)
        out->stop.type = PHX_JSON_INVALID;
    if (out->presence.type != PHX_JSON_INVALID && out->presence.type != PHX_JSON_OBJECT &&
        out->presence.type != PHX_JSON_NULL)
        return "presence must be an object or null";
    if (out->socket_id.type != PHX_JSON_INVALID && out->socket_id.type != PHX_JSON_STRING &&
        out->socket_id.type != PHX_JSON_NULL)
        return "socket_id must be a string";
    if (out->user_id.type != PHX_JSON_INVALID && out->user_id.type != PHX_JSON_STRING &&
        out->user_id.type != PHX_JSON_NUMBER && out->user_id.type != PHX_JSON_NULL)
        return "user_id must be a string or a number";
    const char *why = check_list(&out->push, true);
    if (why == NULL)
        why = check_list(&out->broadcast, false);
    if (why == NULL)
        why = check_list(&out->broadcast_from, false);
    return why;
}
