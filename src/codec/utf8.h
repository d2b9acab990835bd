/* utf8.h: strict UTF-8 validation and single-scalar decode/encode (RFC 3629:
 * no overlong forms, no surrogates U+D800..U+DFFF, nothing above U+10FFFF).
 * Leaf module: pure functions over borrowed bytes, no allocation. */
#ifndef PHX_UTF8_H
#define PHX_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returns true when all `len` bytes of `s` form valid UTF-8. Borrows `s`.
 * ASCII runs are checked eight bytes at a time. */
bool phx_utf8_valid(const uint8_t *s, size_t len);

/* Returns the length of the longest prefix of `s` that is valid UTF-8 and ends
 * on a scalar boundary (== len when the whole input is valid). A truncated but
 * otherwise well-formed sequence at the end is not part of the prefix. */
size_t phx_utf8_valid_prefix(const uint8_t *s, size_t len);

/* Decodes the scalar value at the start of `s` (len >= 1). Returns the number
 * of bytes it occupies (1..4) and stores it in *cp, or returns 0 when the
 * bytes are not a complete, valid UTF-8 sequence (*cp is then unspecified). */
size_t phx_utf8_decode(const uint8_t *s, size_t len, uint32_t *cp);

/* Writes the UTF-8 form of scalar `cp` into out[0..3]. Returns its length
 * (1..4), or 0 when `cp` is a surrogate or above U+10FFFF. */
size_t phx_utf8_encode(uint32_t cp, uint8_t out[4]);

#endif /* PHX_UTF8_H */
