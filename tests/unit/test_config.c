/* Unit tests for config.c: the option table read from a config file, the
 * environment (through the injectable getenv) and flags, with precedence
 * default < file < environment < flag, sources for check-config, channel
 * rules, and one clear error line naming file:line, variable or flag. */
#include "config.h"

#include <string.h>
#include <unistd.h>

#include "log.h"
#include "phx.h"
#include "runner.h"

/* ---- a fake environment ---- */

static const char *const *fake_env; /* NAME, VALUE, ..., NULL */

static const char *get_env(const char *name)
{
    for (const char *const *p = fake_env; p && *p; p += 2)
        if (strcmp(p[0], name) == 0)
            return p[1];
    return NULL;
}

static const char *const no_env[] = {NULL};

/* A config file with `text`; the path is written into `path`. */
static void write_conf(char *path, const char *text)
{
    strcpy(path, "/tmp/phxd-config-XXXXXX");
    int fd = mkstemp(path);
    ASSERT(fd >= 0);
    ssize_t n = write(fd, text, strlen(text));
    ASSERT_EQ(n, (ssize_t)strlen(text));
    close(fd);
}

/* Parses argv (a NULL-terminated list after the program name) with the
 * fake environment `env`. */
static int parse(phxd_options_t *o, const char *const *env, const char **args, char *err)
{
    char *argv[32] = {"phxd"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    fake_env = env;
    phxd_options_init(o);
    bool help = false;
    return phxd_options_parse(o, argc, argv, 1, get_env, &help, err);
}

static void parse_ok(phxd_options_t *o, const char *const *env, const char **args)
{
    char err[PHX_ERR_LEN] = "";
    int rv = parse(o, env, args, err);
    if (rv != 0)
        printf("# %s\n", err);
    ASSERT_EQ(rv, 0);
}

static void expect_error(const char *const *env, const char **args, const char *want)
{
    phxd_options_t o;
    char err[PHX_ERR_LEN] = "";
    ASSERT_EQ(parse(&o, env, args, err), PHX_ERR_INVALID);
    ASSERT_STR_EQ(err, want);
    phxd_options_dispose(&o);
}

/* The check-config output of `o`. */
static char *printed(const phxd_options_t *o)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ASSERT(f != NULL);
    phxd_options_print(o, f);
    fclose(f);
    return text;
}

/* The line of check-config output for `name`, without its padding. */
static void printed_line(const char *text, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    for (const char *p = text; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > nlen + 2 && strncmp(p, name, nlen) == 0 && p[nlen] == ' ' && p[nlen + 1] == '=') {
            size_t w = 0;
            for (size_t i = 0; i < len && w + 1 < cap; i++) {
                /* Collapse runs of blanks to one. */
                if (p[i] == ' ' && w > 0 && out[w - 1] == ' ')
                    continue;
                out[w++] = p[i];
            }
            out[w] = '\0';
            return;
        }
        p = eol ? eol + 1 : NULL;
    }
    snprintf(out, cap, "(no line for %s)", name);
}

static void assert_printed(const phxd_options_t *o, const char *name, const char *want)
{
    char *text = printed(o);
    char line[512];
    printed_line(text, name, line, sizeof(line));
    ASSERT_STR_EQ(line, want);
    free(text);
}

/* ---- tests ---- */

static void defaults_without_anything(void)
{
    phxd_options_t o;
    parse_ok(&o, no_env, NULL);
    ASSERT_EQ(o.cfg.port, 4000);
    ASSERT_STR_EQ(o.cfg.host, "127.0.0.1");
    ASSERT(o.is_demo_secret);
    ASSERT(o.cfg.user_id_field == NULL);
    ASSERT(o.config_path == NULL);
    ASSERT_EQ(o.rules.count, 0);
    ASSERT(phxd_options_rules(&o) == phx_rules_default());
    assert_printed(&o, "port", "port = 4000 # default");
    assert_printed(&o, "secret-key-base", "secret-key-base = # default: (the public demo secret)");
    assert_printed(&o, "url-host", "url-host = # default: (the request's Host)");
    assert_printed(&o, "channel",
                   "channel = \"user:*\" join=user events=broadcast "
                   "event:ping=reply # default (the built-in policy)");
    phxd_options_dispose(&o);
}

static void precedence_default_file_env_flag(void)
{
    char path[64];
    write_conf(path, "# precedence\n"
                     "port = 4101\n"
                     "host = 10.0.0.1\n"
                     "salt = \"file salt\"\n"
                     "max-channels = 7\n");
    const char *env[] = {"PHXD_CONFIG", path,       "PHXD_HOST", "10.0.0.2",
                         "PHXD_SALT",   "env salt", NULL};
    const char *args[] = {"--salt", "flag salt", NULL};
    phxd_options_t o;
    parse_ok(&o, env, args);
    ASSERT_EQ(o.cfg.port, 4101);            /* file over default */
    ASSERT_STR_EQ(o.cfg.host, "10.0.0.2");  /* env over file */
    ASSERT_STR_EQ(o.cfg.salt, "flag salt"); /* flag over env */
    ASSERT_EQ(o.cfg.max_channels, 7);       /* file */
    ASSERT_EQ(o.cfg.max_json_depth, 64);    /* default */
    ASSERT_STR_EQ(o.config_path, path);
    ASSERT_EQ(o.sources[0].kind, PHXD_SRC_ENV); /* config came from PHXD_CONFIG */
    char want[160];
    snprintf(want, sizeof(want), "port = 4101 # %s:2", path);
    assert_printed(&o, "port", want);
    assert_printed(&o, "host", "host = 10.0.0.2 # env PHXD_HOST");
    assert_printed(&o, "salt", "salt = \"flag salt\" # flag --salt");
    assert_printed(&o, "max-json-depth", "max-json-depth = 64 # default");
    char *text = printed(&o);
    snprintf(want, sizeof(want), "# config file: %s (env PHXD_CONFIG)\n", path);
    ASSERT(strstr(text, want) != NULL);
    free(text);
    phxd_options_dispose(&o);

    /* --config wins over PHXD_CONFIG; the flag may come after others. */
    char path2[64];
    write_conf(path2, "port = 4102\n");
    const char *args2[] = {"--host", "::1", "--config", path2, NULL};
    parse_ok(&o, env, args2);
    ASSERT_EQ(o.cfg.port, 4102);
    ASSERT_STR_EQ(o.cfg.host, "::1");
    phxd_options_dispose(&o);
    unlink(path);
    unlink(path2);
}

static void phoenix_variables_and_their_order(void)
{
    const char *env[] = {"PORT", "5001", "SECRET_KEY_BASE", "s1", NULL};
    phxd_options_t o;
    parse_ok(&o, env, NULL);
    ASSERT_EQ(o.cfg.port, 5001);
    ASSERT_STR_EQ(o.cfg.secret_key_base, "s1");
    ASSERT(!o.is_demo_secret);
    assert_printed(&o, "port", "port = 5001 # env PORT");
    assert_printed(&o, "secret-key-base",
                   "secret-key-base = ******** # env SECRET_KEY_BASE "
                   "(masked)");
    phxd_options_dispose(&o);
    const char *env2[] = {
        "PORT", "5001", "PHXD_PORT", "5002", "PHXD_SECRET_KEY_BASE", "s2", "SECRET_KEY_BASE",
        "s1",   NULL};
    parse_ok(&o, env2, NULL);
    ASSERT_EQ(o.cfg.port, 5002);
    ASSERT_STR_EQ(o.cfg.secret_key_base, "s2");
    phxd_options_dispose(&o);
}

static void secrets_are_masked(void)
{
    char path[64];
    write_conf(path, "secret-key-base = \"file-secret-value\"\napi-key = file-api-key\n");
    const char *args[] = {"--config", path, NULL};
    phxd_options_t o;
    parse_ok(&o, no_env, args);
    ASSERT_STR_EQ(o.cfg.secret_key_base, "file-secret-value");
    ASSERT_STR_EQ(o.cfg.api_key, "file-api-key");
    char *text = printed(&o);
    ASSERT(strstr(text, "file-secret-value") == NULL);
    ASSERT(strstr(text, "file-api-key") == NULL);
    free(text);
    char want[160];
    snprintf(want, sizeof(want), "api-key = ******** # %s:2 (masked)", path);
    assert_printed(&o, "api-key", want);
    phxd_options_dispose(&o);
    unlink(path);
}

static void file_values_quotes_and_empty_values(void)
{
    char path[64];
    write_conf(path, "salt = 'a # b'   # comment\n"
                     "url-host =\n"
                     "max-age = infinity\n"
                     "max-message-bytes = 2m\n"
                     "longpoll = no\n"
                     "log-level = debug\n"
                     "user-id-field = user_id\n");
    const char *args[] = {"--config", path, NULL};
    phxd_options_t o;
    parse_ok(&o, no_env, args);
    ASSERT_STR_EQ(o.cfg.salt, "a # b");
    ASSERT(o.cfg.url_host == NULL); /* empty: the default */
    ASSERT_EQ(o.cfg.max_age.kind, PHX_MAX_AGE_INFINITY);
    ASSERT_EQ(o.cfg.max_message_bytes, 2 * 1024 * 1024);
    ASSERT(!o.cfg.longpoll);
    ASSERT_EQ(o.log_level, PHX_LOG_LEVEL_DEBUG);
    ASSERT_STR_EQ(o.cfg.user_id_field, "user_id");
    assert_printed(&o, "url-host", "url-host = # default: (the request's Host)");
    char want[160];
    snprintf(want, sizeof(want), "salt = \"a # b\" # %s:1", path);
    assert_printed(&o, "salt", want);
    phxd_options_dispose(&o);
    unlink(path);
}

static void file_errors_name_file_and_line(void)
{
    char path[64], want[PHX_ERR_LEN];
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"port = 4000\nprot = 1\n", "2: unknown key \"prot\" (see phxd --help)"},
        {"port = 1\n\nport = 2\n", "3: duplicate key port (first set on line 1)"},
        {"port = 70000\n", "1: port must be an integer from 0 to 65535, got \"70000\""},
        {"port = \"4000\" x\n", "1: text after the closing quote (quote the whole value)"},
        {"salt = \"open\n", "1: unterminated quote"},
        {"key-digest = md5\n", "1: key-digest must be sha256, sha384 or sha512, got \"md5\""},
        {"longpoll = maybe\n", "1: longpoll must be true or false, got \"maybe\""},
        {"log-level = loud\n", "1: log-level must be error, warn, info or debug, got \"loud\""},
        {"max-age = soon\n", "1: max-age must be seconds or 'infinity', got \"soon\""},
        {"config = other.conf\n", "1: config cannot be set inside a config file"},
        {"channel = room:* join=maybe\n", "1: channel rule (room:* join=maybe): join=maybe: join "
                                          "must be any, user, none or backend"},
        {"check-origin = ftp:/\n",
         "1: check-origin: \"ftp:/\" is not like https://host, //host or //*.host:port"},
        {"port 4000\n", "1: expected '=' after the key"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_conf(path, cases[i].text);
        const char *args[] = {"--config", path, NULL};
        snprintf(want, sizeof(want), "%s:%s", path, cases[i].why);
        expect_error(no_env, args, want);
        unlink(path);
    }
    const char *args[] = {"--config", "/nonexistent/phxd.conf", NULL};
    expect_error(no_env, args,
                 "cannot read config file /nonexistent/phxd.conf: No such file or directory");
}

static void env_and_flag_errors_name_their_source(void)
{
    const char *env[] = {"PHXD_MAX_CHANNELS", "0", NULL};
    expect_error(env, NULL,
                 "environment PHXD_MAX_CHANNELS: max-channels must be an integer from 1 to "
                 "65535, got \"0\"");
    const char *args[] = {"--port", "x", NULL};
    expect_error(no_env, args, "option --port: port must be an integer from 0 to 65535, got \"x\"");
    const char *args2[] = {"--bogus", "1", NULL};
    expect_error(no_env, args2, "unknown option --bogus (see --help)");
    const char *args3[] = {"--port", NULL};
    expect_error(no_env, args3, "option --port needs a value");
    const char *args4[] = {"stray", NULL};
    expect_error(no_env, args4, "unexpected argument \"stray\" (see --help)");
    const char *args5[] = {"--check-origin=//", NULL};
    expect_error(no_env, args5,
                 "option --check-origin: check-origin: \"//\" is not like "
                 "https://host, //host or //*.host:port");
    const char *env2[] = {"PHXD_CHANNEL", "a:* join=user; b:x join=user", NULL};
    expect_error(env2, NULL,
                 "environment PHXD_CHANNEL: channel rule (b:x join=user): join=user "
                 "needs a pattern ending in '*' or user-segment=N");
    /* Bad values in the environment count even when a flag overrides
     * them: the environment is read first. */
    const char *env3[] = {"PHXD_PORT", "x", NULL};
    const char *args6[] = {"--port", "1", NULL};
    expect_error(env3, args6,
                 "environment PHXD_PORT: port must be an integer from 0 to 65535, "
                 "got \"x\"");
}

static void help_stops_before_reading_anything(void)
{
    const char *env[] = {"PHXD_CONFIG", "/nonexistent", "PHXD_PORT", "x", NULL};
    char *argv[] = {"phxd", "--port", "1", "--help", "--bogus"};
    phxd_options_t o;
    phxd_options_init(&o);
    fake_env = env;
    bool help = false;
    char err[PHX_ERR_LEN];
    /* --bogus comes after --help: not looked at. */
    ASSERT_EQ(phxd_options_parse(&o, 5, argv, 1, get_env, &help, err), 0);
    ASSERT(help);
    phxd_options_dispose(&o);
}

static void rules_from_the_highest_source_replace_the_others(void)
{
    char path[64];
    write_conf(path, "channel = \"room:*\" join=any events=broadcast\n"
                     "port = 1\n"
                     "channel = 'private:*' join=user  # second\n");
    const char *args[] = {"--config", path, NULL};
    phxd_options_t o;
    parse_ok(&o, no_env, args);
    ASSERT_EQ(o.rules.count, 2);
    ASSERT_STR_EQ(o.rules.items[0].pattern, "room:*");
    ASSERT_STR_EQ(o.rules.items[1].pattern, "private:*");
    ASSERT_EQ(o.rule_sources[1].line, 3);
    ASSERT(phxd_options_rules(&o) == &o.rules);
    char want[200];
    snprintf(want, sizeof(want), "channel = \"room:*\" join=any events=broadcast # %s:1", path);
    assert_printed(&o, "channel", want);
    phxd_options_dispose(&o);

    const char *env[] = {"PHXD_CHANNEL", "a:* events=reply; b:* join=none", NULL};
    parse_ok(&o, env, args);
    ASSERT_EQ(o.rules.count, 2);
    ASSERT_STR_EQ(o.rules.items[0].pattern, "a:*");
    ASSERT_STR_EQ(o.rules.items[1].pattern, "b:*");
    ASSERT_EQ(o.rule_sources[0].kind, PHXD_SRC_ENV);
    phxd_options_dispose(&o);

    const char *args2[] = {"--config", path, "--channel", "x:* join=none", "--channel=y", NULL};
    parse_ok(&o, env, args2);
    ASSERT_EQ(o.rules.count, 2);
    ASSERT_STR_EQ(o.rules.items[0].pattern, "x:*");
    ASSERT_STR_EQ(o.rules.items[1].pattern, "y");
    assert_printed(&o, "channel", "channel = \"x:*\" join=none events=broadcast # flag --channel");
    phxd_options_dispose(&o);
    unlink(path);
}

static void values_from_the_file_outlive_parsing(void)
{
    char path[64];
    write_conf(path, "salt = from-file\ncheck-origin = \"//a.example.com, //b.example.com\"\n");
    const char *args[] = {"--config", path, NULL};
    phxd_options_t o;
    parse_ok(&o, no_env, args);
    unlink(path);
    ASSERT_STR_EQ(o.cfg.salt, "from-file");
    ASSERT_STR_EQ(o.cfg.check_origin, "//a.example.com, //b.example.com");
    phxd_options_dispose(&o);
}

static void printed_configuration_reads_back(void)
{
    const char *env[] = {"PHXD_SALT", "env salt", "PHXD_CHANNEL", "'we ird:*' join=user", NULL};
    const char *args[] = {"--max-age", "3600", "--url-host", "app.example.com", NULL};
    phxd_options_t a;
    parse_ok(&a, env, args);
    char *text = printed(&a);
    char path[64];
    write_conf(path, text);
    const char *args2[] = {"--config", path, NULL};
    phxd_options_t b;
    parse_ok(&b, no_env, args2);
    ASSERT_STR_EQ(b.cfg.salt, "env salt");
    ASSERT_EQ(b.cfg.max_age.kind, PHX_MAX_AGE_SECONDS);
    ASSERT(b.cfg.max_age.seconds == 3600);
    ASSERT_STR_EQ(b.cfg.url_host, "app.example.com");
    ASSERT(b.cfg.api_key == NULL);
    ASSERT(b.is_demo_secret);
    ASSERT_EQ(b.rules.count, 1);
    ASSERT_STR_EQ(b.rules.items[0].pattern, "we ird:*");
    ASSERT_EQ(b.rules.items[0].join, PHX_RULE_JOIN_USER);
    phxd_options_dispose(&a);
    phxd_options_dispose(&b);
    free(text);
    unlink(path);
}

static void help_and_markdown_list_every_option(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    phxd_options_help(f);
    fclose(f);
    ASSERT(strstr(text, "--config") != NULL);
    ASSERT(strstr(text, "--channel") != NULL);
    ASSERT(strstr(text, "--user-id-field") != NULL);
    ASSERT(strstr(text, "phxd check-config") != NULL);
    ASSERT(strstr(text, "phxd publish") != NULL);
    free(text);
    f = open_memstream(&text, &len);
    phxd_options_markdown(f);
    fclose(f);
    ASSERT(strstr(text, "| `--config` | `PHXD_CONFIG` |") != NULL);
    ASSERT(strstr(text, "| `--channel` | `PHXD_CHANNEL` |") != NULL);
    free(text);
}

static void loopback_hosts(void)
{
    const char *yes[] = {"127.0.0.1",       "127.1.2.3",        "127.255.255.255", "::1",
                         "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "localhost",       "LOCALHOST"};
    const char *no[] = {"0.0.0.0",          "::",  "10.0.0.1",        "128.0.0.1",
                        "126.255.255.255",  "::2", "::ffff:10.0.0.1", "example.com",
                        "127.0.0.1.nip.io", ""};
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
        ASSERT(phxd_host_is_loopback(yes[i]));
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        ASSERT(!phxd_host_is_loopback(no[i]));
}

static void secret_rules(void)
{
    char err[PHX_ERR_LEN];
    phxd_options_t o;
    /* The demo secret: loopback only, whatever --api-listen says. */
    parse_ok(&o, no_env, NULL);
    ASSERT(o.demo_page);
    ASSERT_EQ(phxd_options_check_secret(&o, err), 0);
    phxd_options_dispose(&o);
    const char *wild[] = {"--host", "0.0.0.0", NULL};
    parse_ok(&o, no_env, wild);
    ASSERT_EQ(phxd_options_check_secret(&o, err), PHX_ERR_INVALID);
    ASSERT(strstr(err, "host 0.0.0.0 is not loopback") == err);
    phxd_options_dispose(&o);
    const char *api[] = {"--api-listen", "0.0.0.0:4001", NULL};
    parse_ok(&o, no_env, api);
    ASSERT_EQ(phxd_options_check_secret(&o, err), 0);
    phxd_options_dispose(&o);
    /* 63 bytes: refused, naming the source; 64: accepted, demo page off. */
    char s63[64], s64[65];
    memset(s63, 'k', 63);
    s63[63] = '\0';
    memset(s64, 'k', 64);
    s64[64] = '\0';
    const char *env63[] = {"SECRET_KEY_BASE", s63, NULL};
    parse_ok(&o, env63, NULL);
    ASSERT_EQ(phxd_options_check_secret(&o, err), PHX_ERR_INVALID);
    ASSERT(strstr(err, "environment SECRET_KEY_BASE: secret-key-base must be at least 64 bytes") ==
           err);
    ASSERT(strstr(err, s63) == NULL);
    phxd_options_dispose(&o);
    const char *args64[] = {"--host", "0.0.0.0", "--secret-key-base", s64, NULL};
    parse_ok(&o, no_env, args64);
    ASSERT_EQ(phxd_options_check_secret(&o, err), 0);
    ASSERT(!o.demo_page);
    phxd_options_dispose(&o);
    const char *asked[] = {"--secret-key-base", s64, "--demo-page", NULL};
    parse_ok(&o, no_env, asked);
    ASSERT(o.demo_page);
    phxd_options_dispose(&o);
    const char *off[] = {"--demo-page", "false", NULL};
    parse_ok(&o, no_env, off);
    ASSERT(!o.demo_page);
    ASSERT(o.is_demo_secret);
    phxd_options_dispose(&o);
}

const phx_test_t phx_tests_config[] = {
    {"defaults_without_anything", defaults_without_anything},
    {"precedence_default_file_env_flag", precedence_default_file_env_flag},
    {"phoenix_variables_and_their_order", phoenix_variables_and_their_order},
    {"secrets_are_masked", secrets_are_masked},
    {"file_values_quotes_and_empty_values", file_values_quotes_and_empty_values},
    {"file_errors_name_file_and_line", file_errors_name_file_and_line},
    {"env_and_flag_errors_name_their_source", env_and_flag_errors_name_their_source},
    {"help_stops_before_reading_anything", help_stops_before_reading_anything},
    {"rules_from_the_highest_source_replace_the_others",
     rules_from_the_highest_source_replace_the_others},
    {"values_from_the_file_outlive_parsing", values_from_the_file_outlive_parsing},
    {"printed_configuration_reads_back", printed_configuration_reads_back},
    {"help_and_markdown_list_every_option", help_and_markdown_list_every_option},
    {"loopback_hosts", loopback_hosts},
    {"secret_rules", secret_rules},
    {NULL, NULL},
};
