/* serializer.h: Phoenix messages to and from the wire formats of docs/protocol.md
 * section 2: V1 JSON objects (vsn 1.0.x), V2 JSON arrays in text frames and
 * V2 binary frames (vsn 2.0.x). Pure codec: bytes in, structs or a new
 * phx_rcbuf_t out; no clock, no socket. A leaf: it includes no other module of phxd. */
#ifndef PHX_SERIALIZER_H
#define PHX_SERIALIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

/* ---- formats and vsn negotiation ---- */

typedef enum {
    PHX_FMT_V1_JSON = 0, /* vsn ~> 1.0.0: JSON objects, text only */
    PHX_FMT_V2_JSON = 1, /* vsn ~> 2.0.0: JSON arrays in text frames, binary frames */
    PHX_FMT_COUNT = 2,
} phx_fmt_t;

/* Picks the serializer for the `vsn` connect param (docs/protocol.md §1.3). `present`
 * is false when the query had no `vsn` key: that selects V1 (the "1.0.0"
 * default). Otherwise `vsn` (len bytes, decoded, not NUL-terminated) must be
 * a strict SemVer MAJOR.MINOR.PATCH[-pre][+build] (no leading zeros, no
 * spaces, identifiers [0-9A-Za-z-]) matching "~> 1.0.0" (V1) or "~> 2.0.0"
 * (V2) as Elixir's Version.match?/2 does: "2.0.0+build" and "2.0.7" give V2,
 * "2.0.0-rc.1" is refused (it sorts below 2.0.0) while "2.0.1-rc.1" gives V2
 * (above 2.0.0, below 2.1.0-0; Version.match? allows pre-releases by default).
 * A present but empty string is refused. Borrows `vsn`.
 * Returns 0 with *fmt set, PHX_ERR_INVALID (not a valid version) or
 * PHX_ERR_NOTFOUND (valid, but no serializer matches). The server answers
 * both like a refused connect (WebSocket 403, LongPoll {"status":403}). */
int phx_vsn_parse(const char *vsn, size_t len, bool present, phx_fmt_t *fmt);

/* ---- fields ---- */

typedef enum {
    PHX_FIELD_NULL = 0, /* JSON null (or, in V1, an absent join_ref) */
    PHX_FIELD_STRING,   /* bytes of a string: unescaped, UTF-8, no NUL */
    PHX_FIELD_OTHER,    /* any other JSON value, as its minified JSON text */
} phx_field_kind_t;

/* One of join_ref, ref, topic, event or status. Refs are echoed with the
 * JSON type they arrived with: a STRING is written back as an escaped string,
 * an OTHER (e.g. the number 7) as its raw text. A non-string topic matches no
 * channel but can still be echoed in the "unmatched topic" reply. */
typedef struct phx_field {
    phx_field_kind_t kind;
    const uint8_t *p; /* NULL for PHX_FIELD_NULL */
    size_t len;
} phx_field_t;

static inline phx_field_t phx_field_null(void)
{
    phx_field_t f = {PHX_FIELD_NULL, NULL, 0};
    return f;
}

static inline phx_field_t phx_field_bytes(const void *p, size_t len)
{
    phx_field_t f = {PHX_FIELD_STRING, (const uint8_t *)p, len};
    return f;
}

/* A STRING field over a NUL-terminated C string (borrowed). */
phx_field_t phx_field_str(const char *s);

/* True when `f` is a STRING equal to the C string `s`. */
bool phx_field_eq(const phx_field_t *f, const char *s);

/* ---- decoding client frames ---- */

typedef struct phx_msg_limits {
    uint32_t max_depth;     /* JSON nesting, the envelope included (V2 array, V1 object) */
    uint32_t max_topic_len; /* bytes of the decoded topic (raw text if not a string) */
    uint32_t max_event_len; /* same for event */
    uint32_t max_ref_len;   /* same for ref and join_ref */
} phx_msg_limits_t;

#define PHX_MSG_DEFAULT_MAX_DEPTH 64
#define PHX_MSG_DEFAULT_MAX_FIELD_LEN 1024
#define PHX_MSG_LIMITS_DEFAULT                                                                     \
    ((phx_msg_limits_t){.max_depth = PHX_MSG_DEFAULT_MAX_DEPTH,                                    \
                        .max_topic_len = PHX_MSG_DEFAULT_MAX_FIELD_LEN,                            \
                        .max_event_len = PHX_MSG_DEFAULT_MAX_FIELD_LEN,                            \
                        .max_ref_len = PHX_MSG_DEFAULT_MAX_FIELD_LEN})

/* A decoded client message. Every pointer points into the frame buffer given
 * to phx_msg_decode: valid until that buffer is released or reused. */
typedef struct phx_msg {
    phx_field_t join_ref;
    phx_field_t ref;
    phx_field_t topic;
    phx_field_t event;
    /* Minified JSON text of any JSON value (an object in practice), or the
     * raw bytes of a binary frame's payload when is_binary. */
    const uint8_t *payload;
    size_t payload_len;
    bool is_binary;
} phx_msg_t;

/* Decodes one client message: a WebSocket text or binary frame, or one
 * LongPoll message (a JSON line, or the bytes of a base64 line with
 * is_binary). `frame` is owned by the caller and modified in place: JSON is
 * minified and strings are unescaped where they lie. *msg points into it
 * (valid until the frame buffer is released). `lim` may be NULL (defaults).
 *  - V2 text: a JSON array of at least five elements (extra ones ignored):
 *    [join_ref, ref, topic, event, payload]; element types are not checked.
 *  - V1 text: an object with the keys topic, event, payload, ref (ref may be
 *    null) and optionally join_ref; other keys are ignored; any of these five
 *    keys given twice is refused.
 *  - V2 binary: kind 0 with the 5-byte client header; a zero-length join_ref
 *    or ref stays "" (an empty STRING), not null. Metadata must be UTF-8.
 * Returns 0, PHX_ERR_PROTO (invalid JSON or UTF-8, wrong shape, a V1 object
 * on V2 or an array on V1, a binary frame on V1, binary kind 1/2 or other,
 * truncated header, lengths past the end, NUL in topic/event/refs) or
 * PHX_ERR_LIMIT (nesting deeper than max_depth, a field longer than its
 * limit). On error *msg is unspecified. The socket layer closes with 1011. */
int phx_msg_decode(phx_msg_t *msg, phx_fmt_t fmt, bool is_binary, uint8_t *frame, size_t len,
                   const phx_msg_limits_t *lim);

/* ---- encoding server messages ---- */

/* Headroom before the payload of every encoded rcbuf: room for the largest
 * server WebSocket frame header (2 + 8 bytes, unmasked). */
#define PHX_MSG_HEADROOM 10

typedef enum {
    /* [join_ref, ref, topic, "phx_reply", {"response": payload, "status": status}]
     * Binary: kind 1 with the status in the 4th metadata field. */
    PHX_OUT_REPLY = 0,
    /* [join_ref, null, topic, event, payload]. Binary: kind 0, 4-byte header. */
    PHX_OUT_PUSH,
    /* [null, null, topic, event, payload]. Binary: kind 2, 3-byte header. */
    PHX_OUT_BROADCAST,
    /* [join_ref, ref, topic, event, payload], every field as given: phx_close
     * and phx_error (ref = join_ref, docs/protocol.md §3.8). JSON payloads only. */
    PHX_OUT_MESSAGE,
} phx_out_kind_t;

/* One server message to encode. Fields a kind does not use are ignored
 * (a push's ref, a broadcast's join_ref and ref, a reply's event). */
typedef struct phx_out {
    phx_out_kind_t kind;
    phx_field_t join_ref;
    phx_field_t ref;
    phx_field_t topic;
    phx_field_t event;
    phx_field_t status; /* replies: a STRING such as "ok" or "error" */
    /* JSON text (minified, valid; an object for push/broadcast/message, any
     * value for a reply's response; NULL or empty means {}), or raw bytes when
     * is_binary. Copied into the result. */
    const uint8_t *payload;
    size_t payload_len;
    bool is_binary;
} phx_out_t;

/* Computes the exact number of bytes phx_msg_encode writes after the
 * headroom. Returns 0 with *size, or the error phx_msg_encode would return
 * (except PHX_ERR_NOMEM). */
int phx_msg_encoded_size(phx_fmt_t fmt, const phx_out_t *m, size_t *size);

/* Encodes `m` into a new rcbuf of exactly PHX_MSG_HEADROOM + size bytes,
 * allocated once. On return (*out)->off == (*out)->payload_off ==
 * PHX_MSG_HEADROOM, (*out)->len is the end of the message and is_binary is set
 * for a binary frame (V2 and m->is_binary). Copies every input. Returns
 * owned (*out, release with phx_rcbuf_unref) and 0, or:
 *  PHX_ERR_INVALID  V1 with a binary payload; a binary MESSAGE; an OTHER
 *                   field in a binary frame; a text payload that is not an
 *                   object where one is required; a string field that is not
 *                   valid UTF-8 in a JSON (text) message;
 *  PHX_ERR_LIMIT    a binary metadata field over 255 bytes, or a message
 *                   over 4 GiB (the message is not sent);
 *  PHX_ERR_NOMEM.
 * Strings are written JSON-escaped from their bytes (phx_json_escape); OTHER
 * fields as their raw JSON text. V1 output is {"event":..,"payload":..,
 * "ref":..,"topic":..} with no join_ref key. */
int phx_msg_encode(phx_rcbuf_t **out, phx_fmt_t fmt, const phx_out_t *m);

#endif /* PHX_SERIALIZER_H */
