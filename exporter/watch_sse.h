/*
 * GET /api/v1/watch?name=...&labels=...&above=X|below=X|change: Server-
 * Sent Events when a series crosses a threshold or changes, pushed
 * within a few tens of milliseconds, for programs that must react now
 * (a planner scaling on queue depth, a load shedder). Served where
 * /metrics is; metric values only.
 *
 * While at least one client watches, a thread of its own reads the
 * watched slots every DX_WATCH_TICK_MS and compares each client's series
 * with what it saw last; with no client it is not running. Each client has a
 * bounded queue: a client that does not read fast enough loses events
 * (counted, in its next event and on /metrics), never slows the exporter
 * or another client.
 */
#ifndef DYNOBS_EXPORTER_WATCH_SSE_H
#define DYNOBS_EXPORTER_WATCH_SSE_H

#define DX_WATCH_TICK_MS 10
#define DX_WATCH_LOOK_MS 1000 /* new series in attached processes are found this often */
#define DX_WATCH_MAX_CLIENTS 32
#define DX_WATCH_MAX_SERIES 256    /* per client: series past it are not watched */
#define DX_WATCH_KEEPALIVE_MS 1000 /* a quiet stream gets a comment: dead clients show */

/* Registers the route and the exporter's own counters; 0, or -1. */
int dx_watch_register(void);

#endif
