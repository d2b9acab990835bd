/* json.h: a strict RFC 8259 scanner for JSON that peers send, plus the small
 * pieces the serializer needs: in-place minification, iteration over the
 * members of one array or object, string unescaping and escaping.
 *
 * phxd never re-prints client JSON through a DOM (cJSON rounds big integers):
 * it validates the bytes here and forwards them minified, numbers and string
 * bytes exactly as sent. Leaf module; only phx_json_append_string allocates. */
#ifndef PHX_JSON_H
#define PHX_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

/* ---- limits ---- */

#define PHX_JSON_DEFAULT_MAX_DEPTH 64
/* Hard upper bound of max_depth: larger configured values are clamped. */
#define PHX_JSON_DEPTH_CAP 1024

typedef struct phx_json_limits {
    /* Maximum number of nested containers: with 2, `[[1]]` passes and
     * `[[[1]]]` fails with PHX_ERR_LIMIT. 0 allows only scalars. */
    uint32_t max_depth;
} phx_json_limits_t;

#define PHX_JSON_LIMITS_DEFAULT ((phx_json_limits_t){.max_depth = PHX_JSON_DEFAULT_MAX_DEPTH})

/* ---- validation and minification ---- */

/* Checks that `json` holds exactly one RFC 8259 value, with optional
 * whitespace before and after it: strict numbers, escapes and UTF-8 inside
 * strings (no lone surrogate escapes, no raw control characters), nothing
 * trailing. Borrows `json`; `lim` may be NULL for the defaults. The maximum
 * total length is the caller's to enforce.
 * Returns 0, PHX_ERR_PROTO (not valid JSON) or PHX_ERR_LIMIT (too deep). */
int phx_json_validate(const uint8_t *json, size_t len, const phx_json_limits_t *lim);

/* Validates like phx_json_validate and at the same time removes, in place,
 * every whitespace byte outside strings. Numbers and string bytes (escapes
 * included) are kept exactly. The result is never longer than the input;
 * *out_len receives its length (also on error, then the buffer content is
 * unspecified). Minifying a minified text changes nothing.
 * Returns 0, PHX_ERR_PROTO or PHX_ERR_LIMIT. */
int phx_json_minify(uint8_t *json, size_t len, const phx_json_limits_t *lim, size_t *out_len);

/* True when `json` is valid (as phx_json_validate) and its value is an
 * object. Payloads the server emits in text frames must pass this. */
bool phx_json_is_object(const uint8_t *json, size_t len, const phx_json_limits_t *lim);

/* ---- spans and iteration over validated text ---- */

typedef enum {
    PHX_JSON_INVALID = 0,
    PHX_JSON_NULL,
    PHX_JSON_FALSE,
    PHX_JSON_TRUE,
    PHX_JSON_NUMBER,
    PHX_JSON_STRING,
    PHX_JSON_ARRAY,
    PHX_JSON_OBJECT,
} phx_json_type_t;

/* The bytes of one value inside a larger text (a string span includes its
 * quotes). Valid as long as the text it points into. */
typedef struct phx_json_span {
    const uint8_t *p;
    size_t len;
    phx_json_type_t type;
} phx_json_span_t;

/* Type of the value starting at the first non-whitespace byte, judged by
 * that byte only. PHX_JSON_INVALID when there is none. */
phx_json_type_t phx_json_type(const uint8_t *json, size_t len);

/* Iterates over the elements of one array or the members of one object.
 * The text MUST have been validated (phx_json_validate/phx_json_minify);
 * on other input the iterator stays inside the bounds but its spans are
 * meaningless. Whitespace is allowed. */
typedef struct phx_json_iter {
    const uint8_t *_p;
    size_t _len;
    size_t _pos;
    bool _is_object;
    bool _done;
} phx_json_iter_t;

/* Starts iterating over the array or object that begins at the first
 * non-whitespace byte of `json`. Borrows `json` for the iterator's lifetime.
 * Returns 0, or PHX_ERR_INVALID when the value is not a container. */
int phx_json_iter_init(phx_json_iter_t *it, const uint8_t *json, size_t len);

/* True when the iterator is over an object. */
bool phx_json_iter_is_object(const phx_json_iter_t *it);

/* Fetches the next element. For an object, *key receives the key's string
 * span (with quotes); for an array `key` may be NULL and is left untouched.
 * Returns false after the last element. */
bool phx_json_iter_next(phx_json_iter_t *it, phx_json_span_t *key, phx_json_span_t *val);

/* ---- strings ---- */

/* Unescapes the string span `span` (with its quotes) into `out`, which needs
 * room for span_len - 2 bytes and MAY be the same memory as `span` (the
 * writer never overtakes the reader). Raw bytes are copied unchecked, so the
 * span should come from validated text for a UTF-8 guarantee. *out_len gets
 * the decoded length and *has_nul whether the result contains a NUL byte
 * (a "\u0000" escape): callers refuse NUL in topics, events and refs.
 * Returns 0, or PHX_ERR_PROTO for a malformed span (missing quotes, bad or
 * truncated escape, lone surrogate escape). */
int phx_json_string_decode(const uint8_t *span, size_t span_len, uint8_t *out, size_t *out_len,
                           bool *has_nul);

/* Length of the quoted, escaped form of `len` bytes (quotes included), as
 * phx_json_escape writes it. */
size_t phx_json_escaped_len(const uint8_t *s, size_t len);

/* Writes `s` as a JSON string (with quotes) at `dst`, which needs
 * phx_json_escaped_len(s, len) bytes; returns the end of what was written.
 * Escapes as Jason does by default: `"` and `\` with a backslash, \b \t \n
 * \f \r in short form, other control bytes as \u00XX (upper-case hex);
 * everything else, non-ASCII UTF-8 included, is copied raw. The caller makes
 * sure `s` is valid UTF-8 if the result must be. */
uint8_t *phx_json_escape(uint8_t *dst, const uint8_t *s, size_t len);

/* Appends the escaped form of `s` to `b`. Copies `s`.
 * Returns 0 or PHX_ERR_NOMEM (b is unchanged then). */
int phx_json_append_string(phx_buf_t *b, const uint8_t *s, size_t len);

/* The member `name` of the (validated) object `body`: the last one when
 * the key repeats, as JSON.parse and Jason keep. *raw is its value span.
 * With `out`, the member must also be a string without NUL, decoded into
 * `out` (NUL-terminated, len without it). False when absent or, with
 * `out`, not such a string. */
bool phx_json_member(const uint8_t *body, size_t len, const char *name, phx_buf_t *out,
                     phx_json_span_t *raw);

#endif /* PHX_JSON_H */
