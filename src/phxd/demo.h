/* demo.h: phxd's demo page. GET / serves a small chat page (src/demo/
 * index.html, embedded at build time) that loads phoenix.js from
 * /phoenix.js, connects to the socket and chats in room:lobby. phoenix.js
 * is read once at startup from the phoenix npm package the build installed
 * (or --phoenix-js PATH); nothing is read from disk while serving. */
#ifndef PHXD_DEMO_H
#define PHXD_DEMO_H

#include <stdio.h>

#include "config.h"
#include "phx.h"

/* The installed phoenix.min.js path compiled in,
 * <prefix>/<datadir>/phxd/phoenix.min.js. Without --phoenix-js, phxd first
 * looks next to its executable (an install moved elsewhere or staged, or the
 * build directory's copy), then there (demo.c). */
const char *phxd_demo_phoenix_js_default(void);

/* Mints the demo token (user_id 1, valid 24 h) with the options' secret and
 * token settings. Returns an owned NUL-terminated string (phx_free) or NULL
 * on failure. */
char *phxd_demo_token(const phxd_options_t *o);

/* Registers GET / (the page) and GET /phoenix.js with `srv` (main calls it
 * only with --demo-page: without the page, /phoenix.js is not served
 * either). phoenix.js is
 * read from o->phoenix_js (NULL or "": found as phxd_demo_phoenix_js_default()
 * says); when
 * it cannot be read a warning is logged, /phoenix.js is not served and the
 * page says so. The page connects to o->cfg.socket_path. `demo_token` (may
 * be NULL) is written into the page; without one the page takes ?token=...
 * from its URL. Returns 0, or PHX_ERR_NOMEM with a line in `err`
 * (PHX_ERR_LEN bytes). */
int phxd_demo_install(phx_server_t *srv, const phxd_options_t *o, const char *demo_token,
                      char *err);

/* Prints the banner's demo lines: the page's URL (with --demo-page only)
 * and, when there is one, the demo token. `port` is the bound port. */
void phxd_demo_banner(FILE *out, const phxd_options_t *o, int port, const char *demo_token);

#endif /* PHXD_DEMO_H */
