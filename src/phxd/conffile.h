/* conffile.h: phxd's configuration file format, parsed once at startup.
 *
 *   # a comment
 *   port = 4000
 *   secret-key-base = "..."          # quoted: "..." with \" and \\ escapes, or '...' literal
 *   channel = "room:*" join=any      # repeatable keys are the caller's business
 *
 * One `key = value` per line; keys are lower-case kebab-case names
 * ([a-z][a-z0-9-]*). Blank lines and lines whose first non-blank byte is '#'
 * are skipped; elsewhere '#' starts a comment when it follows a blank and
 * is outside quotes. Blanks around the key, the '=' and the value are
 * dropped; quotes are kept in the value (phx_conf_unquote or
 * phx_conf_next_word remove them). Lines end with LF or CRLF. The text must
 * be UTF-8 without control characters other than tab. Leaf module: knows no
 * option names. */
#ifndef PHX_CONFFILE_H
#define PHX_CONFFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mem.h"

#define PHX_CONF_MAX_BYTES (1024 * 1024) /* whole file */
#define PHX_CONF_MAX_LINE 4096           /* bytes per line, without the line end */
#define PHX_CONF_MAX_LINES 10000

typedef struct phx_conf_entry {
    char *key;     /* NUL-terminated, inside the conf's text */
    char *value;   /* NUL-terminated, trimmed, comment removed, quotes kept */
    uint32_t line; /* 1-based */
} phx_conf_entry_t;

/* A parsed file. Keys and values point into `text`; everything is owned by
 * the conf and released by phx_conf_dispose. */
typedef struct phx_conf {
    char *path;
    char *text;
    phx_conf_entry_t *entries;
    size_t count;
} phx_conf_t;

/* Parses `len` bytes (borrowed) read from `path` (copied; used in error
 * messages). On success fills `c` (dispose with phx_conf_dispose) and
 * returns 0. Otherwise returns PHX_ERR_INVALID (syntax), PHX_ERR_LIMIT (a
 * bound above) or PHX_ERR_NOMEM, writes one line "path:line: why" into
 * `err` (PHX_ERR_LEN bytes) and leaves `c` empty. */
int phx_conf_parse(phx_conf_t *c, const char *path, const uint8_t *data, size_t len, char *err);

/* Reads the file at `path` (at most PHX_CONF_MAX_BYTES) and parses it. Errors
 * as phx_conf_parse, plus a negative errno (UV-style) when the file cannot
 * be read. Blocks: startup only. */
int phx_conf_load(phx_conf_t *c, const char *path, char *err);

/* Frees everything `c` holds; `c` is empty afterwards. Idempotent. */
void phx_conf_dispose(phx_conf_t *c);

/* Removes the quotes of a value in place: text that does not start with a
 * quote is kept as it is; otherwise one quoted string must span the whole
 * value. Returns 0, or PHX_ERR_INVALID with the reason ("text after the
 * closing quote", ...) in *why (a static string). */
int phx_conf_unquote(char *value, const char **why);

/* Splits shell-like words: skips blanks at *p, then appends one word to
 * `out` (cleared first; NUL-terminated), where unquoted runs, "..." (with \"
 * and \\ escapes) and '...' (literal) parts concatenate until a blank or,
 * when `stop` is not NUL, that byte outside quotes. Advances *p past the
 * word. Returns 1 with a word, 0 at the end (or at `stop`, which is not
 * consumed), PHX_ERR_INVALID (reason in *why) or PHX_ERR_NOMEM. */
int phx_conf_next_word(const char **p, char stop, phx_buf_t *out, const char **why);

/* True when `s` must be quoted to read back as itself with
 * phx_conf_unquote or phx_conf_next_word: empty, or holding blanks, quotes,
 * '#', ';' or '\'. */
bool phx_conf_needs_quotes(const char *s);
/* Appends `s` (copied) to `out`, in double quotes with \" and \\ escapes
 * when phx_conf_needs_quotes says so. Returns 0 or PHX_ERR_NOMEM. */
int phx_conf_append_quoted(phx_buf_t *out, const char *s);

#endif /* PHX_CONFFILE_H */
