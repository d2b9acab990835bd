/* man.h: phxd(1). `phxd options-man` writes the page as roff; meson runs
 * it at build time (build/phxd.1) and installs the result into
 * <mandir>/man1. */
#ifndef PHXD_MAN_H
#define PHXD_MAN_H

#include <stdio.h>

/* Writes the whole man page: synopsis, commands, every option of the
 * option table with its environment variables and default, the config
 * file, signals, exit status, environment and files. */
void phxd_man_page(FILE *out);

#endif /* PHXD_MAN_H */
