/* etf.h: the Erlang external term format (ETF) subset that Phoenix.Token
 * payloads use (docs/protocol.md Appendix A), a small owned term tree, and its
 * conversions to and from JSON text. Leaf module: includes no stage.
 *
 * Terms are trees of phx_term_t nodes. Every node (and the bytes, items or
 * pairs it holds) belongs to its parent; the root is freed with
 * phx_term_free. Trees are never shared and are immutable once built. */
#ifndef PHX_ETF_H
#define PHX_ETF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mem.h"

/* ---- the term tree ---- */

typedef enum {
    PHX_TERM_INTEGER,  /* any size: sign + little-endian magnitude */
    PHX_TERM_FLOAT,    /* finite IEEE-754 double */
    PHX_TERM_ATOM,     /* UTF-8 text (Latin-1 atoms are converted) */
    PHX_TERM_BINARY,   /* bytes (Elixir strings) */
    PHX_TERM_CHARLIST, /* non-empty proper list of integers 0..255, as bytes
                        * (STRING_EXT); equal to the same PHX_TERM_LIST */
    PHX_TERM_LIST,     /* proper list; count 0 is [] (NIL_EXT) */
    PHX_TERM_TUPLE,
    PHX_TERM_MAP,   /* pairs sorted by key in Erlang term order, no duplicates */
    PHX_TERM_OTHER, /* a term phxd does not model (an improper list, a pid, a
                     * port, a reference, a fun, an export, a bitstring),
                     * only from a decode with keep_other: u.bytes holds its
                     * external format (without the version byte). It has no
                     * JSON form; phx_term_to_text prints it. */
} phx_term_type_t;

typedef struct phx_term phx_term_t;

typedef struct phx_term_pair {
    phx_term_t *key;
    phx_term_t *value;
} phx_term_pair_t;

struct phx_term {
    phx_term_type_t type;
    union {
        struct {
            bool is_negative;   /* never set for zero */
            size_t len;         /* magnitude bytes; 0 for zero, no high zero byte */
            const uint8_t *mag; /* little-endian */
        } integer;
        double f;
        struct {
            size_t len;
            const uint8_t *data; /* NUL-terminated for convenience */
        } bytes;                 /* ATOM, BINARY, CHARLIST */
        struct {
            size_t count;
            phx_term_t **items;
        } seq; /* LIST, TUPLE */
        struct {
            size_t count;
            phx_term_pair_t *pairs;
        } map;
    } u;
};

/* Frees a tree and everything it holds. NULL and NULL children are no-ops. */
void phx_term_free(phx_term_t *t);

/* Constructors. Each returns 0 with an owned node in *out (phx_term_free),
 * or PHX_ERR_NOMEM / PHX_ERR_INVALID with *out untouched. */
int phx_term_new_int(phx_term_t **out, int64_t v);
/* Copies `len` little-endian magnitude bytes (high zero bytes allowed). */
int phx_term_new_bigint(phx_term_t **out, bool is_negative, const uint8_t *mag, size_t len);
/* PHX_ERR_INVALID for NaN and infinities (Erlang has neither). */
int phx_term_new_float(phx_term_t **out, double v);
/* Copies UTF-8 text; PHX_ERR_INVALID if it is not UTF-8 or exceeds 255
 * characters (Erlang's atom limit). */
int phx_term_new_atom(phx_term_t **out, const char *text, size_t len);
/* Copies the bytes. */
int phx_term_new_binary(phx_term_t **out, const void *data, size_t len);
/* Copies the bytes; a list of those integers (len 0 gives []). */
int phx_term_new_charlist(phx_term_t **out, const uint8_t *bytes, size_t len);
/* Copies the `items` array and takes every item (freed on error too). */
int phx_term_new_tuple(phx_term_t **out, phx_term_t **items, size_t count);
int phx_term_new_list(phx_term_t **out, phx_term_t **items, size_t count);
/* Copies the `pairs` array and takes every key and value (freed on error
 * too). Sorts the pairs; duplicate keys give PHX_ERR_INVALID. */
int phx_term_new_map(phx_term_t **out, phx_term_pair_t *pairs, size_t count);

/* Accessors. Borrow their arguments; results are valid until the tree is
 * freed. */
/* True (and *out set) when `t` is an integer in int64_t range. */
bool phx_term_get_int64(const phx_term_t *t, int64_t *out);
/* True when `t` is the atom whose text is the NUL-terminated `text`. */
bool phx_term_is_atom(const phx_term_t *t, const char *text);
/* Looks up `key` (len bytes) in a map among binary keys first, then atom
 * keys, so both %{"user_id" => 42} and %{user_id: 42} answer "user_id".
 * Returns the value, or NULL when absent or `map` is not a map. */
const phx_term_t *phx_term_map_get(const phx_term_t *map, const char *key, size_t len);

/* Erlang's term order as used for map keys (erts's exact comparison):
 * numbers < atoms < tuples < maps < lists < binaries, where every integer
 * sorts before every float (OTP: "in maps key order integer types are
 * considered less than floats types"), at any depth. Returns <0, 0 or >0;
 * 0 means equal as map keys (=:=, with 0.0 equal to -0.0 as on OTP 25). A
 * charlist equals the list of the same integers. This is the order in
 * which maps are stored and encoded. */
int phx_term_compare(const phx_term_t *a, const phx_term_t *b);

/* ---- decoding (term_to_binary output to a tree) ---- */

#define PHX_ETF_DEFAULT_MAX_DEPTH 64
#define PHX_ETF_DEFAULT_MAX_NODES 10000
#define PHX_ETF_DEFAULT_MAX_BIGNUM_BYTES 64
#define PHX_ETF_HARD_MAX_DEPTH 1000 /* bounds C recursion whatever the config */

/* Bounds against hostile input. A zero field means its default. */
typedef struct phx_etf_limits {
    /* Containers (tuples, non-empty lists, maps) nested at most this deep:
     * with 64, 64 nested tuples decode and 65 are refused. Clamped to
     * PHX_ETF_HARD_MAX_DEPTH. */
    uint32_t max_depth;
    /* Nodes in the whole tree (a charlist or binary is one node). */
    uint32_t max_nodes;
    /* Declared magnitude bytes of one SMALL_BIG/LARGE_BIG integer. */
    uint32_t max_bignum_bytes;
    /* Keep what the decoder would refuse as a kind phxd does not model
     * (improper lists, pids, ports, references, NEW_FUN_EXT funs, exports,
     * bitstrings) as PHX_TERM_OTHER nodes, for display (`phxd token
     * verify`). Malformed input, compressed terms, old funs, LOCAL_EXT and
     * atom cache refs stay refused. Off by default: the server never sets
     * it. */
    bool keep_other;
} phx_etf_limits_t;

/* Decodes one term from `len` bytes starting with the version byte 131.
 * Accepted tags: SMALL_INTEGER, INTEGER, SMALL_BIG, LARGE_BIG, NEW_FLOAT,
 * FLOAT (legacy text), ATOM, SMALL_ATOM, ATOM_UTF8, SMALL_ATOM_UTF8,
 * SMALL_TUPLE, LARGE_TUPLE, NIL, STRING, LIST (proper), BINARY, MAP.
 * Everything else is refused: compressed terms, bitstrings, pids, ports,
 * references, funs, exports, LOCAL_EXT, atom cache refs, improper lists,
 * NaN/infinite floats, duplicate map keys, atoms over 255 characters or with
 * bad UTF-8, and trailing bytes after the term (Phoenix never sends them).
 * Every declared length is checked against the remaining input before
 * anything is allocated. Borrows `data` and `limits` (NULL = defaults).
 * Returns 0 with an owned tree in *out (phx_term_free), PHX_ERR_INVALID for
 * malformed input, PHX_ERR_LIMIT when a limit is exceeded, or
 * PHX_ERR_NOMEM. */
int phx_etf_decode(const uint8_t *data, size_t len, const phx_etf_limits_t *limits,
                   phx_term_t **out);

/* ---- encoding (as term_to_binary/1 does, Appendix A.3) ---- */

/* Write atoms as OTP <= 25 does (ATOM_EXT 'd' with Latin-1 bytes when every
 * character is <= U+00FF). The default is the OTP >= 26 form ('w'/'v'). */
#define PHX_ETF_LATIN1_ATOMS 1u

/* Appends 131 and the encoding of `t`. Integers use the smallest tag, lists
 * of 1..65535 integers 0..255 become STRING_EXT, maps are written in key
 * order (what OTP does for maps of up to 32 keys; larger maps are written
 * in the same order, where OTP would use its hash order). Borrows `t`.
 * Returns 0 or PHX_ERR_NOMEM (out may then hold a partial encoding). */
int phx_etf_encode(const phx_term_t *t, unsigned flags, phx_buf_t *out);
/* The same without the version byte (for embedding in a larger term). */
int phx_etf_encode_term(const phx_term_t *t, unsigned flags, phx_buf_t *out);
/* Appends one integer, float (finite) or atom (UTF-8 text) encoding. */
int phx_etf_encode_int64(phx_buf_t *out, int64_t v);
int phx_etf_encode_float(phx_buf_t *out, double v);
int phx_etf_encode_atom(phx_buf_t *out, const char *text, size_t len, unsigned flags);

/* ---- JSON (etf_json.c) ---- */

/* Appends `t` as compact JSON text: nil -> null, true/false -> booleans,
 * other atoms -> strings, integers -> exact decimal digits of any size,
 * floats -> the shortest text that reads back to the same double, in the
 * form Erlang's float_to_binary(F, [short]) prints (1.5, 42.0, 1.0e20:
 * scientific notation when strictly shorter, and always from 2^53 up),
 * binaries -> strings, tuples, lists and charlists -> arrays (a charlist is
 * an array of integers), maps -> objects in key order whose names are the
 * key's text (binary: its bytes; atom: its text; integer: its digits; any
 * other key: its JSON text).
 * Strings escape '"', '\\' and controls (\b \t \n \f \r, else \u00XX) per
 * RFC 8259. A binary that is not valid UTF-8 is written as Latin-1: each
 * byte becomes one character, bytes >= 0x80 as \u0080..\u00FF (JSON cannot
 * carry raw bytes, and Jason would refuse it). Map names that coincide (the
 * atom :a and the binary "a") are both written.
 * Borrows `t`. Returns 0 or PHX_ERR_NOMEM. */
int phx_term_to_json(const phx_term_t *t, phx_buf_t *out);

/* Appends a readable, Elixir-like text form of `t` for terms that may have
 * no JSON form: integers and floats as JSON writes them, atoms :name (nil,
 * true and false bare, others quoted when needed: :"a b"), binaries "text"
 * (<<1, 2>> when not printable UTF-8), lists [1, 2] (improper: [1 | 2]),
 * tuples {1, 2}, maps %{k => v}, pids #PID<node.id.serial>, ports
 * #Port<node.id>, references #Reference<node.w.w.w>, funs
 * #Function<index/arity in module>, exports &module.fun/arity,
 * bitstrings <<1, 5::size(3)>>. Borrows `t`. Returns 0, PHX_ERR_INVALID or
 * PHX_ERR_NOMEM (out may then hold a partial text). */
int phx_term_to_text(const phx_term_t *t, phx_buf_t *out);

/* The same from one encoded term (no version byte) at `p`: validates its
 * structure (nested at most `max_depth` containers) and returns the bytes it
 * takes (> 0), PHX_ERR_INVALID or PHX_ERR_LIMIT; appends its text to `out`
 * unless `out` is NULL (then it only measures). PHX_ERR_NOMEM. */
ssize_t phx_etf_text(const uint8_t *p, size_t len, uint32_t max_depth, phx_buf_t *out);

/* Appends the "user id" form of `t` used in topics (user:42) and socket ids
 * (users_socket:42): integer -> decimal digits, binary -> its bytes as they
 * are, atom -> its text (nil gives "nil"), anything else -> its JSON text.
 * Borrows `t`. Returns 0 or PHX_ERR_NOMEM. */
int phx_term_id_string(const phx_term_t *t, phx_buf_t *out);

/* Appends the decimal digits of an integer term (with '-' when negative). */
int phx_term_int_to_decimal(const phx_term_t *t, phx_buf_t *out);

/* Parses RFC 8259 JSON text into a term, as Phoenix's Jason would hand it
 * to term_to_binary: integer -> integer (exact at any size up to
 * max_bignum_bytes), other numbers -> float, string -> binary, null -> nil,
 * true/false -> atoms, array -> list (a charlist when every element is an
 * integer 0..255 and there are at most 65535), object -> map with binary
 * keys (a repeated name keeps its last value, as Jason does). Depth and node
 * counts follow `limits` (NULL = defaults). Borrows `json`. Returns 0 with
 * an owned tree in *out, PHX_ERR_INVALID for malformed JSON or a number out
 * of double range, PHX_ERR_LIMIT, or PHX_ERR_NOMEM. */
int phx_json_to_term(const char *json, size_t len, const phx_etf_limits_t *limits,
                     phx_term_t **out);

#endif /* PHX_ETF_H */
