/*
 * Host-wide mode: libdynobs.so named in /etc/ld.so.preload is loaded into
 * every process of the host, and then traces only the processes that
 * /etc/dynobs/hostwide.conf selects (none while it is missing), so that
 * installing it changes nothing until configured. A process that asked
 * for the shim itself (LD_PRELOAD naming it: dynobs-run) is not concerned;
 * on a host with a selection file, a program that links the library or
 * loads it (Python's package) is selected like any other.
 */
#ifndef DYNOBS_PRELOAD_HOSTWIDE_H
#define DYNOBS_PRELOAD_HOSTWIDE_H

#include <stddef.h>

#include "../common/util.h"

/* At start, from the environment and two small files (raw system calls,
 * nothing bound): -1 when host-wide mode does not apply to this process,
 * 0 when it applies and the process is not selected (the shim stays off),
 * 1 when it is selected; then service holds the name a "service" line
 * gives it, or "". */
int dynobs__hostwide(char **envp, char *service, size_t cap) DYNOBS_INTERNAL;

/* The systemd unit this process runs in, from /proc/self/cgroup
 * ("nginx" for .../nginx.service), or "" when it runs in none. */
void dynobs__hostwide_unit(char *out, size_t cap) DYNOBS_INTERNAL;

#endif
