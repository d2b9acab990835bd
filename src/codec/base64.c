/* base64.c: strict RFC 4648 base64 and base64url codecs. Used by token.c
 * for token parts and by the transports for the auth-token subprotocol and
 * LongPoll binary lines. Leaf module: owns nothing beyond the caller's
 * buffers. */
#include "base64.h"

#include "phx.h"

static const char std_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char url_chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* ---- encoding ---- */

size_t phx_base64_encoded_len(size_t len, bool pad)
{
    size_t groups = len / 3, rem = len % 3;
    if (groups > (SIZE_MAX - 4) / 4)
        return SIZE_MAX;
    size_t n = groups * 4;
    if (rem != 0)
        n += pad ? 4 : rem + 1;
    return n;
}

static int encode(phx_buf_t *out, const uint8_t *in, size_t len, const char *chars, bool pad)
{
    size_t n = phx_base64_encoded_len(len, pad);
    if (n == SIZE_MAX || phx_buf_reserve(out, n) != 0)
        return PHX_ERR_NOMEM;
    char *o = (char *)out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *o++ = chars[v >> 18];
        *o++ = chars[(v >> 12) & 63];
        *o++ = chars[(v >> 6) & 63];
        *o++ = chars[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        *o++ = chars[v >> 18];
        *o++ = chars[(v >> 12) & 63];
        if (pad) {
            *o++ = '=';
            *o++ = '=';
        }
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        *o++ = chars[v >> 18];
        *o++ = chars[(v >> 12) & 63];
        *o++ = chars[(v >> 6) & 63];
        if (pad)
            *o++ = '=';
    }
    out->len += n;
    out->data[out->len] = '\0';
    return 0;
}

int phx_base64url_encode(phx_buf_t *out, const void *data, size_t len)
{
    return encode(out, data, len, url_chars, false);
}

int phx_base64_encode(phx_buf_t *out, const void *data, size_t len)
{
    return encode(out, data, len, std_chars, true);
}

/* ---- decoding ---- */

/* Returns the 6-bit value of `c` in the alphabet, or -1. Written as range
 * tests rather than a table lookup indexed by input so that the two
 * alphabets stay exclusive of each other ('+' is invalid in base64url). */
static int char_value(phx_base64_alphabet_t alphabet, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (alphabet == PHX_BASE64_URL) {
        if (c == '-')
            return 62;
        if (c == '_')
            return 63;
    } else {
        if (c == '+')
            return 62;
        if (c == '/')
            return 63;
    }
    return -1;
}

size_t phx_base64_decoded_max(size_t len)
{
    return len / 4 * 3 + (len % 4 > 1 ? len % 4 - 1 : 0);
}

/* Strips valid padding from `*len` and checks the remaining length.
 * Returns 0 or PHX_ERR_INVALID. */
static int unpad(const char *src, size_t *len)
{
    size_t n = *len;
    size_t pad = 0;
    if (n >= 1 && src[n - 1] == '=')
        pad = (n >= 2 && src[n - 2] == '=') ? 2 : 1;
    if (pad != 0) {
        /* Padding completes a 4-character group: "xx==" or "xxx=". */
        if (n % 4 != 0)
            return PHX_ERR_INVALID;
        n -= pad;
        if (n % 4 != 4 - pad)
            return PHX_ERR_INVALID;
    } else if (n % 4 == 1) {
        return PHX_ERR_INVALID;
    }
    *len = n;
    return 0;
}

ssize_t phx_base64_decode_to(phx_base64_alphabet_t alphabet, const char *src, size_t len,
                             uint8_t *dst, size_t cap)
{
    if (unpad(src, &len) != 0)
        return PHX_ERR_INVALID;
    size_t need = phx_base64_decoded_max(len);
    if (need > cap)
        return PHX_ERR_LIMIT;
    size_t o = 0, i = 0;
    for (; i + 4 <= len; i += 4) {
        int a = char_value(alphabet, (unsigned char)src[i]);
        int b = char_value(alphabet, (unsigned char)src[i + 1]);
        int c = char_value(alphabet, (unsigned char)src[i + 2]);
        int d = char_value(alphabet, (unsigned char)src[i + 3]);
        if ((a | b | c | d) < 0)
            return PHX_ERR_INVALID;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        dst[o++] = (uint8_t)(v >> 16);
        dst[o++] = (uint8_t)(v >> 8);
        dst[o++] = (uint8_t)v;
    }
    size_t rem = len - i;
    if (rem >= 2) {
        int a = char_value(alphabet, (unsigned char)src[i]);
        int b = char_value(alphabet, (unsigned char)src[i + 1]);
        int c = rem == 3 ? char_value(alphabet, (unsigned char)src[i + 2]) : 0;
        if ((a | b | c) < 0)
            return PHX_ERR_INVALID;
        /* The bits below the last whole byte must be zero, so each byte
         * string has exactly one accepted encoding (RFC 4648 section 3.5). */
        if (rem == 2 ? (b & 15) != 0 : (c & 3) != 0)
            return PHX_ERR_INVALID;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6;
        dst[o++] = (uint8_t)(v >> 16);
        if (rem == 3)
            dst[o++] = (uint8_t)(v >> 8);
    }
    return (ssize_t)o;
}

static int decode_append(phx_buf_t *out, phx_base64_alphabet_t alphabet, const char *src,
                         size_t len)
{
    size_t max = phx_base64_decoded_max(len);
    if (phx_buf_reserve(out, max) != 0)
        return PHX_ERR_NOMEM;
    ssize_t n = phx_base64_decode_to(alphabet, src, len, out->data + out->len, max);
    if (n < 0) {
        out->data[out->len] = '\0';
        return PHX_ERR_INVALID;
    }
    out->len += (size_t)n;
    out->data[out->len] = '\0';
    return 0;
}

int phx_base64url_decode(phx_buf_t *out, const char *src, size_t len)
{
    return decode_append(out, PHX_BASE64_URL, src, len);
}

int phx_base64_decode(phx_buf_t *out, const char *src, size_t len)
{
    return decode_append(out, PHX_BASE64_STD, src, len);
}

int phx_base64_decode_any(phx_buf_t *out, const char *src, size_t len)
{
    /* A failed attempt leaves `out` as it was, so the second starts clean. */
    int rv = decode_append(out, PHX_BASE64_STD, src, len);
    if (rv == PHX_ERR_INVALID)
        rv = decode_append(out, PHX_BASE64_URL, src, len);
    return rv;
}
