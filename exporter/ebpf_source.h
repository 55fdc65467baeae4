/*
 * The exporter's side of eBPF (ebpf/ebpf.h): the command line's --ebpf,
 * --pid and --exe, starting and stopping it, and its counters on
 * /metrics. Without --ebpf nothing of it runs.
 */
#ifndef DYNOBS_EXPORTER_EBPF_SOURCE_H
#define DYNOBS_EXPORTER_EBPF_SOURCE_H

/* Parses the eBPF options in argv[1..]. Returns 1 when --ebpf was given,
 * 0 when not, -1 after printing what is wrong (an unknown argument, a bad
 * pid, --pid/--exe without --ebpf). */
int dx_ebpf_args(int argc, char **argv);

/* Starts eBPF when asked: an error is logged once and the exporter
 * carries on without it. Registers its /metrics series either way. */
void dx_ebpf_begin(const char *shm_dir);
void dx_ebpf_end(void);

#endif
