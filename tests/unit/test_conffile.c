/* Unit tests for conffile.c: the config file format (comments, quoting,
 * line ends, bounds, every syntax error with file:line) and the word
 * splitting shared with channel rules. */
#include "conffile.h"

#include <string.h>
#include <unistd.h>

#include "phx.h"
#include "guard.h"
#include "runner.h"

/* ---- helpers ---- */

/* Parses `text` (from a guarded copy, without a terminating NUL). */
static int parse(phx_conf_t *c, const char *text, char *err)
{
    guard_t g;
    size_t len = strlen(text);
    const uint8_t *p = guard_copy(&g, text, len);
    int rv = phx_conf_parse(c, "test.conf", p, len, err);
    guard_free(&g);
    return rv;
}

static void parse_ok(phx_conf_t *c, const char *text)
{
    char err[PHX_ERR_LEN] = "";
    int rv = parse(c, text, err);
    if (rv != 0)
        printf("# %s\n", err);
    ASSERT_EQ(rv, 0);
}

static void expect_error(const char *text, int code, const char *want)
{
    phx_conf_t c;
    char err[PHX_ERR_LEN] = "";
    int rv = parse(&c, text, err);
    ASSERT_EQ(rv, code);
    ASSERT_STR_EQ(err, want);
    ASSERT_EQ(c.count, 0);
    ASSERT(c.text == NULL && c.entries == NULL);
}

/* ---- the file format ---- */

static void keys_values_comments_and_blank_lines(void)
{
    phx_conf_t c;
    parse_ok(&c, "# phxd\n"
                 "\n"
                 "   # indented comment\n"
                 "port = 4000\n"
                 "host=0.0.0.0   # trailing comment\n"
                 "\tsalt  =  user socket  \n"
                 "check-origin = https://a.com/#x  # '#' needs a blank before it\n"
                 "url-host =\n"
                 "max-age = # only a comment\n");
    ASSERT_EQ(c.count, 6);
    ASSERT_STR_EQ(c.entries[0].key, "port");
    ASSERT_STR_EQ(c.entries[0].value, "4000");
    ASSERT_EQ(c.entries[0].line, 4);
    ASSERT_STR_EQ(c.entries[1].key, "host");
    ASSERT_STR_EQ(c.entries[1].value, "0.0.0.0");
    ASSERT_EQ(c.entries[1].line, 5);
    ASSERT_STR_EQ(c.entries[2].key, "salt");
    ASSERT_STR_EQ(c.entries[2].value, "user socket");
    ASSERT_STR_EQ(c.entries[3].value, "https://a.com/#x");
    ASSERT_STR_EQ(c.entries[4].key, "url-host");
    ASSERT_STR_EQ(c.entries[4].value, "");
    ASSERT_STR_EQ(c.entries[5].value, "");
    ASSERT_EQ(c.entries[5].line, 9);
    ASSERT_STR_EQ(c.path, "test.conf");
    phx_conf_dispose(&c);
    phx_conf_dispose(&c); /* idempotent */
}

static void quotes_keep_hashes_and_blanks(void)
{
    phx_conf_t c;
    parse_ok(&c, "secret-key-base = \"a # b \\\" c\"  # comment\n"
                 "salt = 'it''s # x'\n"
                 "channel = \"room:*\" join=any # rule\n");
    ASSERT_EQ(c.count, 3);
    ASSERT_STR_EQ(c.entries[0].value, "\"a # b \\\" c\"");
    ASSERT_STR_EQ(c.entries[1].value, "'it''s # x'");
    ASSERT_STR_EQ(c.entries[2].value, "\"room:*\" join=any");
    const char *why = NULL;
    ASSERT_EQ(phx_conf_unquote(c.entries[0].value, &why), 0);
    ASSERT_STR_EQ(c.entries[0].value, "a # b \" c");
    /* Two quoted strings side by side are not one value. */
    ASSERT_EQ(phx_conf_unquote(c.entries[1].value, &why), PHX_ERR_INVALID);
    ASSERT_STR_EQ(why, "text after the closing quote (quote the whole value)");
    phx_conf_dispose(&c);
}

static void crlf_and_missing_final_newline(void)
{
    phx_conf_t c;
    parse_ok(&c, "port = 1\r\n# c\r\nhost = x\r\nlog-level = debug");
    ASSERT_EQ(c.count, 3);
    ASSERT_STR_EQ(c.entries[0].value, "1");
    ASSERT_STR_EQ(c.entries[1].value, "x");
    ASSERT_STR_EQ(c.entries[2].value, "debug");
    ASSERT_EQ(c.entries[2].line, 4);
    phx_conf_dispose(&c);
    parse_ok(&c, "");
    ASSERT_EQ(c.count, 0);
    phx_conf_dispose(&c);
}

static void syntax_errors_name_file_and_line(void)
{
    expect_error("port 4000\n", PHX_ERR_INVALID, "test.conf:1: expected '=' after the key");
    expect_error("\nport\n", PHX_ERR_INVALID, "test.conf:2: expected '=' after the key");
    expect_error("# x\nPort = 1\n", PHX_ERR_INVALID,
                 "test.conf:2: expected key = value (keys are lower-case, like max-age)");
    expect_error("= 1\n", PHX_ERR_INVALID,
                 "test.conf:1: expected key = value (keys are lower-case, like max-age)");
    expect_error("max_age = 1\n", PHX_ERR_INVALID,
                 "test.conf:1: expected key = value (keys are lower-case, like max-age)");
    expect_error("1port = 1\n", PHX_ERR_INVALID,
                 "test.conf:1: expected key = value (keys are lower-case, like max-age)");
    expect_error("a = 1\nb = \"open\n", PHX_ERR_INVALID, "test.conf:2: unterminated quote");
    expect_error("a = 'x\n", PHX_ERR_INVALID, "test.conf:1: unterminated quote");
    expect_error("a = \"x\\\"\n", PHX_ERR_INVALID, "test.conf:1: unterminated quote");
    expect_error("a = 1\n\n\nb = x\001y\n", PHX_ERR_INVALID,
                 "test.conf:4: control character in line");
    expect_error("a = x\ry\n", PHX_ERR_INVALID, "test.conf:1: control character in line");
    expect_error("# ok\n# \xc3\n", PHX_ERR_INVALID, "test.conf:2: line is not valid UTF-8");
    /* A NUL byte is a control character, not the end of the text. */
    phx_conf_t c;
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_conf_parse(&c, "f", (const uint8_t *)"a = 1\nb = x\0y\n", 13, err),
              PHX_ERR_INVALID);
    ASSERT_STR_EQ(err, "f:2: control character in line");
}

static void utf8_values_are_kept(void)
{
    phx_conf_t c;
    parse_ok(&c, "salt = caf\xc3\xa9 \xe2\x9c\x93\n");
    ASSERT_STR_EQ(c.entries[0].value, "caf\xc3\xa9 \xe2\x9c\x93");
    phx_conf_dispose(&c);
}

static void bounds_on_line_length_line_count_and_size(void)
{
    phx_buf_t b = {0};
    /* Exactly PHX_CONF_MAX_LINE bytes is fine; one more is not. */
    ASSERT_EQ(phx_buf_append_str(&b, "k = "), 0);
    while (b.len < PHX_CONF_MAX_LINE)
        ASSERT_EQ(phx_buf_append_byte(&b, 'x'), 0);
    ASSERT_EQ(phx_buf_append_str(&b, "\r\n"), 0);
    phx_conf_t c;
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_conf_parse(&c, "f", b.data, b.len, err), 0);
    ASSERT_EQ(strlen(c.entries[0].value), PHX_CONF_MAX_LINE - 4);
    phx_conf_dispose(&c);
    b.len -= 2;
    ASSERT_EQ(phx_buf_append_str(&b, "x\n"), 0);
    ASSERT_EQ(phx_conf_parse(&c, "f", b.data, b.len, err), PHX_ERR_LIMIT);
    ASSERT_STR_EQ(err, "f:1: line longer than 4096 bytes");

    b.len = 0;
    for (int i = 0; i < PHX_CONF_MAX_LINES; i++)
        ASSERT_EQ(phx_buf_append_str(&b, "#\n"), 0);
    ASSERT_EQ(phx_conf_parse(&c, "f", b.data, b.len, err), 0);
    phx_conf_dispose(&c);
    ASSERT_EQ(phx_buf_append_str(&b, "a = 1"), 0);
    ASSERT_EQ(phx_conf_parse(&c, "f", b.data, b.len, err), PHX_ERR_LIMIT);
    ASSERT_STR_EQ(err, "f:10001: more than 10000 lines");

    uint8_t *big = phx_calloc(1, PHX_CONF_MAX_BYTES + 1);
    ASSERT(big != NULL);
    ASSERT_EQ(phx_conf_parse(&c, "f", big, PHX_CONF_MAX_BYTES + 1, err), PHX_ERR_LIMIT);
    ASSERT_STR_EQ(err, "f: larger than 1048576 bytes");
    phx_free(big);
    phx_buf_dispose(&b);
}

static void load_reads_a_file_and_reports_errno(void)
{
    char path[] = "/tmp/phxd-conffile-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    const char text[] = "port = 4001\nchannel = room:* join=any\n";
    ASSERT_EQ(write(fd, text, sizeof(text) - 1), (ssize_t)(sizeof(text) - 1));
    close(fd);
    phx_conf_t c;
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_conf_load(&c, path, err), 0);
    ASSERT_EQ(c.count, 2);
    ASSERT_STR_EQ(c.entries[1].value, "room:* join=any");
    ASSERT_STR_EQ(c.path, path);
    phx_conf_dispose(&c);
    unlink(path);
    ASSERT(phx_conf_load(&c, path, err) < 0);
    char want[PHX_ERR_LEN];
    snprintf(want, sizeof(want), "cannot read config file %s: No such file or directory", path);
    ASSERT_STR_EQ(err, want);
}

static void load_refuses_a_file_over_the_limit(void)
{
    char path[] = "/tmp/phxd-conffile-XXXXXX";
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ASSERT_EQ(ftruncate(fd, PHX_CONF_MAX_BYTES + 10), 0);
    close(fd);
    phx_conf_t c;
    char err[PHX_ERR_LEN];
    ASSERT_EQ(phx_conf_load(&c, path, err), PHX_ERR_LIMIT);
    unlink(path);
}

/* ---- quoting ---- */

static void unquote_forms(void)
{
    static const struct {
        const char *in, *out;
    } ok[] = {
        {"plain text", "plain text"},
        {"\"\"", ""},
        {"''", ""},
        {"\"a\\\\b\"", "a\\b"},
        {"'a\\b'", "a\\b"},
        {"\"'\"", "'"},
        {"'\"'", "\""},
        {"x\"y\"", "x\"y\""}, /* not starting with a quote */
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", ok[i].in);
        const char *why = NULL;
        ASSERT_EQ(phx_conf_unquote(buf, &why), 0);
        ASSERT_STR_EQ(buf, ok[i].out);
    }
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"\"a", "unterminated quote"},
        {"'a", "unterminated quote"},
        {"\"a\\nb\"", "unknown escape in quotes (only \\\" and \\\\)"},
        {"\"a\" b", "text after the closing quote (quote the whole value)"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", bad[i].in);
        const char *why = NULL;
        ASSERT_EQ(phx_conf_unquote(buf, &why), PHX_ERR_INVALID);
        ASSERT_STR_EQ(why, bad[i].why);
    }
}

static void words_split_like_a_shell(void)
{
    const char *p = "  \"room:*\" join=any 'a b'\"c\"d \"\" x;y";
    phx_buf_t w = {0};
    const char *why = NULL;
    static const char *want[] = {"room:*", "join=any", "a bcd", "", "x"};
    for (size_t i = 0; i < 5; i++) {
        ASSERT_EQ(phx_conf_next_word(&p, ';', &w, &why), 1);
        ASSERT_STR_EQ((const char *)w.data, want[i]);
    }
    ASSERT_EQ(phx_conf_next_word(&p, ';', &w, &why), 0);
    ASSERT_EQ(*p, ';');
    p++;
    ASSERT_EQ(phx_conf_next_word(&p, ';', &w, &why), 1);
    ASSERT_STR_EQ((const char *)w.data, "y");
    ASSERT_EQ(phx_conf_next_word(&p, ';', &w, &why), 0);
    /* Without a stop byte ';' is an ordinary character. */
    p = "a;b \"c;d\"";
    ASSERT_EQ(phx_conf_next_word(&p, 0, &w, &why), 1);
    ASSERT_STR_EQ((const char *)w.data, "a;b");
    ASSERT_EQ(phx_conf_next_word(&p, 0, &w, &why), 1);
    ASSERT_STR_EQ((const char *)w.data, "c;d");
    p = "ok \"open";
    ASSERT_EQ(phx_conf_next_word(&p, 0, &w, &why), 1);
    ASSERT_EQ(phx_conf_next_word(&p, 0, &w, &why), PHX_ERR_INVALID);
    ASSERT_STR_EQ(why, "unterminated quote");
    p = "\"\\t\"";
    ASSERT_EQ(phx_conf_next_word(&p, 0, &w, &why), PHX_ERR_INVALID);
    phx_buf_dispose(&w);
}

static void quoting_round_trips(void)
{
    static const char *samples[] = {"plain",      "",        "two words",   "a#b",
                                    "semi;colon", "q\"uote", "back\\slash", "'single'",
                                    "tab\there",  "room:*"};
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        phx_buf_t q = {0}, w = {0};
        ASSERT_EQ(phx_conf_append_quoted(&q, samples[i]), 0);
        ASSERT_EQ(phx_buf_append_byte(&q, 0), 0);
        /* As a word... */
        const char *p = (const char *)q.data, *why = NULL;
        ASSERT_EQ(phx_conf_next_word(&p, ';', &w, &why), 1);
        ASSERT_STR_EQ((const char *)w.data, samples[i]);
        ASSERT_EQ(*p, '\0');
        /* ...and as a whole value. */
        ASSERT_EQ(phx_conf_unquote((char *)q.data, &why), 0);
        ASSERT_STR_EQ((const char *)q.data, samples[i]);
        phx_buf_dispose(&q);
        phx_buf_dispose(&w);
    }
    ASSERT(!phx_conf_needs_quotes("room:lobby"));
    ASSERT(phx_conf_needs_quotes("a b"));
}

static void allocation_failures_are_clean(void)
{
    const char *text = "a = 1\nb = 2\nc = 3\nd = 4\ne = 5\nf = 6\ng = 7\nh = 8\n"
                       "i = 9\nj = 10\nk = 11\nl = 12\nm = 13\nn = 14\no = 15\np = 16\nq = 17\n";
    phx_conf_t c;
    char err[PHX_ERR_LEN];
    phx_mem_reset_count();
    ASSERT_EQ(phx_conf_parse(&c, "f", (const uint8_t *)text, strlen(text), err), 0);
    unsigned long n = phx_mem_count();
    ASSERT(n >= 4);
    phx_conf_dispose(&c);
    for (unsigned long i = 1; i <= n; i++) {
        phx_mem_reset_count();
        phx_mem_fail_at(i);
        int rv = phx_conf_parse(&c, "f", (const uint8_t *)text, strlen(text), err);
        phx_mem_fail_at(0);
        ASSERT_EQ(rv, PHX_ERR_NOMEM);
        ASSERT_STR_EQ(err, "f: out of memory");
        ASSERT(c.text == NULL && c.entries == NULL && c.path == NULL);
    }
}

const phx_test_t phx_tests_conffile[] = {
    {"keys_values_comments_and_blank_lines", keys_values_comments_and_blank_lines},
    {"quotes_keep_hashes_and_blanks", quotes_keep_hashes_and_blanks},
    {"crlf_and_missing_final_newline", crlf_and_missing_final_newline},
    {"syntax_errors_name_file_and_line", syntax_errors_name_file_and_line},
    {"utf8_values_are_kept", utf8_values_are_kept},
    {"bounds_on_line_length_line_count_and_size", bounds_on_line_length_line_count_and_size},
    {"load_reads_a_file_and_reports_errno", load_reads_a_file_and_reports_errno},
    {"load_refuses_a_file_over_the_limit", load_refuses_a_file_over_the_limit},
    {"unquote_forms", unquote_forms},
    {"words_split_like_a_shell", words_split_like_a_shell},
    {"quoting_round_trips", quoting_round_trips},
    {"allocation_failures_are_clean", allocation_failures_are_clean},
    {NULL, NULL},
};
