// SPDX-License-Identifier: GPL-2.0
/*
 * The plain side of TLS: uprobes on OpenSSL's SSL_read, SSL_write and
 * their _ex forms, in a shared libssl or in an executable that carries
 * OpenSSL (node). The loader attaches them per traced process, or, for an
 * executable, to all of its processes; the targets map decides. At entry
 * the buffer is kept; at return the bytes the call moved are copied, up
 * to DYNOBS_EBPF_DATA_MAX. The connection is the SSL object; SSL_free
 * ends it.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

struct call {
    __u64 ssl, buf, moved; /* moved: the _ex forms' size_t *, else 0 */
    __u8 dir;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct call);
} calls SEC(".maps");

static __always_inline int enter(void *ssl, const void *buf, void *moved, __u8 dir)
{
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id >> 32))
        return 0;
    struct call c = {.ssl = (__u64)ssl, .buf = (__u64)buf, .moved = (__u64)moved, .dir = dir};
    if (bpf_map_update_elem(&calls, &id, &c, BPF_ANY))
        count(DYNOBS_EBPF_LOST_ARGS);
    return 0;
}

static __always_inline int leave(long ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct call *c = bpf_map_lookup_elem(&calls, &id);
    if (!c)
        return 0;
    struct call k = *c;
    bpf_map_delete_elem(&calls, &id);
    if (k.moved) {
        __u64 n = 0;
        if ((int)ret != 1 || bpf_probe_read_user(&n, sizeof n, (void *)k.moved))
            return 0;
        ret = (long)n;
    }
    if ((int)ret <= 0)
        return 0;
    ret = (int)ret;
    struct dynobs_ebpf_ev *e = event_new(DYNOBS_EV_DATA);
    if (!e)
        return 0;
    data_send(e, k.ssl, ret, k.dir, DYNOBS_SRC_TLS, (const void *)k.buf, (__u64)ret);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(ssl_read_enter, void *ssl, void *buf, int num)
{
    return enter(ssl, buf, 0, 0);
}
SEC("uprobe")
int BPF_KPROBE(ssl_read_ex_enter, void *ssl, void *buf, size_t num, size_t *readbytes)
{
    return enter(ssl, buf, readbytes, 0);
}
SEC("uprobe")
int BPF_KPROBE(ssl_write_enter, void *ssl, const void *buf, int num)
{
    return enter(ssl, buf, 0, 1);
}
SEC("uprobe")
int BPF_KPROBE(ssl_write_ex_enter, void *ssl, const void *buf, size_t num, size_t *written)
{
    return enter(ssl, buf, written, 1);
}
SEC("uretprobe")
int BPF_KRETPROBE(ssl_leave, long ret)
{
    return leave(ret);
}

SEC("uprobe")
int BPF_KPROBE(ssl_free_enter, void *ssl)
{
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id >> 32))
        return 0;
    struct dynobs_ebpf_ev *e = event_new(DYNOBS_EV_CLOSE);
    if (!e)
        return 0;
    e->conn = (__u64)ssl;
    e->src = DYNOBS_SRC_TLS;
    event_send(e);
    return 0;
}
