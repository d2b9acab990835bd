/* config.h: phxd's option table. One table (name, flag, environment
 * variables, type, default, bounds, help) drives command-line and
 * environment parsing, validation, --help and the README's option list.
 * Precedence: default < environment < flag. */
#ifndef PHX_CONFIG_H
#define PHX_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "phx.h"

/* Everything phxd is configured with: the library's phx_config_t plus the
 * daemon's own settings. Strings point into argv or the environment. */
typedef struct phxd_options {
    phx_config_t cfg;
    int log_level;
    bool is_demo_secret; /* no secret was given: the embedded demo secret */
    int drain_batch;       /* sockets closed per drain step on SIGTERM */
    int drain_interval_ms; /* between drain steps */
    int drain_timeout_ms;  /* everything is closed by then */
} phxd_options_t;

/* The embedded demo secret (64 bytes, public: never use it in production). */
extern const char phxd_demo_secret[];

/* Fills `o` with the defaults. */
void phxd_options_init(phxd_options_t *o);
/* Applies environment variables (`getenv` is injected for tests: NULL means
 * the real environment), then flags from argv[first..argc). Writes one line
 * into `err` and returns PHX_ERR_INVALID on a bad option or value. Sets
 * *help when --help was given. */
int phxd_options_parse(phxd_options_t *o, int argc, char **argv, int first,
                       const char *(*get_env)(const char *), bool *help, char *err);
/* Writes --help text (generated from the table). */
void phxd_options_help(FILE *out);
/* Writes the option list as a Markdown table (for the README). */
void phxd_options_markdown(FILE *out);

#endif /* PHX_CONFIG_H */
