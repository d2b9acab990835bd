/* conffile.c: the configuration file parser (see conffile.h). Pure bytes to
 * entries, plus the quoting rules shared with channel rules; only
 * phx_conf_load touches the file system, and only at startup. */
#include "conffile.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "phx.h"
#include "utf8.h"

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_key_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (!first && ((c >= '0' && c <= '9') || c == '-'));
}

void phx_conf_dispose(phx_conf_t *c)
{
    phx_free(c->path);
    phx_free(c->text);
    phx_free(c->entries);
    memset(c, 0, sizeof(*c));
}

static int add_entry(phx_conf_t *c, size_t *cap, char *key, char *value, uint32_t line)
{
    if (c->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        phx_conf_entry_t *e = phx_realloc(c->entries, ncap * sizeof(*e));
        if (e == NULL)
            return PHX_ERR_NOMEM;
        c->entries = e;
        *cap = ncap;
    }
    c->entries[c->count++] = (phx_conf_entry_t){key, value, line};
    return 0;
}

/* Finds the end of the value starting at `v` (inside a line ending at
 * `end`): the line end, or a '#' that follows a blank outside quotes.
 * Returns NULL when a quote is left open. */
static char *value_end(char *v, char *end)
{
    char quote = 0;
    for (char *p = v; p < end; p++) {
        if (quote == '"' && *p == '\\' && p + 1 < end) {
            p++;
        } else if (quote) {
            if (*p == quote)
                quote = 0;
        } else if (*p == '"' || *p == '\'') {
            quote = *p;
        } else if (*p == '#' && (p == v || is_blank(p[-1]))) {
            return p;
        }
    }
    return quote ? NULL : end;
}

/* Checks one line's bytes: UTF-8, no control characters but tab. */
static const char *line_bytes_error(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if ((b < 0x20 && b != '\t') || b == 0x7f)
            return "control character in line";
    }
    if (!phx_utf8_valid((const uint8_t *)s, n))
        return "line is not valid UTF-8";
    return NULL;
}

int phx_conf_parse(phx_conf_t *c, const char *path, const uint8_t *data, size_t len, char *err)
{
    memset(c, 0, sizeof(*c));
    if (len > PHX_CONF_MAX_BYTES) {
        snprintf(err, PHX_ERR_LEN, "%s: larger than %d bytes", path, PHX_CONF_MAX_BYTES);
        return PHX_ERR_LIMIT;
    }
    int rv = PHX_ERR_NOMEM;
    c->path = phx_strdup(path);
    c->text = phx_malloc(len + 1);
    if (c->path == NULL || c->text == NULL)
        goto fail_nomem;
    if (len)
        memcpy(c->text, data, len);
    c->text[len] = '\0';
    size_t cap = 0;
    uint32_t line = 0;
    char *p = c->text, *end = c->text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *eol = nl ? nl : end;
        char *next = nl ? nl + 1 : end;
        if (++line > PHX_CONF_MAX_LINES) {
            snprintf(err, PHX_ERR_LEN, "%s:%u: more than %d lines", path, line, PHX_CONF_MAX_LINES);
            rv = PHX_ERR_LIMIT;
            goto fail;
        }
        if (eol > p && eol[-1] == '\r')
            eol--;
        const char *why = NULL;
        if ((size_t)(eol - p) > PHX_CONF_MAX_LINE) {
            snprintf(err, PHX_ERR_LEN, "%s:%u: line longer than %d bytes", path, line,
                     PHX_CONF_MAX_LINE);
            rv = PHX_ERR_LIMIT;
            goto fail;
        }
        if ((why = line_bytes_error(p, (size_t)(eol - p))) != NULL)
            goto fail_syntax;
        while (p < eol && is_blank(*p))
            p++;
        if (p == eol || *p == '#') {
            p = next;
            continue;
        }
        char *key = p;
        while (p < eol && is_key_char(*p, p == key))
            p++;
        char *key_end = p;
        while (p < eol && is_blank(*p))
            p++;
        if (key_end == key || p == eol || *p != '=') {
            why = key_end == key || (p < eol && !is_blank(*key_end) && *key_end != '=')
                      ? "expected key = value (keys are lower-case, like max-age)"
                      : "expected '=' after the key";
            goto fail_syntax;
        }
        p++;
        while (p < eol && is_blank(*p))
            p++;
        char *value = p;
        char *vend = value_end(value, eol);
        if (vend == NULL) {
            why = "unterminated quote";
            goto fail_syntax;
        }
        while (vend > value && is_blank(vend[-1]))
            vend--;
        *key_end = '\0';
        *vend = '\0';
        if ((rv = add_entry(c, &cap, key, value, line)) != 0)
            goto fail_nomem;
        p = next;
        continue;
    fail_syntax:
        snprintf(err, PHX_ERR_LEN, "%s:%u: %s", path, line, why);
        rv = PHX_ERR_INVALID;
        goto fail;
    }
    return 0;
fail_nomem:
    snprintf(err, PHX_ERR_LEN, "%s: out of memory", path);
    rv = PHX_ERR_NOMEM;
fail:
    phx_conf_dispose(c);
    return rv;
}

int phx_conf_load(phx_conf_t *c, const char *path, char *err)
{
    memset(c, 0, sizeof(*c));
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        snprintf(err, PHX_ERR_LEN, "cannot read config file %s: %s", path, strerror(e));
        return -e;
    }
    /* One byte more than allowed, to tell "exactly the limit" from "over". */
    uint8_t *buf = phx_malloc(PHX_CONF_MAX_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, PHX_ERR_LEN, "%s: out of memory", path);
        return PHX_ERR_NOMEM;
    }
    size_t len = 0;
    while (len < PHX_CONF_MAX_BYTES + 1) {
        size_t n = fread(buf + len, 1, PHX_CONF_MAX_BYTES + 1 - len, f);
        if (n == 0)
            break;
        len += n;
    }
    int e = ferror(f) ? errno : 0;
    fclose(f);
    int rv;
    if (e != 0) {
        snprintf(err, PHX_ERR_LEN, "cannot read config file %s: %s", path, strerror(e));
        rv = -e;
    } else {
        rv = phx_conf_parse(c, path, buf, len, err);
    }
    phx_free(buf);
    return rv;
}

/* ---- quoting ---- */

int phx_conf_unquote(char *value, const char **why)
{
    char q = value[0];
    if (q != '"' && q != '\'')
        return 0;
    char *w = value;
    const char *r = value + 1;
    while (*r && *r != q) {
        if (q == '"' && *r == '\\') {
            r++;
            if (*r != '"' && *r != '\\') {
                *why = "unknown escape in quotes (only \\\" and \\\\)";
                return PHX_ERR_INVALID;
            }
        }
        *w++ = *r++;
    }
    if (*r != q) {
        *why = "unterminated quote";
        return PHX_ERR_INVALID;
    }
    if (r[1] != '\0') {
        *why = "text after the closing quote (quote the whole value)";
        return PHX_ERR_INVALID;
    }
    *w = '\0';
    return 0;
}

static bool is_word_blank(char c)
{
    return is_blank(c) || c == '\n' || c == '\r';
}

int phx_conf_next_word(const char **p, char stop, phx_buf_t *out, const char **why)
{
    const char *s = *p;
    out->len = 0;
    while (is_word_blank(*s))
        s++;
    if (*s == '\0' || (stop && *s == stop)) {
        *p = s;
        return 0;
    }
    while (*s && !is_word_blank(*s) && !(stop && *s == stop)) {
        if (*s == '"' || *s == '\'') {
            char q = *s++;
            while (*s && *s != q) {
                if (q == '"' && *s == '\\') {
                    s++;
                    if (*s != '"' && *s != '\\') {
                        *why = "unknown escape in quotes (only \\\" and \\\\)";
                        return PHX_ERR_INVALID;
                    }
                }
                if (phx_buf_append_byte(out, (uint8_t)*s++) != 0)
                    return PHX_ERR_NOMEM;
            }
            if (*s != q) {
                *why = "unterminated quote";
                return PHX_ERR_INVALID;
            }
            s++;
            continue;
        }
        if (phx_buf_append_byte(out, (uint8_t)*s++) != 0)
            return PHX_ERR_NOMEM;
    }
    /* NUL-terminate without counting it, so an empty quoted word ("") is a
     * valid empty string too. */
    if (phx_buf_reserve(out, 1) != 0)
        return PHX_ERR_NOMEM;
    out->data[out->len] = '\0';
    *p = s;
    return 1;
}

bool phx_conf_needs_quotes(const char *s)
{
    if (*s == '\0')
        return true;
    for (; *s; s++)
        if (is_word_blank(*s) || *s == '"' || *s == '\'' || *s == '#' || *s == ';' || *s == '\\')
            return true;
    return false;
}

int phx_conf_append_quoted(phx_buf_t *out, const char *s)
{
    if (!phx_conf_needs_quotes(s))
        return phx_buf_append_str(out, s);
    if (phx_buf_append_byte(out, '"') != 0)
        return PHX_ERR_NOMEM;
    for (; *s; s++) {
        if ((*s == '"' || *s == '\\') && phx_buf_append_byte(out, '\\') != 0)
            return PHX_ERR_NOMEM;
        if (phx_buf_append_byte(out, (uint8_t)*s) != 0)
            return PHX_ERR_NOMEM;
    }
    return phx_buf_append_byte(out, '"');
}
