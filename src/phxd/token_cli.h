/* token_cli.h: the `phxd token sign|verify` subcommand: mint
 * and check Phoenix.Tokens from the shell with the same code the server
 * uses. main() dispatches to it when argv[1] is "token". */
#ifndef PHX_TOKEN_CLI_H
#define PHX_TOKEN_CLI_H

/* Runs the subcommand; argv[0] is "token". Borrows argv. Writes the token
 * (sign) or the data as one line of JSON (verify) to stdout. Returns the
 * process exit status: 0 success; 1 when verification fails (the first
 * word on stderr is `invalid`, `expired` or `missing`) or on a runtime
 * error; 2 for a usage error (one line on stderr). Reads the environment
 * (PHXD_SECRET_KEY_BASE, SECRET_KEY_BASE) and the wall clock. */
int phx_token_cli(int argc, char **argv);

#endif /* PHX_TOKEN_CLI_H */
