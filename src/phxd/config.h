/* config.h: phxd's option table. One table (name, flag, environment
 * variables, type, default, bounds, help) drives command-line, environment
 * and config-file parsing, validation, --help, `phxd check-config` and the
 * README's option list. Precedence: default < config file < environment <
 * flag. */
#ifndef PHX_CONFIG_H
#define PHX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "conffile.h"
#include "phx.h"
#include "rules.h"

#define PHXD_MAX_OPTIONS 96

/* Where an effective value came from (`phxd check-config` shows it). */
typedef enum {
    PHXD_SRC_DEFAULT = 0,
    PHXD_SRC_FILE,
    PHXD_SRC_ENV,
    PHXD_SRC_FLAG,
} phxd_src_kind_t;

typedef struct phxd_source {
    phxd_src_kind_t kind;
    uint32_t line;    /* PHXD_SRC_FILE: line in the config file */
    const char *name; /* PHXD_SRC_ENV: the variable; PHXD_SRC_FLAG: the option (static) */
} phxd_source_t;

/* Everything phxd is configured with: the library's phx_config_t plus the
 * daemon's own settings. Strings point into argv, the environment or
 * `conf`; phxd_options_dispose frees what the options own. */
typedef struct phxd_options {
    phx_config_t cfg;
    int log_level;
    bool is_demo_secret;         /* no secret was given: the embedded demo secret */
    bool demo_page;              /* --demo-page: serve / and /phoenix.js */
    int drain_batch;             /* sockets closed per drain step on SIGTERM */
    int drain_interval_ms;       /* between drain steps */
    int drain_timeout_ms;        /* everything is closed by then */
    const char *phoenix_js;      /* --phoenix-js: NULL = the path compiled in (demo.c) */
    const char *config_path;     /* --config / PHXD_CONFIG, or NULL */
    phx_conf_t conf;             /* the config file as read */
    phx_rules_t rules;           /* channel rules; none: the built-in policy */
    phxd_source_t *rule_sources; /* one per rule (owned) */
    phxd_source_t sources[PHXD_MAX_OPTIONS]; /* by table row */
} phxd_options_t;

/* The embedded demo secret (64 bytes, public: never use it in production). */
extern const char phxd_demo_secret[];

/* Fills `o` with the defaults. */
void phxd_options_init(phxd_options_t *o);
/* Reads the configuration: the flags in argv[first..argc) are scanned for
 * --help and --config, the config file (--config, else PHXD_CONFIG) is
 * read and applied, then the environment (`get_env` is injected for
 * tests: NULL means the real environment), then the flags. Channel rules
 * come from the highest of these sources that gives any. Borrows argv and
 * the environment strings for the life of `o`. Writes one line into `err`
 * and returns PHX_ERR_INVALID (bad option, value, file or rule) or
 * PHX_ERR_NOMEM; `o` must be disposed either way. Sets *help when --help was
 * given (nothing else is read then). */
int phxd_options_parse(phxd_options_t *o, int argc, char **argv, int first,
                       const char *(*get_env)(const char *), bool *help, char *err);
/* The rules a start (and check-config) applies to the secret after
 * parsing: the demo secret only on a loopback --host (127.0.0.0/8, ::1 or
 * localhost; --api-listen does not matter: the API takes no user token),
 * and a given secret_key_base of at least 64 bytes, as Phoenix (Plug)
 * requires. Returns 0, or PHX_ERR_INVALID with one line in `err` naming
 * where the value came from. */
int phxd_options_check_secret(const phxd_options_t *o, char *err);
/* True when `host` is a loopback address: 127.0.0.0/8, ::1 (also as
 * ::ffff:127.x.y.z) or "localhost". */
bool phxd_host_is_loopback(const char *host);
/* Frees the config file text and the rules. `o` is unusable afterwards. */
void phxd_options_dispose(phxd_options_t *o);
/* The rules to install: the configured ones, or phx_rules_default().
 * Valid until phxd_options_dispose. */
const phx_rules_t *phxd_options_rules(const phxd_options_t *o);
/* Writes every effective option as `name = value  # source` (default,
 * FILE:LINE, env VAR or flag --name), then the channel rules; secrets are
 * masked. The output reads back as a config file, secrets aside. */
void phxd_options_print(const phxd_options_t *o, FILE *out);
/* Writes --help text (generated from the table). */
void phxd_options_help(FILE *out);
/* Writes the option list as a Markdown table (for the README). */
void phxd_options_markdown(FILE *out);

/* One row of the option table as documented (man.c writes phxd(1) from
 * them): the flag without "--", its environment variables (env2 may be
 * NULL), the default as --help shows it, the help text. */
typedef struct phxd_option_doc {
    const char *name, *env, *env2, *def, *help;
} phxd_option_doc_t;
/* Fills `doc` with row `i` of the table; false past its end. */
bool phxd_option_doc(size_t i, phxd_option_doc_t *doc);

#endif /* PHX_CONFIG_H */
