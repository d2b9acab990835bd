/* base64.h: RFC 4648 base64 (section 4, standard alphabet) and base64url
 * (section 5). Encoders append to a phx_buf_t; decoders are strict: only the
 * alphabet's 64 characters, optional but correct '=' padding, and zero bits
 * in the unused low bits of the last character (the canonical encoding).
 * Leaf module: includes no stage. */
#ifndef PHX_BASE64_H
#define PHX_BASE64_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mem.h"

typedef enum {
    PHX_BASE64_STD, /* A-Z a-z 0-9 + / */
    PHX_BASE64_URL, /* A-Z a-z 0-9 - _ */
} phx_base64_alphabet_t;

/* Returns the length of the encoding of `len` bytes, with or without '='
 * padding. Returns SIZE_MAX when the result would not fit in a size_t. */
size_t phx_base64_encoded_len(size_t len, bool pad);

/* Appends the base64url encoding of `len` bytes without padding (as
 * Plug.Crypto writes token parts). Borrows `data`. Returns 0 or
 * PHX_ERR_NOMEM (then `out` is unchanged). */
int phx_base64url_encode(phx_buf_t *out, const void *data, size_t len);

/* Appends the standard base64 encoding of `len` bytes with '=' padding.
 * Borrows `data`. Returns 0 or PHX_ERR_NOMEM (then `out` is unchanged). */
int phx_base64_encode(phx_buf_t *out, const void *data, size_t len);

/* Decodes `len` characters of `src` (no NUL needed) in the given alphabet
 * into `dst`, which has room for `cap` bytes. Padding is optional; when
 * present it must be exactly the 1 or 2 '=' the length calls for. Any other
 * character, a length of 4k+1, or non-zero unused bits is invalid. Borrows
 * both buffers. Returns the number of bytes written, PHX_ERR_INVALID, or
 * PHX_ERR_LIMIT when the decoded bytes would exceed `cap` (nothing is written
 * past `cap`, and the error is detected before any byte is written). */
ssize_t phx_base64_decode_to(phx_base64_alphabet_t alphabet, const char *src, size_t len,
                             uint8_t *dst, size_t cap);

/* Returns the number of bytes `len` characters can decode to at most (an
 * upper bound: exact when there is no padding). */
size_t phx_base64_decoded_max(size_t len);

/* Appends the decoded bytes of base64url text (padding optional) to `out`.
 * Borrows `src`. Returns 0, PHX_ERR_INVALID or PHX_ERR_NOMEM; on error `out`
 * keeps its previous length. */
int phx_base64url_decode(phx_buf_t *out, const char *src, size_t len);

/* Same for the standard alphabet (padding optional), as used by the
 * WebSocket auth-token subprotocol and LongPoll binary lines. */
int phx_base64_decode(phx_buf_t *out, const char *src, size_t len);

/* Same for text in either alphabet (padding optional): the standard one or
 * base64url, but not a mix of the two ('+' with '-' or '_', '/' with '-' or
 * '_'). Both give the same bytes for text within A-Z a-z 0-9. For the
 * WebSocket auth-token subprotocol, whose "base64url." prefix phoenix.js
 * fills with btoa's standard alphabet. */
int phx_base64_decode_any(phx_buf_t *out, const char *src, size_t len);

#endif /* PHX_BASE64_H */
