/* Unit tests for log.c: the embedder's sink (phx_set_log), the level
 * (phx_set_log_level) and the default stderr line. */
#include "log.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "phx.h"
#include "runner.h"

typedef struct capture {
    int calls;
    int level;
    char line[2048];
} capture_t;

static void capture_cb(int level, const char *line, void *user)
{
    capture_t *c = user;
    c->calls++;
    c->level = level;
    snprintf(c->line, sizeof(c->line), "%s", line);
}

static void callback_gets_level_and_message(void)
{
    capture_t c = {0};
    phx_set_log(capture_cb, &c);
    PHX_LOG_WARN("event=test n=%d s=%s", 7, "x");
    ASSERT_EQ(c.calls, 1);
    ASSERT_EQ(c.level, PHX_LOG_LEVEL_WARN);
    ASSERT_STR_EQ(c.line, "event=test n=7 s=x"); /* no timestamp, level name or newline */
    PHX_LOG_ERROR("event=bad");
    ASSERT_EQ(c.calls, 2);
    ASSERT_EQ(c.level, PHX_LOG_LEVEL_ERROR);
    ASSERT_STR_EQ(c.line, "event=bad");
}

static void level_filters_lines(void)
{
    capture_t c = {0};
    phx_set_log(capture_cb, &c);
    ASSERT_EQ(phx_log_level, PHX_LOG_LEVEL_INFO); /* the default */
    PHX_LOG_DEBUG("event=hidden");
    ASSERT_EQ(c.calls, 0);
    ASSERT_EQ(phx_set_log_level(PHX_LOG_LEVEL_DEBUG), 0);
    PHX_LOG_DEBUG("event=shown");
    ASSERT_EQ(c.calls, 1);
    ASSERT_EQ(c.level, PHX_LOG_LEVEL_DEBUG);
    ASSERT_EQ(phx_set_log_level(PHX_LOG_LEVEL_ERROR), 0);
    PHX_LOG_WARN("event=hidden");
    PHX_LOG_INFO("event=hidden");
    ASSERT_EQ(c.calls, 1);
    PHX_LOG_ERROR("event=shown");
    ASSERT_EQ(c.calls, 2);
    ASSERT_EQ(phx_set_log_level(4), PHX_ERR_INVALID);
    ASSERT_EQ(phx_set_log_level(-1), PHX_ERR_INVALID);
    ASSERT_EQ(phx_log_level, PHX_LOG_LEVEL_ERROR); /* unchanged */
}

static void long_line_is_truncated(void)
{
    capture_t c = {0};
    phx_set_log(capture_cb, &c);
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    PHX_LOG_ERROR("event=big v=%s", big);
    ASSERT_EQ(c.calls, 1);
    ASSERT(strlen(c.line) < 1024);
    ASSERT(strncmp(c.line, "event=big v=xxx", 15) == 0);
}

/* Runs `fn` with stderr redirected into a file; returns what it wrote. */
static void capture_stderr(void (*fn)(void), char *out, size_t cap)
{
    FILE *tmp = tmpfile();
    ASSERT(tmp != NULL);
    fflush(stderr);
    int saved = dup(STDERR_FILENO);
    ASSERT(saved >= 0);
    ASSERT(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    fn();
    fflush(stderr);
    ASSERT(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    rewind(tmp);
    size_t n = fread(out, 1, cap - 1, tmp);
    out[n] = '\0';
    fclose(tmp);
}

static void log_warn_line(void)
{
    PHX_LOG_WARN("event=to_stderr code=%d", 1009);
}

static void null_callback_restores_stderr(void)
{
    capture_t c = {0};
    phx_set_log(capture_cb, &c);
    char out[256];
    capture_stderr(log_warn_line, out, sizeof(out));
    ASSERT_STR_EQ(out, "");
    ASSERT_EQ(c.calls, 1);
    phx_set_log(NULL, NULL);
    capture_stderr(log_warn_line, out, sizeof(out));
    ASSERT_EQ(c.calls, 1);
    /* 2026-11-28T23:19:32.123Z warn event=to_stderr code=1009\n */
    ASSERT_EQ(strlen(out), 25 + strlen("warn event=to_stderr code=1009\n"));
    ASSERT(out[4] == '-' && out[10] == 'T' && out[23] == 'Z' && out[24] == ' ');
    ASSERT_STR_EQ(out + 25, "warn event=to_stderr code=1009\n");
}

static void stopped(phx_server_t *srv)
{
}

/* The library's own lines (here a drain's) reach the callback. */
static void server_lines_reach_callback(void)
{
    capture_t c = {0};
    phx_set_log(capture_cb, &c);
    uv_loop_t loop;
    ASSERT_EQ(uv_loop_init(&loop), 0);
    phx_config_t cfg;
    phx_config_init(&cfg);
    cfg.port = 0;
    phx_server_t *srv = NULL;
    char err[PHX_ERR_LEN] = "";
    ASSERT_EQ(phx_server_new(&srv, &loop, &cfg, err), 0);
    ASSERT_EQ(phx_server_start(srv, err), 0);
    phx_server_drain(srv, 1001, 0, 0, 1000, stopped);
    ASSERT_EQ(uv_run(&loop, UV_RUN_DEFAULT), 0);
    phx_server_free(srv);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    ASSERT(c.calls >= 1);
    ASSERT_EQ(c.level, PHX_LOG_LEVEL_INFO);
    ASSERT(strstr(c.line, "event=drain") != NULL);
}

/* A failed assertion is reported to the callback, then the process aborts. */
static int assert_fd = -1;

static void write_line_cb(int level, const char *line, void *user)
{
    char buf[600];
    int n = snprintf(buf, sizeof(buf), "%d %s", level, line);
    if (write(assert_fd, buf, (size_t)n) != n)
        _exit(3);
}

static void assertion_reaches_callback(void)
{
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(2);
        signal(SIGABRT, SIG_DFL);
        assert_fd = fds[1];
        phx_set_log(write_line_cb, NULL);
        phx_assert_fail("1 == 2", "here.c", 12);
    }
    close(fds[1]);
    char buf[600];
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(buf) - 1 && (n = read(fds[0], buf + len, sizeof(buf) - 1 - len)) > 0)
        len += (size_t)n;
    buf[len] = '\0';
    close(fds[0]);
    int st = 0;
    ASSERT_EQ(waitpid(pid, &st, 0), pid);
    ASSERT(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    ASSERT_STR_EQ(buf, "0 event=assertion_failed cond=\"1 == 2\" file=here.c line=12");
}

/* Values a client chooses (topics, ids) stay one token of the line. */
static void values_are_quoted_and_cut(void)
{
    char out[16];
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "room:1", 6), "room:1");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), NULL, 0), "-");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "", 0), "\"\"");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "a b", 3), "\"a b\"");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "k=v", 3), "\"k=v\"");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "a\"\n", 3), "\"a\\x22\\x0a\"");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "0123456789abcdef", 16), "0123456789ab...");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "0123456789abcde", 15), "0123456789abcde");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "x y 456789abcdef", 16), "\"x y 456789...\"");
    ASSERT_STR_EQ(phx_log_value(out, sizeof(out), "x\n", 2), "\"x\\x0a\"");
}

const phx_test_t phx_tests_log[] = {
    {"values_are_quoted_and_cut", values_are_quoted_and_cut},
    {"callback_gets_level_and_message", callback_gets_level_and_message},
    {"level_filters_lines", level_filters_lines},
    {"long_line_is_truncated", long_line_is_truncated},
    {"null_callback_restores_stderr", null_callback_restores_stderr},
    {"server_lines_reach_callback", server_lines_reach_callback},
    {"assertion_reaches_callback", assertion_reaches_callback},
    {NULL, NULL},
};
