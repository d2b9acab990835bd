/* fuzz_serializer: serializer.c's client decoders. The first byte picks the
 * format (0: V1 text, 1: V2 text, 2: V2 binary); the rest is the frame.
 * Invariants: decoding reads only the frame; decoded strings hold no NUL and
 * respect the limits; JSON payloads validate; a reply (and for V2 a push)
 * built from the decoded fields encodes, and decoding that output gives the
 * same fields back (server V2 text is itself a 5-element array, V1 output
 * an object with the four required keys, and a binary reply with its kind
 * byte set to 0 is a client push whose event is the status). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "phx.h"
#include "serializer.h"
#include "utf8.h"
#include "fuzz.h"

static bool field_same(const phx_field_t *a, const phx_field_t *b)
{
    return a->kind == b->kind && a->len == b->len &&
           (a->len == 0 || memcmp(a->p, b->p, a->len) == 0);
}

static void check_field(const phx_field_t *f, uint32_t max)
{
    CHECK(f->len <= max);
    if (f->kind == PHX_FIELD_STRING) {
        CHECK(memchr(f->p, 0, f->len) == NULL);
        CHECK(phx_utf8_valid(f->p, f->len));
    } else if (f->kind == PHX_FIELD_OTHER) {
        CHECK(phx_json_validate(f->p, f->len, NULL) == 0);
    }
}

/* Copies the rcbuf's message into an exact-size heap buffer and decodes it. */
static uint8_t *redecode(phx_msg_t *m, phx_fmt_t fmt, const phx_rcbuf_t *b, bool as_push)
{
    size_t len = b->len - b->off;
    uint8_t *p = malloc(len ? len : 1);
    CHECK(p != NULL);
    memcpy(p, b->data + b->off, len);
    if (as_push)
        p[0] = 0;
    /* Replies nest the payload one level deeper than the client message. */
    phx_msg_limits_t lim = PHX_MSG_LIMITS_DEFAULT;
    lim.max_depth += 2;
    CHECK(phx_msg_decode(m, fmt, b->is_binary, p, len, &lim) == 0);
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    unsigned mode = data[0] % 3;
    phx_fmt_t fmt = mode == 0 ? PHX_FMT_V1_JSON : PHX_FMT_V2_JSON;
    bool bin = mode == 2;
    size_t len = size - 1;
    uint8_t *frame = malloc(len ? len : 1);
    CHECK(frame != NULL);
    if (len)
        memcpy(frame, data + 1, len);

    phx_msg_limits_t lim = PHX_MSG_LIMITS_DEFAULT;
    phx_msg_t m;
    int rv = phx_msg_decode(&m, fmt, bin, frame, len, &lim);
    if (rv != 0) {
        CHECK(rv == PHX_ERR_PROTO || rv == PHX_ERR_LIMIT);
        free(frame);
        return 0;
    }
    check_field(&m.join_ref, lim.max_ref_len);
    check_field(&m.ref, lim.max_ref_len);
    check_field(&m.topic, lim.max_topic_len);
    check_field(&m.event, lim.max_event_len);
    CHECK(m.is_binary == bin);
    CHECK(m.payload >= frame && m.payload + m.payload_len <= frame + len);
    if (!bin)
        CHECK(phx_json_validate(m.payload, m.payload_len, NULL) == 0);

    /* Reply with the decoded fields, then decode the reply. */
    phx_out_t o = {.kind = PHX_OUT_REPLY,
                   .join_ref = m.join_ref,
                   .ref = m.ref,
                   .topic = m.topic,
                   .status = phx_field_str("ok"),
                   .payload = m.payload,
                   .payload_len = m.payload_len,
                   .is_binary = bin};
    phx_rcbuf_t *b;
    CHECK(phx_msg_encode(&b, fmt, &o) == 0);
    CHECK(b->off == PHX_MSG_HEADROOM && b->len == b->cap && (bool)b->is_binary == bin);
    phx_msg_t r;
    uint8_t *keep = redecode(&r, fmt, b, bin);
    CHECK(field_same(&r.ref, &m.ref));
    CHECK(field_same(&r.topic, &m.topic));
    if (fmt == PHX_FMT_V2_JSON)
        CHECK(field_same(&r.join_ref, &m.join_ref));
    else
        CHECK(r.join_ref.kind == PHX_FIELD_NULL);
    if (bin) {
        CHECK(phx_field_eq(&r.event, "ok"));
        CHECK(r.payload_len == m.payload_len &&
              (m.payload_len == 0 || memcmp(r.payload, m.payload, m.payload_len) == 0));
    } else {
        CHECK(phx_field_eq(&r.event, "phx_reply"));
    }
    free(keep);
    phx_rcbuf_unref(b);

    /* A V2 text message with an object payload comes back field for field. */
    if (fmt == PHX_FMT_V2_JSON && !bin &&
        phx_json_type(m.payload, m.payload_len) == PHX_JSON_OBJECT) {
        phx_out_t p = {.kind = PHX_OUT_MESSAGE,
                       .join_ref = m.join_ref,
                       .ref = m.ref,
                       .topic = m.topic,
                       .event = m.event,
                       .payload = m.payload,
                       .payload_len = m.payload_len};
        CHECK(phx_msg_encode(&b, fmt, &p) == 0);
        keep = redecode(&r, fmt, b, false);
        CHECK(field_same(&r.join_ref, &m.join_ref));
        CHECK(field_same(&r.ref, &m.ref));
        CHECK(field_same(&r.topic, &m.topic));
        CHECK(field_same(&r.event, &m.event));
        CHECK(r.payload_len == m.payload_len && memcmp(r.payload, m.payload, m.payload_len) == 0);
        free(keep);
        phx_rcbuf_unref(b);
    }
    if (bin) {
        phx_out_t p = {.kind = PHX_OUT_PUSH,
                       .join_ref = m.join_ref,
                       .topic = m.topic,
                       .event = m.event,
                       .payload = m.payload,
                       .payload_len = m.payload_len,
                       .is_binary = true};
        CHECK(phx_msg_encode(&b, fmt, &p) == 0);
        CHECK(b->len - b->off == 4 + m.join_ref.len + m.topic.len + m.event.len + m.payload_len);
        phx_rcbuf_unref(b);
    }
    free(frame);
    return 0;
}
