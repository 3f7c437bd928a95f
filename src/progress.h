/* Rendering push/pull progress events (sub_xfer_event) on stderr: on a
 * terminal one line per blob, redrawn with bytes and rate at most five times
 * a second; otherwise one finished line per blob ("pushed layer sha256:...
 * (1.5 MiB)"); nothing when quiet. The library only reports; this prints. */
#pragma once
#include "substrate/transfer.h"
#include <stdbool.h>
#include <stdint.h>

typedef struct cli_progress {
    const char *prefix; /* put before every line, e.g. "substrate build: " */
    bool quiet, tty;
    bool open;          /* a progress line is drawn and not finished (tty) */
    int64_t start_ms, last_ms;
} cli_progress;

/* Terminal rendering when stderr is a terminal. */
void cli_progress_init(cli_progress *p, const char *prefix, bool quiet);
/* A sub_xfer_fn: pass the cli_progress as ud. */
void cli_progress_cb(void *ud, const sub_xfer_event *ev);
/* Erase a progress line left open (a transfer failed mid-way). */
void cli_progress_end(cli_progress *p);
