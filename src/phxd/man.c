/* man.c: phxd(1), written by `phxd options-man` (see man.h). The option
 * list comes from the option table (config.c), so the page cannot drift
 * from --help and the README's table; the rest is the text below. */
#include "man.h"

#include <string.h>

#include "config.h"
#include "demo.h"
#include "phx.h"

/* Writes `s` as roff text: backslashes escaped, hyphens as \- (the page is
 * about flags that must be typed as ASCII hyphens), a leading '.' or '\''
 * kept from reading as a request. */
static void roff_text(FILE *out, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", out);
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\e", out);
        else if (*s == '-')
            fputs("\\-", out);
        else
            fputc(*s, out);
    }
}

static const char page_head[] =
    ".SH NAME\n"
    "phxd \\- a Phoenix Channels server for the phoenix.js client\n"
    ".SH SYNOPSIS\n"
    ".B phxd\n"
    "[\\fIoptions\\fR]\n"
    ".br\n"
    ".B phxd check\\-config\n"
    "[\\fIoptions\\fR]\n"
    ".br\n"
    ".B phxd publish\n"
    "[\\fB\\-\\-url\\fR \\fIURL\\fR] [\\fB\\-\\-api\\-key\\fR \\fIKEY\\fR] "
    "[\\fB\\-\\-timeout\\-ms\\fR \\fIN\\fR] \\fITOPIC EVENT\\fR [\\fIJSON\\fR]\n"
    ".br\n"
    ".B phxd publish\n"
    "[\\fB\\-\\-url\\fR \\fIURL\\fR] [\\fB\\-\\-api\\-key\\fR \\fIKEY\\fR] "
    "\\fB\\-\\-disconnect\\fR \\fISOCKET_ID\\fR\n"
    ".br\n"
    ".B phxd token sign\n"
    "\\fB\\-\\-secret\\-key\\-base\\fR \\fIK\\fR [\\fB\\-\\-salt\\fR \\fIS\\fR] "
    "[\\fB\\-\\-max\\-age\\fR \\fISEC\\fR] \\fIJSON_DATA\\fR\n"
    ".br\n"
    ".B phxd token verify\n"
    "\\fB\\-\\-secret\\-key\\-base\\fR \\fIK\\fR [\\fB\\-\\-salt\\fR \\fIS\\fR] "
    "[\\fB\\-\\-max\\-age\\fR \\fISEC\\fR] \\fITOKEN\\fR\n"
    ".br\n"
    ".B phxd options\\-markdown\n"
    ".br\n"
    ".B phxd options\\-man\n"
    ".br\n"
    ".B phxd \\-\\-version\n"
    ".br\n"
    ".B phxd \\-\\-help\n"
    ".SH DESCRIPTION\n"
    "\\fBphxd\\fR serves Phoenix Channels to the official phoenix.js client over WebSocket "
    "(\\fI/socket/websocket\\fR, V1 and V2 JSON and the V2 binary serializer) and LongPoll "
    "(\\fI/socket/longpoll\\fR), as a Phoenix endpoint would. A socket connects with a "
    "Phoenix.Token signed with the application's \\fIsecret_key_base\\fR; channel rules decide "
    "who joins which topic and what client events do; the application's backend broadcasts "
    "through an HTTP API (\\fBphxd publish\\fR). It also serves \\fI/healthz\\fR, Prometheus "
    "\\fI/metrics\\fR and, when asked, a demo chat page at \\fI/\\fR.\n"
    ".PP\n"
    "Without a secret phxd uses a public demo secret, and only on a loopback address. "
    "stdout carries the banner (the address, the port bound, the demo page's URL); logs go to "
    "stderr, one line per event.\n"
    ".SH COMMANDS\n"
    ".TP\n"
    ".B phxd \\fR[\\fIoptions\\fR]\n"
    "Runs the server until SIGTERM or SIGINT.\n"
    ".TP\n"
    ".B check\\-config \\fR[\\fIoptions\\fR]\n"
    "Reads the options as a start would, builds the server without listening, and prints the "
    "effective configuration as a config file (each line with its source: default, FILE:LINE, "
    "env VAR or flag; secrets masked). Exit 0, or one error line and exit 2.\n"
    ".TP\n"
    ".B publish\n"
    "Broadcasts \\fIEVENT\\fR with the \\fIJSON\\fR object payload (default {}) to \\fITOPIC\\fR "
    "through POST /api/broadcast, or with \\fB\\-\\-disconnect\\fR closes every socket with that "
    "id through POST /api/disconnect, and prints the answer. \\fB\\-\\-url\\fR defaults to "
    "$PHXD_URL, then http://127.0.0.1:4000; \\fB\\-\\-api\\-key\\fR to $PHXD_API_KEY. "
    "\\fBphxd publish \\-\\-help\\fR lists its options.\n"
    ".TP\n"
    ".B token sign\\fR, \\fBtoken verify\n"
    "Mints a Phoenix.Token for \\fIJSON_DATA\\fR, or verifies \\fITOKEN\\fR and prints its data "
    "as JSON (or \\fBinvalid\\fR, \\fBexpired\\fR, \\fBmissing\\fR on stderr, exit 1). The secret "
    "defaults to $PHXD_SECRET_KEY_BASE, then $SECRET_KEY_BASE; the salt to \"user socket\". "
    "\\fBphxd token \\-\\-help\\fR lists the key options.\n"
    ".TP\n"
    ".B options\\-markdown\\fR, \\fBoptions\\-man\n"
    "Print the option table as Markdown (the README's), or this page as roff.\n"
    ".SH OPTIONS\n"
    "Every option is a flag (\\fB\\-\\-name\\fR \\fIVALUE\\fR or \\fB\\-\\-name=\\fR\\fIVALUE\\fR; "
    "a boolean flag alone means true), an environment variable, or a line "
    "\\fIname\\fR = \\fIvalue\\fR of the config file. Precedence: flag, then environment, then "
    "config file, then default. Sizes take a k, m or g suffix (KiB, MiB, GiB).\n";

static const char page_tail[] =
    ".SH CONFIGURATION FILE\n"
    "\\fB\\-\\-config\\fR \\fIFILE\\fR (or $PHXD_CONFIG) is read once at startup: one option "
    "per line, \\fIname\\fR = \\fIvalue\\fR with the names above (port = 4000); # starts a "
    "comment; values may be quoted (\"...\" with \\e\" and \\e\\e escapes, or '...'); "
    "\\fBchannel\\fR may repeat, every other name at most once. \\fBphxd check\\-config\\fR "
    "prints a file in this form.\n"
    ".SH CHANNEL RULES\n"
    "\\fB\\-\\-channel\\fR \\(aq\\fIPATTERN\\fR [join=any|user|none] "
    "[events=broadcast|broadcast_from|reply|refuse] [event:\\fINAME\\fR=\\fIACTION\\fR] "
    "[max\\-payload\\-bytes=\\fIN\\fR] [max\\-subscribers=\\fIN\\fR] "
    "[user\\-segment=\\fIN\\fR]\\(aq, repeatable; the first matching rule wins. \\fIPATTERN\\fR is "
    "an exact topic or a prefix ending in *. Any rule replaces the built-in policy "
    "(user:* joined by its own user only, room:* by anyone); other topics are refused. "
    "\\fBphxd \\-\\-help\\fR describes each field.\n"
    ".SH SIGNALS\n"
    ".TP\n"
    ".B SIGTERM\n"
    "Graceful drain: /healthz answers 503, new sockets are refused with 503, open sockets are "
    "closed with code 1012 (service restart) in batches of \\fB\\-\\-drain\\-batch\\fR every "
    "\\fB\\-\\-drain\\-interval\\-ms\\fR; whatever is still open after "
    "\\fB\\-\\-drain\\-timeout\\-ms\\fR is closed; then phxd exits 0. A service manager's stop "
    "timeout should be longer than the drain timeout.\n"
    ".TP\n"
    ".B SIGINT\n"
    "The same in one step, with code 1001 (going away).\n"
    ".TP\n"
    ".B SIGHUP\n"
    "Reloads what phxd reloads without dropping sockets (the TLS certificate and key: new "
    "connections get the new ones, open ones keep theirs; a file that fails to load leaves the "
    "previous one in use and logs a warning). It never stops phxd.\n"
    ".PP\n"
    "A second SIGTERM or SIGINT during a drain exits at once with status 1. SIGPIPE is "
    "ignored.\n"
    ".SH EXIT STATUS\n"
    ".TP\n"
    ".B 0\n"
    "Stopped after a drain; \\-\\-help, \\-\\-version; check\\-config found the configuration "
    "valid; publish got a 2xx answer; token verify found the token valid.\n"
    ".TP\n"
    ".B 1\n"
    "A runtime failure (cannot listen, out of memory, a second signal); publish got another "
    "answer or none; token verify: invalid, expired or missing.\n"
    ".TP\n"
    ".B 2\n"
    "A usage or configuration error, reported in one line on stderr: an unknown option or bad "
    "value, an unreadable config file, a bad channel rule, a refused secret (too short, or the "
    "demo secret on a non-loopback address), unusable TLS files.\n"
    ".SH ENVIRONMENT\n"
    "Each option's variables are listed with it above; SECRET_KEY_BASE and PORT are read as "
    "Phoenix apps set them. \\fBphxd publish\\fR reads PHXD_URL and PHXD_API_KEY.\n"
    ".SH FILES\n"
    ".TP\n";

static const char page_files[] =
    "phoenix.js as served at /phoenix.js by the demo page (\\fB\\-\\-demo\\-page\\fR), when "
    "\\fB\\-\\-phoenix\\-js\\fR is not given. phxd looks first where an install puts it "
    "relative to its executable (an install whose prefix was moved or staged), then next to the "
    "executable (a build directory), then at this path.\n"
    ".TP\n"
    ".I /etc/phxd/phxd.env\n"
    "The environment file of the example systemd units (examples/systemd/phxd.service, "
    "phxd@.service): SECRET_KEY_BASE, PHXD_API_KEY and other PHXD_ variables, readable by root "
    "only.\n"
    ".SH EXAMPLES\n"
    ".nf\n"
    "SECRET_KEY_BASE=... phxd \\-\\-host 0.0.0.0 \\-\\-port 4000 \\-\\-api\\-key \"$KEY\"\n"
    "PHXD_API_KEY=\"$KEY\" phxd publish room:lobby new_msg \\(aq{\"body\": \"hello\"}\\(aq\n"
    "phxd token sign \\-\\-secret\\-key\\-base \"$SECRET_KEY_BASE\" 42\n"
    "phxd check\\-config \\-\\-config /etc/phxd/phxd.conf\n"
    ".fi\n"
    ".SH SEE ALSO\n"
    "The README and docs/ of the phxd source: the wire protocol (docs/protocol.md), the "
    "installation recipe (docs/install.md).\n";

void phxd_man_page(FILE *out)
{
    fprintf(out,
            ".\\\" phxd(1), generated by `phxd options-man` from the option table: do not "
            "edit.\n"
            ".TH PHXD 1 \"\" \"phxd %s\" \"User Commands\"\n"
            ".nh\n",
            PHX_VERSION);
    fputs(page_head, out);
    phxd_option_doc_t d;
    for (size_t i = 0; phxd_option_doc(i, &d); i++) {
        fputs(".TP\n\\fB\\-\\-", out);
        roff_text(out, d.name);
        fputs("\\fR \\fIVALUE\\fR\n", out);
        roff_text(out, d.help);
        fputs(".\n.br\nEnvironment: \\fB", out);
        roff_text(out, d.env);
        if (d.env2 != NULL) {
            fputs("\\fR, \\fB", out);
            roff_text(out, d.env2);
        }
        fputs("\\fR. Default: ", out);
        roff_text(out, d.def);
        fputs(".\n", out);
    }
    fputs(page_tail, out);
    fputs(".I ", out);
    roff_text(out, phxd_demo_phoenix_js_default());
    fputs("\n", out);
    fputs(page_files, out);
}
