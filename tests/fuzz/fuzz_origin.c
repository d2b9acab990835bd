/* Fuzz target: check_origin. Input "spec\norigin\nhost": the policy is
 * parsed from the first line, then the origin and host lines are checked.
 * Invariants: no crash or leak; "false" allows everything; a missing
 * Origin is always allowed; the answer does not depend on is_tls for
 * policies other than conn. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "origin.h"
#include "phx.h"
#include "fuzz.h"

static char *line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = malloc(n + 1);
    memcpy(s, *p, n);
    s[n] = '\0';
    *p = nl ? nl + 1 : end;
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *spec = line(&p, end);
    char *origin = line(&p, end);
    char *host = line(&p, end);
    char err[PHX_ERR_LEN];
    phx_origin_policy_t *pol = phx_origin_parse(spec, NULL, err);
    if (pol) {
        bool a = phx_origin_allowed(pol, origin, host, false);
        bool b = phx_origin_allowed(pol, origin, host, true);
        if (strcmp(spec, "conn") != 0 && strcmp(spec, ":conn") != 0 && a != b)
            abort();
        if (strcmp(spec, "false") == 0 && !a)
            abort();
        if (!phx_origin_allowed(pol, NULL, host, false))
            abort();
        phx_origin_free(pol);
    }
    char scheme[16], h[64];
    int port;
    phx_origin_split(origin, scheme, sizeof(scheme), h, sizeof(h), &port);
    free(spec);
    free(origin);
    free(host);
    return 0;
}
