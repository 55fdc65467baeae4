#ifndef DYNOBS_EXPORTER_CONSOLE_H
#define DYNOBS_EXPORTER_CONSOLE_H

#include "queue.h"

/* Prints a batch; returns the records printed. */
long dx_console_batch(const struct dx_batch *b);
/* Prints the store's current series (under the segments' lock, after a
 * snapshot). */
long dx_console_metrics(void);

#endif
