/* phx_tokentool: a test helper linking libphx, driven by the Erlang oracle
 * (tests/erlang/oracle.escript).
 *   phx_tokentool token sign|verify ...   the `phxd token` subcommand
 *   phx_tokentool etf2json [--max-bignum-bytes N] HEX
 *       decodes term_to_binary bytes and prints the JSON rendering
 *   phx_tokentool etf2etf [--latin1-atoms] [--max-bignum-bytes N] HEX
 *       decodes and re-encodes; prints the hex of the encoding
 *   phx_tokentool json2etf [--latin1-atoms] JSON
 *       converts JSON to a term and prints the hex of its encoding
 *   phx_tokentool idstring [--max-bignum-bytes N] HEX
 *       prints the id string (user:<id>) of a decoded term
 *   phx_tokentool pps-decode [--self NODE] [--max-inflated N] HEX
 *       decodes a Phoenix.PubSub Redis adapter message (phoenix_pubsub.h):
 *       `deliver|ids_only<TAB>except|only<TAB>topic<TAB>event<TAB>json<TAB>
 *       PAYLOAD` (`binary<TAB>HEX` for binary payloads), `not_for_us REASON`
 *       or `skip REASON`
 *   phx_tokentool pps-encode [--latin1-atoms] [--binary] [--client]
 *       [--node NODE] TOPIC EVENT PAYLOAD
 *       prints the hex of the adapter message for the broadcast (PAYLOAD is
 *       JSON, or hex with --binary; "" for none), or `skip`
 *   phx_tokentool pps-channel NAME
 *       prints the adapter's Redis channel of the PubSub NAME
 * Errors print `error <PHX_ERR_NAME>` on stderr and exit 1; usage errors
 * exit 2. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etf.h"
#include "mem.h"
#include "phoenix_pubsub.h"
#include "phx.h"
#include "token_cli.h"

static int usage(void)
{
    fputs("usage: phx_tokentool token ...|etf2json|etf2etf|json2etf|idstring|pps-decode|"
          "pps-encode|pps-channel [options] ARG\n",
          stderr);
    return 2;
}

static int fail(int rv)
{
    fprintf(stderr, "error %s\n", phx_err_name(rv));
    return 1;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Returns an exact-size malloc'd copy of the bytes, or NULL. */
static uint8_t *unhex(const char *hex, size_t *len)
{
    size_t n = strlen(hex);
    if (n % 2 != 0)
        return NULL;
    uint8_t *b = malloc(n / 2 ? n / 2 : 1);
    if (b == NULL)
        return NULL;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            free(b);
            return NULL;
        }
        b[i] = (uint8_t)(hi << 4 | lo);
    }
    *len = n / 2;
    return b;
}

static void print_hex(const phx_buf_t *b)
{
    for (size_t i = 0; i < b->len; i++)
        printf("%02x", b->data[i]);
    putchar('\n');
}

/* The pps-* subcommands (argv[0] is the subcommand). */
static int pps_cli(int argc, char **argv)
{
    const char *self = "phxd@host", *args[3] = {NULL, NULL, NULL};
    phx_pps_limits_t lim = {0};
    unsigned flags = 0;
    bool binary = false, client = false;
    int nargs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--self") == 0 && i + 1 < argc)
            self = argv[++i];
        else if (strcmp(argv[i], "--node") == 0 && i + 1 < argc)
            self = argv[++i];
        else if (strcmp(argv[i], "--max-inflated") == 0 && i + 1 < argc)
            lim.max_inflated = (size_t)strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--latin1-atoms") == 0)
            flags |= PHX_ETF_LATIN1_ATOMS;
        else if (strcmp(argv[i], "--binary") == 0)
            binary = true;
        else if (strcmp(argv[i], "--client") == 0)
            client = true;
        else if (nargs < 3)
            args[nargs++] = argv[i];
        else
            return usage();
    }
    phx_buf_t out = {0};
    int rv;
    if (strcmp(argv[0], "pps-channel") == 0 && nargs == 1) {
        rv = phx_pps_channel(args[0], strlen(args[0]), &out);
        if (rv == 0)
            printf("%.*s\n", (int)out.len, (const char *)out.data);
    } else if (strcmp(argv[0], "pps-decode") == 0 && nargs == 1) {
        size_t len;
        uint8_t *b = unhex(args[0], &len);
        if (b == NULL)
            return usage();
        phx_pps_msg_t m = {0};
        rv = phx_pps_decode(b, len, self, &lim, &m);
        free(b);
        if (rv == PHX_PPS_NOT_FOR_US || rv == PHX_PPS_SKIP) {
            printf("%s %s\n", rv == PHX_PPS_SKIP ? "skip" : "not_for_us", m.reason);
            rv = 0;
        } else if (rv == PHX_PPS_DELIVER) {
            printf("%s\t%s\t%.*s\t%.*s\t%s\t", m.ids_only ? "ids_only" : "deliver",
                   m.mode == PHX_PPS_ONLY ? "only" : "except", (int)m.topic_len, m.topic,
                   (int)m.event_len, m.event, m.payload.is_binary ? "binary" : "json");
            if (m.payload.is_binary) {
                phx_buf_t p = {.data = (uint8_t *)m.payload.data, .len = m.payload.len};
                print_hex(&p);
            } else {
                printf("%.*s\n", (int)m.payload.len, (const char *)m.payload.data);
            }
        }
        phx_pps_msg_dispose(&m);
    } else if (strcmp(argv[0], "pps-encode") == 0 && nargs == 3) {
        phx_payload_t pl = {0};
        uint8_t *bytes = NULL;
        if (binary) {
            bytes = unhex(args[2], &pl.len);
            if (bytes == NULL)
                return usage();
            pl.data = bytes;
            pl.is_binary = true;
        } else {
            pl.data = (const uint8_t *)args[2];
            pl.len = strlen(args[2]);
        }
        phx_bcast_t bc = {.topic = args[0],
                          .topic_len = strlen(args[0]),
                          .event = args[1],
                          .event_len = strlen(args[1]),
                          .payload = pl.len > 0 || binary ? &pl : NULL,
                          .origin = {.flags = client ? PHX_ORIGIN_CLIENT : 0}};
        rv = phx_pps_encode(&bc, self, flags, NULL, &out);
        free(bytes);
        if (rv == PHX_PPS_SKIP) {
            puts("skip");
            rv = 0;
        } else if (rv == 0) {
            print_hex(&out);
        }
    } else {
        return usage();
    }
    phx_buf_dispose(&out);
    return rv == 0 ? 0 : fail(rv);
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "token") == 0)
        return phx_token_cli(argc - 1, argv + 1);
    if (strncmp(argv[1], "pps-", 4) == 0)
        return pps_cli(argc - 1, argv + 1);
    const char *cmd = argv[1];
    phx_etf_limits_t lim = {0};
    unsigned flags = 0;
    const char *arg = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--latin1-atoms") == 0)
            flags |= PHX_ETF_LATIN1_ATOMS;
        else if (strcmp(argv[i], "--max-bignum-bytes") == 0 && i + 1 < argc)
            lim.max_bignum_bytes = (uint32_t)strtoul(argv[++i], NULL, 10);
        else if (arg == NULL)
            arg = argv[i];
        else
            return usage();
    }
    if (arg == NULL)
        return usage();

    phx_term_t *t = NULL;
    int rv;
    if (strcmp(cmd, "json2etf") == 0) {
        rv = phx_json_to_term(arg, strlen(arg), &lim, &t);
    } else {
        size_t len;
        uint8_t *b = unhex(arg, &len);
        if (b == NULL)
            return usage();
        rv = phx_etf_decode(b, len, &lim, &t);
        free(b);
    }
    if (rv != 0)
        return fail(rv);
    phx_buf_t out = {0};
    if (strcmp(cmd, "etf2json") == 0) {
        rv = phx_term_to_json(t, &out);
        if (rv == 0)
            printf("%.*s\n", (int)out.len, (const char *)out.data);
    } else if (strcmp(cmd, "idstring") == 0) {
        rv = phx_term_id_string(t, &out);
        if (rv == 0) {
            fwrite(out.data, 1, out.len, stdout);
            putchar('\n');
        }
    } else if (strcmp(cmd, "etf2etf") == 0 || strcmp(cmd, "json2etf") == 0) {
        rv = phx_etf_encode(t, flags, &out);
        if (rv == 0)
            print_hex(&out);
    } else {
        phx_term_free(t);
        return usage();
    }
    phx_buf_dispose(&out);
    phx_term_free(t);
    return rv == 0 ? 0 : fail(rv);
}
