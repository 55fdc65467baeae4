/*
 * The sender thread: takes batches from the queue and exports them, and
 * exports the metrics when the queue says they are due; each signal goes
 * to its sink (OTLP/HTTP, the console, or nowhere) and its outcome is
 * counted in stats.h.
 */
#ifndef DYNOBS_EXPORTER_SENDER_H
#define DYNOBS_EXPORTER_SENDER_H

#include <stdint.h>

#include "xconfig.h"

/* Starts the thread; the sinks are copied from cfg. Returns 0 or -1. */
int dx_sender_start(const struct dx_config *cfg);

/* Asks for a last metric export, leaves the sender up to timeout_ms to
 * deliver what is queued, then makes it stop retrying and joins it. */
void dx_sender_finish(uint64_t timeout_ms);

#endif
