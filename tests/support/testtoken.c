/* testtoken.c: see testtoken.h. */
#include "testtoken.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "token.h"

int test_token_sign(char *out, size_t cap, const char *secret, phx_term_t *data, phx_max_age_t age)
{
    phx_token_config_t tc = {0};
    tc.secret_key_base = (const uint8_t *)secret;
    tc.secret_key_base_len = strlen(secret);
    tc.salt = (const uint8_t *)"user socket";
    tc.salt_len = 11;
    phx_token_t *t = NULL;
    phx_buf_t b = {0};
    int rv = phx_token_new(&t, &tc);
    if (rv == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        rv = phx_token_sign(t, data, (int64_t)ts.tv_sec * 1000, age, &b);
    }
    if (rv == 0 && (size_t)snprintf(out, cap, "%s", (char *)b.data) >= cap)
        rv = PHX_ERR_LIMIT;
    phx_buf_dispose(&b);
    phx_term_free(data);
    phx_token_free(t);
    return rv;
}

int test_token_user(char *out, size_t cap, const char *secret, int64_t user)
{
    phx_term_t *data;
    int rv = phx_term_new_int(&data, user);
    if (rv != 0)
        return rv;
    phx_max_age_t age = {PHX_MAX_AGE_TOKEN, 0, false};
    return test_token_sign(out, cap, secret, data, age);
}
