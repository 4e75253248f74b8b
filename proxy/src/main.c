/* uproxy-proxy: parse the configuration, open the listeners, start the health checks, run the
 * loop. SIGTERM/SIGINT start a drain: stop accepting, let in-flight exchanges finish (their
 * responses carry `Connection: close`), exit 0 when none is left or the deadline passes.
 * Signals are optional: on a unikernel without them the proxy simply runs until stopped. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "auth.h"
#include "balance.h"
#include "buf.h"
#include "config.h"
#include "conn.h"
#include "http.h"
#include "listener.h"
#include "log.h"
#include "loop.h"
#include "runtime.h"
#include "redirect.h"
#include "sha256.h"
#include "tls.h"
#include "upstream.h"

#define VERSION UPROXY_VERSION /* -DUPROXY_VERSION: the Makefile reads it from proxy/VERSION */

struct runtime runtime;

static volatile sig_atomic_t stop_requested;
static struct timer drain_deadline;
static struct config cfg;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &sa, NULL);
}

/* After the last connection closed, the loop runs this much longer before exiting: closes
 * queue FINs that a user-space stack (lwip on Unikraft) sends from the loop's own turns, and a
 * peer that never sees one keeps the connection, and its slot, open. */
#define FIN_FLUSH_MS 100

static struct timer exit_timer;

static void on_exit_timer(struct timer *t)
{
    (void)t;
    loop_stop();
}

static void exit_soon(void)
{
    if (exit_timer.heap_index < 0)
        loop_timer_set(&exit_timer, FIN_FLUSH_MS);
}

static void on_drain_deadline(struct timer *t)
{
    (void)t;
    log_event("shutdown", "result=deadline open_connections=%lu", conn_count());
    exit_soon();
}

static void begin_shutdown(void)
{
    runtime.shutting_down = 1;
    log_event("shutdown_started", "open_connections=%lu deadline_ms=%u", conn_count(),
              cfg.shutdown_timeout_ms);
    for (size_t i = 0; i < nbackends; i++)
        health_stop(backends[i]);
    listener_close();
    if (cfg.has_redirect)
        redirect_close();
    conn_close_idle();
    backends_close_idle();
    loop_timer_set(&drain_deadline, cfg.shutdown_timeout_ms);
}

static void before_wait(void)
{
    if ((stop_requested || runtime.shutdown_requested) && !runtime.shutting_down)
        begin_shutdown();
    if (runtime.shutting_down && conn_count() == 0 && exit_timer.heap_index < 0) {
        log_event("shutdown", "result=drained");
        exit_soon();
    }
}

static int hash_stdin(void)
{
    uint8_t digest[SHA256_LEN];
    if (sha256_fd(STDIN_FILENO, digest) < 0) {
        fprintf(stderr, "uproxy-proxy: --hash-stdin: cannot read stdin: %s\n", strerror(errno));
        return 1;
    }
    for (int i = 0; i < SHA256_LEN; i++)
        printf("%02x", digest[i]);
    printf("\n");
    return 0;
}

static int start(void)
{
    if (loop_init() < 0 || loop_timer_init(&drain_deadline, on_drain_deadline) < 0 ||
        loop_timer_init(&exit_timer, on_exit_timer) < 0 ||
        auth_init(cfg.tokens, cfg.ntokens) < 0 || backends_init(&cfg) < 0) {
        log_error("start_failed", "error=\"%s\"", strerror(errno));
        return 1;
    }
    buf_pool_init(cfg.buffer_bytes);
    http_init(cfg.buffer_bytes);
    balance_init(cfg.algorithm);
    char err[512];
    if (tls_init(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "uproxy-proxy: %s\n", err);
        return 2;
    }
    if (cfg.access_log[0] && access_log_open(cfg.access_log) < 0) {
        fprintf(stderr, "uproxy-proxy: --access-log: cannot open '%s': %s\n", cfg.access_log, strerror(errno));
        return 2;
    }
    if (listener_open() < 0) {
        fprintf(stderr, "uproxy-proxy: --listen: cannot listen on %s: %s\n", cfg.listen_text, strerror(errno));
        return 1;
    }
    log_event("listen", "role=client addr=%s", cfg.listen_text);
    if (cfg.has_redirect) {
        if (redirect_listen() < 0) {
            fprintf(stderr, "uproxy-proxy: --redirect-listen: cannot listen on %s: %s\n", cfg.redirect_text, strerror(errno));
            return 1;
        }
        log_event("listen", "role=redirect addr=%s", cfg.redirect_text);
    }
    if (cfg.has_admin) {
        if (admin_listen() < 0) {
            fprintf(stderr, "uproxy-proxy: --admin: cannot listen on %s: %s\n", cfg.admin_text, strerror(errno));
            return 1;
        }
        log_event("listen", "role=admin addr=%s", cfg.admin_text);
    }
    for (size_t i = 0; i < nbackends; i++)
        health_start(backends[i]);
    install_signals();
    loop_run(before_wait);
    return 0;
}

int main(int argc, char **argv)
{
    char err[512];
    enum config_action action;
    if (config_parse_argv(&cfg, argc, argv, &action, err, sizeof err) < 0) {
        fprintf(stderr, "uproxy-proxy: %s\n", err);
        return 2;
    }
    switch (action) {
    case CONFIG_HELP:
        config_usage();
        return 0;
    case CONFIG_VERSION:
        printf("uproxy-proxy %s\n", VERSION);
        return 0;
    case CONFIG_HASH_STDIN:
        return hash_stdin();
    default:
        break;
    }
    runtime.cfg = &cfg;
    log_event("start", "version=%s pid=%d algorithm=%s backends=%zu tokens=%zu", VERSION, (int)getpid(),
              algorithm_name(cfg.algorithm), cfg.nbackends, cfg.ntokens);
    int rc = start();
    if (rc == 0)
        log_event("exit", "code=0");
    return rc;
}
