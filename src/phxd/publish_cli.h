/* publish_cli.h: `phxd publish`, server-side publishing from the shell
 * through phxd's HTTP API (POST /api/broadcast and /api/disconnect with
 * `Authorization: Bearer <api-key>`, see api.h). A blocking HTTP/1.1 client
 * over plain TCP or, for https:// URLs, OpenSSL (the server's certificate
 * verified against the system store or --cacert, unless --insecure): it
 * runs instead of the server, never in a loop.
 * main() dispatches to it when argv[1] is "publish". */
#ifndef PHX_PUBLISH_CLI_H
#define PHX_PUBLISH_CLI_H

/* Runs the subcommand; argv[0] is "publish". Borrows argv; reads
 * PHXD_URL and PHXD_API_KEY. Prints the API's answer (a JSON object) on
 * stdout and returns 0 for a 2xx status; prints "phxd publish: HTTP <status>:
 * <answer>" or the connection error on stderr and returns 1 otherwise;
 * returns 2 after one line on stderr for a usage error (bad option, URL,
 * topic, payload, or no API key). */
int phx_publish_cli(int argc, char **argv);

/* `phxd presence TOPIC`: GET /api/presence?topic=TOPIC with the same
 * options, environment and exit statuses; prints the answer. */
int phx_presence_cli(int argc, char **argv);

#endif /* PHX_PUBLISH_CLI_H */
