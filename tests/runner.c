/* runner.c: runs the unit-test tables listed in tests/unit/modules.def.
 *   unit                 every module
 *   unit <module>        one module
 *   unit <module> <test> one test
 * Each test runs in a child process with a 5 s timeout (PHX_TEST_TIMEOUT
 * overrides it; 0 disables forking, for gdb). Output is flat TAP. */
#include "runner.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <unistd.h>

#define PHX_TEST_MODULE(m) extern const phx_test_t phx_tests_##m[];
#include "unit/modules.def"
#undef PHX_TEST_MODULE

typedef struct {
    const char *name;
    const phx_test_t *tests;
} module_t;

static const module_t modules[] = {
#define PHX_TEST_MODULE(m) {#m, phx_tests_##m},
#include "unit/modules.def"
#undef PHX_TEST_MODULE
    {NULL, NULL},
};

void phx_test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "# %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
    _exit(1);
}

void phx_test_hexdump(const char *label, const void *p, size_t len)
{
    const unsigned char *b = p;
    fprintf(stdout, "# %s (%zu bytes):", label, len);
    for (size_t i = 0; i < len && i < 512; i++)
        fprintf(stdout, "%s%02x", i % 32 == 0 ? "\n#   " : " ", b ? b[i] : 0);
    fputc('\n', stdout);
}

static int run_one(const phx_test_t *t, int timeout)
{
    fflush(stdout);
    if (timeout == 0) {
        t->fn();
        return 0;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return 1;
    }
    if (pid == 0) {
        alarm((unsigned)timeout);
        t->fn();
        fflush(stdout);
        _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status) != 0;
    printf("# killed by signal %d%s\n", WTERMSIG(status),
           WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
    return 1;
}

int main(int argc, char **argv)
{
    const char *want_mod = argc > 1 ? argv[1] : NULL;
    const char *want_test = argc > 2 ? argv[2] : NULL;
    const char *env = getenv("PHX_TEST_TIMEOUT");
    int timeout = env ? atoi(env) : 5;
    int planned = 0, failed = 0, n = 0, found = 0;

    for (const module_t *m = modules; m->name; m++) {
        if (want_mod && strcmp(want_mod, m->name) != 0)
            continue;
        found = 1;
        for (const phx_test_t *t = m->tests; t->name; t++)
            if (!want_test || strcmp(want_test, t->name) == 0)
                planned++;
    }
    if (!found) {
        fprintf(stderr, "unit: no module named %s\n", want_mod);
        return 2;
    }
    printf("TAP version 13\n1..%d\n", planned);
    for (const module_t *m = modules; m->name; m++) {
        if (want_mod && strcmp(want_mod, m->name) != 0)
            continue;
        for (const phx_test_t *t = m->tests; t->name; t++) {
            if (want_test && strcmp(want_test, t->name) != 0)
                continue;
            int bad = run_one(t, timeout);
            failed += bad;
            printf("%s %d - %s.%s\n", bad ? "not ok" : "ok", ++n, m->name, t->name);
        }
    }
    fflush(stdout);
    return failed ? 1 : 0;
}
