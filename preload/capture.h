/*
 * DYNOBS_CAPTURE_LOGS: what the service itself writes to its stderr
 * (write/writev on fd 2, and C stdio on stderr) and passes to syslog()
 * becomes log records. capture.c holds all of it; the socket transport
 * only hands over what is written to fd 2.
 */
#ifndef DYNOBS_PRELOAD_CAPTURE_H
#define DYNOBS_PRELOAD_CAPTURE_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "../common/util.h"

/* write()/writev() of iov to fd 2 with capture on: makes the real call,
 * then captures what went out. */
ssize_t dynobs__stderr_write(const struct iovec *iov, int iovcnt, int vectored) DYNOBS_INTERNAL;

/* At exit: the exiting thread's last stderr line, if it had no newline. */
void dynobs__stderr_flush(void) DYNOBS_INTERNAL;

#endif
