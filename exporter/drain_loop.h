/*
 * The main thread's work: watch the directory, drain the rings into the
 * queue, reap the segments of exited processes, hand due batches to the
 * sender and tell it when the metrics are due.
 */
#ifndef DYNOBS_EXPORTER_DRAIN_LOOP_H
#define DYNOBS_EXPORTER_DRAIN_LOOP_H

#include <signal.h>

#include "xconfig.h"

/* Runs until *stop is set (by a signal handler) or, with
 * DYNOBS_EXPORTER_IDLE_EXIT, no segment has been attached for that long. */
void dx_drain_loop_run(const struct dx_config *cfg, const volatile sig_atomic_t *stop);

/* At shutdown: attaches, drains and reaps one last time and hands every
 * batch to the sender, however young. */
void dx_drain_loop_finish(void);

#endif
