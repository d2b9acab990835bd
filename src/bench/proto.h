/* proto.h: phxd-bench's Phoenix message codec. Encodes client messages in
 * V1 (JSON object) or V2 (JSON array) form and decodes server messages in
 * place, without allocating: a decoded message is a set of spans pointing
 * into the frame. The decoder is tolerant (key order, whitespace) but
 * bounded (nesting depth, lengths), so it reads what any Phoenix-compatible
 * server sends. Pure: no I/O, no clock. */
#ifndef PHX_BENCH_PROTO_H
#define PHX_BENCH_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Nesting accepted in a server message (payload included). */
#define PHX_BENCH_JSON_MAX_DEPTH 32

/* The bytes of one JSON value. For a string, `p`/`len` cover the contents
 * without the quotes (escapes are not decoded); `is_null` marks a JSON null
 * (then `len` is 0). Valid as long as the frame it points into. */
typedef struct phx_bench_span {
    const char *p;
    size_t len;
    bool is_string;
    bool is_null;
} phx_bench_span_t;

/* A decoded server message. `payload` is the raw JSON value. */
typedef struct phx_bench_msg {
    phx_bench_span_t join_ref; /* always null in V1 */
    phx_bench_span_t ref;
    phx_bench_span_t topic;
    phx_bench_span_t event;
    phx_bench_span_t payload;
    size_t len; /* bytes of the whole frame (the message's text) */
} phx_bench_msg_t;

/* Decodes one text frame: a V2 array `[join_ref, ref, topic, event,
 * payload]` (elements past the fifth ignored) or, with `is_v1`, an object
 * with the keys topic, event, payload and ref in any order. Borrows `data`;
 * the spans in *out point into it. Returns 0, or PHX_ERR_PROTO for anything
 * else (invalid JSON, wrong shape, a topic or event that is not a string,
 * nesting beyond PHX_BENCH_JSON_MAX_DEPTH). */
int phx_bench_msg_decode(const char *data, size_t len, bool is_v1, phx_bench_msg_t *out);

/* Looks up `key` among the top-level members of the object in `obj` (a raw
 * JSON value span). Borrows both. Returns true with the member's value in
 * *out, false when `obj` is not an object or has no such key. */
bool phx_bench_json_get(const phx_bench_span_t *obj, const char *key, phx_bench_span_t *out);

/* Iterates the top-level members of the object in `obj`: *pos starts at 0
 * and is advanced past each member. Returns 1 with the member's key (a
 * string span, escapes not decoded) and value, 0 after the last member, or
 * -1 when `obj` is not a well-formed object. Borrows `obj`. */
int phx_bench_json_next(const phx_bench_span_t *obj, size_t *pos, phx_bench_span_t *key,
                        phx_bench_span_t *val);

/* Parses a span holding a non-negative decimal integer (a JSON number, or
 * the contents of a string) into *out. Returns false on anything else or
 * overflow. */
bool phx_bench_span_u64(const phx_bench_span_t *s, uint64_t *out);

/* True when span `s` is a string equal to the NUL-terminated `text`. */
bool phx_bench_span_eq(const phx_bench_span_t *s, const char *text);

/* Reads a reply: for a phx_reply message sets *is_ok (status "ok") and
 * *response (may be NULL). Returns false when the payload is not an object
 * with a string status. Borrows `msg`. */
bool phx_bench_reply_status(const phx_bench_msg_t *msg, bool *is_ok, phx_bench_span_t *response);

/* Encodes a client message into `buf` (room for `cap` bytes, no NUL
 * written). `join_ref` and `ref` may be NULL (JSON null); `topic`, `event`,
 * `join_ref` and `ref` must need no JSON escaping (the caller checks
 * options once with phx_bench_json_safe); `payload` is raw JSON of
 * `payload_len` bytes. Borrows everything. Returns the encoded length, or 0
 * when it does not fit. */
size_t phx_bench_msg_encode(char *buf, size_t cap, bool is_v1, const char *join_ref,
                            const char *ref, const char *topic, const char *event,
                            const char *payload, size_t payload_len);

/* True when `s` can be put between JSON quotes as it is (printable ASCII
 * without '"' and '\'). */
bool phx_bench_json_safe(const char *s);

#endif /* PHX_BENCH_PROTO_H */
