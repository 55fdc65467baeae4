/*
 * The maps every kernel-side program shares: the processes traced, the
 * ring buffer to user space and the loss counters. Each object declares
 * them; the loader makes them one (bpf_map__reuse_fd) before loading.
 */
#ifndef DYNOBS_EBPF_MAPS_BPF_H
#define DYNOBS_EBPF_MAPS_BPF_H

#include "events.h"

/* tgid -> 1: the processes traced. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 4096);
    __type(key, __u32);
    __type(value, __u32);
} targets SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, DYNOBS_EBPF_COUNTERS);
    __type(key, __u32);
    __type(value, __u64);
} counters SEC(".maps");

/* One event being built per CPU: too large for the BPF stack. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct dynobs_ebpf_ev);
} scratch SEC(".maps");

static __always_inline void count(__u32 which)
{
    __u64 *v = bpf_map_lookup_elem(&counters, &which);
    if (v)
        *v += 1;
}

static __always_inline int traced(__u32 tgid)
{
    return bpf_map_lookup_elem(&targets, &tgid) != 0;
}

/* The per-CPU event, its header set for this thread. */
static __always_inline struct dynobs_ebpf_ev *event_new(__u32 type)
{
    __u32 zero = 0;
    struct dynobs_ebpf_ev *e = bpf_map_lookup_elem(&scratch, &zero);
    if (!e)
        return 0;
    __u64 id = bpf_get_current_pid_tgid();
    e->type = type;
    e->pid = id >> 32;
    e->tid = (__u32)id;
    e->flags = 0;
    e->ts = bpf_ktime_get_ns();
    e->conn = 0;
    e->len = 0;
    e->aux = 0;
    e->cap = 0;
    e->dir = 0;
    e->src = 0;
    e->family = 0;
    e->lport = e->rport = 0;
    return e;
}

/* At most DYNOBS_EBPF_DATA_MAX, in a form the verifier can bound: the
 * empty asm keeps the compiler from folding the second check into the
 * first one's operands. */
static __always_inline __u32 data_len(__u64 n)
{
    __u32 v = n > DYNOBS_EBPF_DATA_MAX ? DYNOBS_EBPF_DATA_MAX : (__u32)n;
    asm volatile("" : "+r"(v));
    if (v > DYNOBS_EBPF_DATA_MAX)
        v = 0;
    return v;
}

/* Sends the event's header and its first cap bytes of data. The reader
 * is not woken for each event: the wakeup is an interrupt to another CPU
 * that cost the traced call 3 to 6 us on the reference VM (BENCHMARKS.md,
 * eBPF); it reads every 100 ms, and is woken only when a quarter of the
 * ring buffer waits. */
static __always_inline void event_send(struct dynobs_ebpf_ev *e)
{
    __u64 n = e->cap;
    if (n > DYNOBS_EBPF_DATA_MAX)
        n = DYNOBS_EBPF_DATA_MAX;
    __u64 fl = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) > (2u << 20) ? BPF_RB_FORCE_WAKEUP
                                                                          : BPF_RB_NO_WAKEUP;
    if (bpf_ringbuf_output(&events, e, __builtin_offsetof(struct dynobs_ebpf_ev, data) + n, fl))
        count(DYNOBS_EBPF_LOST_RINGBUF);
}

/* Sends e as a data event: the call on conn moved len bytes (dir, src),
 * the first avail of which are at from; up to DYNOBS_EBPF_DATA_MAX of them
 * are copied, and a cut copy says so. */
static __always_inline void data_send(struct dynobs_ebpf_ev *e, __u64 conn, long len, __u8 dir,
                                      __u8 src, const void *from, __u64 avail)
{
    e->conn = conn;
    e->len = len;
    e->dir = dir;
    e->src = src;
    if (avail > DYNOBS_EBPF_DATA_MAX || (__u64)len > avail)
        e->flags |= DYNOBS_EVF_CUT;
    __u32 n = data_len(avail);
    if (bpf_probe_read_user(e->data, n, from))
        n = 0;
    e->cap = n;
    event_send(e);
}

#endif
