/* testtoken.h: Phoenix.Tokens for tests and fuzz harnesses, signed with
 * libphx's token module under the "user socket" salt. */
#ifndef PHX_TEST_TOKEN_H
#define PHX_TEST_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "etf.h"
#include "phx.h"

/* Signs `data` (taken, freed on every path) with `secret`, signed now and
 * with `age`. Writes the NUL-terminated token into `out` (`cap` bytes).
 * Returns 0 or a negative PHX_ERR_* code. */
int test_token_sign(char *out, size_t cap, const char *secret, phx_term_t *data, phx_max_age_t age);
/* A token for the integer user id `user` with the default max age. */
int test_token_user(char *out, size_t cap, const char *secret, int64_t user);

#endif
