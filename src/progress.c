/* Push/pull progress on stderr (see progress.h). */
#include "progress.h"
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REDRAW_MS 200

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void human(char *buf, size_t n, double v) {
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof units / sizeof *units) v /= 1024, u++;
    if (u == 0) snprintf(buf, n, "%.0f B", v);
    else snprintf(buf, n, "%.1f %s", v, units[u]);
}

static const char *verb(sub_xfer_outcome o) {
    switch (o) {
    case SUB_XFER_PUSHED: return "pushed";
    case SUB_XFER_EXISTS: return "exists";
    case SUB_XFER_FETCHED: return "fetched";
    case SUB_XFER_PRESENT: return "present";
    }
    return "?";
}

void cli_progress_init(cli_progress *p, const char *prefix, bool quiet) {
    memset(p, 0, sizeof *p);
    p->prefix = prefix ? prefix : "";
    p->quiet = quiet;
    p->tty = isatty(STDERR_FILENO);
}

void cli_progress_end(cli_progress *p) {
    if (p->open) fputs("\r\033[K", stderr);
    p->open = false;
}

static void draw(cli_progress *p, const sub_xfer_event *ev, int64_t now) {
    char done[32], total[32], rate[32] = "";
    human(done, sizeof done, (double)ev->done);
    human(total, sizeof total, (double)ev->total);
    int64_t el = now - p->start_ms;
    if (el >= 500) {
        human(rate, sizeof rate, (double)ev->done * 1000.0 / (double)el);
        strcat(rate, "/s");
    }
    /* the digest shortened to 12 hex digits keeps the line within a terminal */
    const char *hex = strchr(ev->digest, ':');
    fprintf(stderr, "\r\033[K%s%-8s %.12s  %s / %s  %s", p->prefix, ev->role,
            hex ? hex + 1 : ev->digest, done, ev->total ? total : "?", rate);
    fflush(stderr);
    p->open = true;
    p->last_ms = now;
}

void cli_progress_cb(void *ud, const sub_xfer_event *ev) {
    cli_progress *p = ud;
    if (!p || p->quiet) return;
    int64_t now = now_ms();
    switch (ev->phase) {
    case SUB_XFER_START:
        p->start_ms = now;
        if (p->tty && strcmp(ev->role, "manifest") != 0) draw(p, ev, now);
        break;
    case SUB_XFER_BYTES:
        if (p->tty && now - p->last_ms >= REDRAW_MS) draw(p, ev, now);
        break;
    case SUB_XFER_DONE: {
        char size[32];
        human(size, sizeof size, (double)ev->total);
        cli_progress_end(p);
        fprintf(stderr, "%s%-7s %-8s %s (%s)\n", p->prefix, verb(ev->outcome), ev->role,
                ev->digest, size);
        break;
    }
    }
}
