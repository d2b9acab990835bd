/* query.h: the query string of a connect request (/socket/websocket?...,
 * /socket/longpoll?...) decoded into connect params with Plug's semantics
 * (docs/protocol.md §1.2): split on '&', key and value split on the first '=', both
 * application/x-www-form-urlencoded decoded ('+' is a space, %XX escapes, a
 * malformed escape is kept literally), empty parts ignored, a key without '='
 * gets "", `a[b]=v` builds nested maps, `a[]=v` appends to a list, and when a
 * key is given again the last assignment wins. Every leaf is a string. Pure
 * codec; the parsed params are one heap object. */
#ifndef PHX_QUERY_H
#define PHX_QUERY_H

#include <stddef.h>
#include <stdint.h>

#include "mem.h"

typedef struct phx_query_limits {
    uint32_t max_len;    /* bytes of the raw query string */
    uint32_t max_params; /* non-empty '&'-separated parts */
    uint32_t max_depth;  /* bracket levels in one key: `a[b][c]` has 2 */
} phx_query_limits_t;

/* Hard upper bound of max_depth: larger configured values are clamped. */
#define PHX_QUERY_DEPTH_CAP 32

#define PHX_QUERY_DEFAULT_MAX_LEN 16384
#define PHX_QUERY_DEFAULT_MAX_PARAMS 128
#define PHX_QUERY_DEFAULT_MAX_DEPTH 8
#define PHX_QUERY_LIMITS_DEFAULT                                                                   \
    ((phx_query_limits_t){.max_len = PHX_QUERY_DEFAULT_MAX_LEN,                                    \
                          .max_params = PHX_QUERY_DEFAULT_MAX_PARAMS,                              \
                          .max_depth = PHX_QUERY_DEFAULT_MAX_DEPTH})

typedef struct phx_query phx_query_t;

/* Decodes the query string `qs` (without the leading '?'; len bytes, not
 * NUL-terminated, may be empty). Copies what it needs from `qs`. `lim` may be
 * NULL for the defaults. Returns owned *out (release with phx_query_free) and
 * 0, or:
 *  PHX_ERR_INVALID  a decoded key or value is not valid UTF-8 (Plug's
 *                   invalid-query error: the server answers 400);
 *  PHX_ERR_LIMIT    over max_len, max_params or max_depth;
 *  PHX_ERR_NOMEM. */
int phx_query_parse(phx_query_t **out, const char *qs, size_t len, const phx_query_limits_t *lim);

/* Frees the params; phx_query_free(NULL) is a no-op. */
void phx_query_free(phx_query_t *q);

/* Appends the params as one JSON object (nested maps as objects, lists as
 * arrays, leaves as strings; keys in order of first appearance) to `out`,
 * for the connect callback. Returns 0 or PHX_ERR_NOMEM. */
int phx_query_to_json(const phx_query_t *q, phx_buf_t *out);

typedef enum {
    PHX_QUERY_ABSENT = 0, /* no such top-level key */
    PHX_QUERY_STRING,     /* a string (decoded bytes in *val, *val_len) */
    PHX_QUERY_NESTED,     /* a map or a list (e.g. `vsn[x]=1`) */
} phx_query_kind_t;

/* Looks up the top-level key `key` (key_len bytes, e.g. "vsn", "token").
 * For a string, *val (borrowed: valid until phx_query_free) and *val_len
 * receive its decoded bytes; otherwise they are set to NULL and 0. `val` and
 * `val_len` may be NULL. */
phx_query_kind_t phx_query_get(const phx_query_t *q, const char *key, size_t key_len,
                               const uint8_t **val, size_t *val_len);

/* Number of top-level keys. */
size_t phx_query_count(const phx_query_t *q);

/* The value of a hexadecimal digit (either case), or -1. */
int phx_hex_digit(int c);

#endif /* PHX_QUERY_H */
