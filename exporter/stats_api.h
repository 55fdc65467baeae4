/*
 * GET /api/v1/stats?name=...&labels=...&window=...: windowed statistics
 * (count, sum, avg, min, max) of histogram and gauge series, as JSON,
 * per service and series, for programs that react to a figure now
 * rather than at the next scrape. Served where /metrics is, and, like
 * it, metric values only.
 */
#ifndef DYNOBS_EXPORTER_STATS_API_H
#define DYNOBS_EXPORTER_STATS_API_H

/* Registers the route; 0, or -1 (http_server.h). */
int dx_stats_api_register(void);

#endif
