/* Unit tests for origin.c: check_origin with Phoenix's semantics. */
#include "origin.h"

#include "phx.h"
#include "runner.h"

static phx_origin_policy_t *policy(const char *spec, const char *url_host)
{
    char err[PHX_ERR_LEN];
    phx_origin_policy_t *p = phx_origin_parse(spec, url_host, err);
    if (p == NULL)
        printf("# %s\n", err);
    ASSERT(p != NULL);
    return p;
}

static void no_origin_is_allowed_by_every_policy(void)
{
    static const char *specs[] = {"true", "false", "conn", "https://a.com"};
    for (size_t i = 0; i < 4; i++) {
        phx_origin_policy_t *p = policy(specs[i], NULL);
        ASSERT(phx_origin_allowed(p, NULL, "x", false));
        phx_origin_free(p);
    }
}

static void null_origin_is_refused_unless_false(void)
{
    phx_origin_policy_t *p = policy("true", NULL);
    ASSERT(!phx_origin_allowed(p, "null", "null", false));
    ASSERT(!phx_origin_allowed(p, "", "x", false));
    phx_origin_free(p);
    p = policy("false", NULL);
    ASSERT(phx_origin_allowed(p, "null", "x", false));
    phx_origin_free(p);
}

static void true_compares_host_only(void)
{
    phx_origin_policy_t *p = policy("true", NULL);
    ASSERT(phx_origin_allowed(p, "http://localhost:4000", "localhost:4000", false));
    ASSERT(phx_origin_allowed(p, "https://localhost", "localhost:4000", false));
    ASSERT(phx_origin_allowed(p, "http://[::1]:4000", "[::1]:4000", false));
    ASSERT(!phx_origin_allowed(p, "http://evil.com", "localhost:4000", false));
    ASSERT(!phx_origin_allowed(p, "http://localhost.evil.com", "localhost", false));
    ASSERT(!phx_origin_allowed(p, "http://evil.com", NULL, false));
    phx_origin_free(p);
    p = policy("true", "app.example.com");
    ASSERT(phx_origin_allowed(p, "https://app.example.com", "127.0.0.1:4000", false));
    ASSERT(!phx_origin_allowed(p, "https://127.0.0.1:4000", "127.0.0.1:4000", false));
    phx_origin_free(p);
}

static void list_patterns_follow_phoenix(void)
{
    phx_origin_policy_t *p = policy("https://example.com, //another.com:888, //*.other.com", NULL);
    ASSERT(phx_origin_allowed(p, "https://example.com", "x", false));
    ASSERT(phx_origin_allowed(p, "https://example.com:443", "x", false));
    ASSERT(!phx_origin_allowed(p, "https://example.com:8443", "x", false)); /* default port pinned */
    ASSERT(!phx_origin_allowed(p, "http://example.com", "x", false));
    ASSERT(phx_origin_allowed(p, "http://another.com:888", "x", false));
    ASSERT(phx_origin_allowed(p, "wss://another.com:888", "x", false));
    ASSERT(!phx_origin_allowed(p, "http://another.com", "x", false));
    ASSERT(phx_origin_allowed(p, "http://other.com", "x", false));
    ASSERT(phx_origin_allowed(p, "https://a.b.other.com:9", "x", false));
    ASSERT(!phx_origin_allowed(p, "https://evilother.com", "x", false));
    ASSERT(!phx_origin_allowed(p, "https://example.com.evil.com", "x", false));
    ASSERT(!phx_origin_allowed(p, "https://evilexample.com", "x", false));
    ASSERT(!phx_origin_allowed(p, "https://example.com@evil.com", "x", false));
    ASSERT(!phx_origin_allowed(p, "https://EXAMPLE.com", "x", false)); /* hosts are exact */
    ASSERT(phx_origin_allowed(p, "HTTPS://example.com", "x", false)); /* schemes are not */
    phx_origin_free(p);
}

static void conn_compares_scheme_host_port(void)
{
    phx_origin_policy_t *p = policy("conn", NULL);
    ASSERT(phx_origin_allowed(p, "http://h:4000", "h:4000", false));
    ASSERT(!phx_origin_allowed(p, "http://h:4001", "h:4000", false));
    ASSERT(!phx_origin_allowed(p, "https://h:4000", "h:4000", false));
    ASSERT(phx_origin_allowed(p, "https://h", "h", true));
    ASSERT(phx_origin_allowed(p, "http://h", "h", false));
    ASSERT(!phx_origin_allowed(p, "ws://h", "h", false)); /* Plug's scheme is http */
    phx_origin_free(p);
}

static void bad_specs_are_refused(void)
{
    static const char *bad[] = {"bad", "https://", ",,", "//host:99999", "ftp//x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[PHX_ERR_LEN] = "";
        phx_origin_policy_t *p = phx_origin_parse(bad[i], NULL, err);
        ASSERT(p == NULL);
        ASSERT(err[0] != '\0');
    }
}

static void split_defaults_ports(void)
{
    char scheme[16], host[64];
    int port;
    ASSERT(phx_origin_split("https://a.com", scheme, sizeof(scheme), host, sizeof(host), &port));
    ASSERT_STR_EQ(scheme, "https");
    ASSERT_STR_EQ(host, "a.com");
    ASSERT_EQ(port, 443);
    ASSERT(phx_origin_split("ws://[::1]:81/x", scheme, sizeof(scheme), host, sizeof(host), &port));
    ASSERT_STR_EQ(host, "::1");
    ASSERT_EQ(port, 81);
    ASSERT(!phx_origin_split("null", scheme, sizeof(scheme), host, sizeof(host), &port));
    ASSERT(!phx_origin_split("http://", scheme, sizeof(scheme), host, sizeof(host), &port));
}

const phx_test_t phx_tests_origin[] = {
    {"no_origin_is_allowed_by_every_policy", no_origin_is_allowed_by_every_policy},
    {"null_origin_is_refused_unless_false", null_origin_is_refused_unless_false},
    {"true_compares_host_only", true_compares_host_only},
    {"list_patterns_follow_phoenix", list_patterns_follow_phoenix},
    {"conn_compares_scheme_host_port", conn_compares_scheme_host_port},
    {"bad_specs_are_refused", bad_specs_are_refused},
    {"split_defaults_ports", split_defaults_ports},
    {NULL, NULL},
};
