/* Fuzz target: the config file parser and the channel rule parser. The
 * input is parsed as a config file; every value is unquoted and parsed as
 * channel rules, and so is the whole input as one rule text. Invariants: no
 * crash or leak; entries have kebab-case keys, increasing line numbers and
 * no control characters; a rule formats to text that parses back to one
 * rule with the same pattern, join and events. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conffile.h"
#include "mem.h"
#include "phx.h"
#include "rules.h"
#include "fuzz.h"

static void check_rules(const char *text)
{
    phx_rules_t rules = {0};
    char err[PHX_ERR_LEN];
    if (phx_rules_parse(&rules, text, err) != 0) {
        if (rules.count != 0 || strlen(err) >= PHX_ERR_LEN)
            abort();
        return;
    }
    for (size_t i = 0; i < rules.count; i++) {
        const phx_rule_t *r = &rules.items[i];
        phx_buf_t out = {0};
        if (phx_rule_format(r, &out) != 0 || phx_buf_append_byte(&out, 0) != 0)
            abort();
        phx_rules_t again = {0};
        if (phx_rules_parse(&again, (const char *)out.data, err) != 0 || again.count != 1 ||
            strcmp(again.items[0].pattern, r->pattern) != 0 || again.items[0].join != r->join ||
            again.items[0].events != r->events || again.items[0].noverrides != r->noverrides)
            abort();
        /* Matching a rule's own pattern (minus '*') always succeeds. */
        if (!phx_rule_matches(r, r->pattern, r->prefix_len))
            abort();
        const char *part;
        size_t len;
        if (phx_rule_user_part(r, r->pattern, &part, &len) &&
            (part < r->pattern || part + len > r->pattern + strlen(r->pattern)))
            abort();
        phx_rules_dispose(&again);
        phx_buf_dispose(&out);
    }
    phx_rules_dispose(&rules);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    phx_conf_t c;
    char err[PHX_ERR_LEN];
    if (phx_conf_parse(&c, "fuzz.conf", data, size, err) == 0) {
        uint32_t last = 0;
        for (size_t i = 0; i < c.count; i++) {
            const phx_conf_entry_t *e = &c.entries[i];
            if (e->line <= last || e->key[0] < 'a' || e->key[0] > 'z')
                abort();
            last = e->line;
            for (const char *k = e->key; *k; k++)
                if (!((*k >= 'a' && *k <= 'z') || (*k >= '0' && *k <= '9') || *k == '-'))
                    abort();
            for (const char *v = e->value; *v; v++)
                if ((unsigned char)*v < 0x20 && *v != '\t')
                    abort();
            check_rules(e->value);
            char *copy = phx_strdup(e->value);
            const char *why;
            if (copy == NULL)
                abort();
            if (phx_conf_unquote(copy, &why) == 0 && strlen(copy) > strlen(e->value))
                abort();
            phx_free(copy);
        }
        phx_conf_dispose(&c);
    } else if (c.entries != NULL || c.text != NULL || strlen(err) >= PHX_ERR_LEN) {
        abort();
    }
    /* The raw bytes as rule text (up to the first NUL). */
    char *text = phx_strndup((const char *)data, size);
    if (text == NULL)
        abort();
    check_rules(text);
    phx_free(text);
    return 0;
}
