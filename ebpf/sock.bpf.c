// SPDX-License-Identifier: GPL-2.0
/*
 * Bytes a traced process reads or writes on stream sockets, at the system
 * call (read, write, recvfrom, sendto, readv, writev): what runtimes that
 * bypass libc (Go) and libraries linked statically still go through.
 * The arguments are kept at entry (the buffer, and the socket's
 * addresses); at exit the bytes the call moved are copied, up to
 * DYNOBS_EBPF_DATA_MAX, from its buffer (readv/writev: the first iovec).
 * Other file descriptors, datagrams and failed calls send nothing.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1

struct call {
    __u64 buf;
    __u32 fd;
    __u8 dir, vec; /* vec: buf is an iovec array */
    __u16 family;
    __u16 lport, rport;
    __u8 laddr[16], raddr[16];
};

/* threads already reported as waiting in epoll */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u8);
} muxed SEC(".maps");

/* thread -> the socket call it is in */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct call);
} calls SEC(".maps");

/* Fills c's addresses from fd's socket; 0 when fd is a stream socket. */
static __always_inline int stream_socket(int fd, struct call *c)
{
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    struct fdtable *fdt = BPF_CORE_READ(t, files, fdt);
    if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
        return -1;
    struct file **fds = BPF_CORE_READ(fdt, fd);
    struct file *f = 0;
    if (bpf_probe_read_kernel(&f, sizeof f, &fds[fd]) || !f)
        return -1;
    umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
    if ((mode & S_IFMT) != S_IFSOCK)
        return -1;
    struct socket *so = BPF_CORE_READ(f, private_data);
    struct sock *sk = BPF_CORE_READ(so, sk);
    if (!sk || BPF_CORE_READ(sk, sk_type) != SOCK_STREAM)
        return -1;
    c->family = BPF_CORE_READ(sk, __sk_common.skc_family);
    c->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
    c->rport = __builtin_bswap16(BPF_CORE_READ(sk, __sk_common.skc_dport));
    if (c->family == AF_INET) {
        __u32 l = BPF_CORE_READ(sk, __sk_common.skc_rcv_saddr);
        __u32 r = BPF_CORE_READ(sk, __sk_common.skc_daddr);
        __builtin_memcpy(c->laddr, &l, 4);
        __builtin_memcpy(c->raddr, &r, 4);
    } else if (c->family == AF_INET6) {
        BPF_CORE_READ_INTO(&c->laddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
        BPF_CORE_READ_INTO(&c->raddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
    }
    return 0;
}

static __always_inline int enter(int fd, __u64 buf, __u8 dir, __u8 vec)
{
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id >> 32))
        return 0;
    struct call c = {.buf = buf, .fd = fd, .dir = dir, .vec = vec};
    if (stream_socket(fd, &c))
        return 0;
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
    if (ret <= 0)
        return 0;
    struct dynobs_ebpf_ev *e = event_new(DYNOBS_EV_DATA);
    if (!e)
        return 0;
    e->family = k.family;
    e->lport = k.lport;
    e->rport = k.rport;
    if (k.family == AF_INET || k.family == AF_INET6) {
        e->flags |= DYNOBS_EVF_INET | (k.family == AF_INET6 ? DYNOBS_EVF_INET6 : 0);
        __builtin_memcpy(e->laddr, k.laddr, 16);
        __builtin_memcpy(e->raddr, k.raddr, 16);
    }
    __u64 src = k.buf, n = ret;
    if (k.vec) {
        struct iovec v = {};
        if (bpf_probe_read_user(&v, sizeof v, (void *)k.buf))
            return 0;
        src = (__u64)v.iov_base;
        if (n > v.iov_len)
            n = v.iov_len;
    }
    data_send(e, k.fd, ret, k.dir, DYNOBS_SRC_SOCK, (const void *)src, n);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_read")
int enter_read(struct trace_event_raw_sys_enter *ctx)
{
    return enter(ctx->args[0], ctx->args[1], 0, 0);
}
SEC("tracepoint/syscalls/sys_exit_read")
int exit_read(struct trace_event_raw_sys_exit *ctx)
{
    return leave(ctx->ret);
}
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
    return enter(ctx->args[0], ctx->args[1], 0, 0);
}
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int exit_recvfrom(struct trace_event_raw_sys_exit *ctx)
{
    return leave(ctx->ret);
}
SEC("tracepoint/syscalls/sys_enter_readv")
int enter_readv(struct trace_event_raw_sys_enter *ctx)
{
    return enter(ctx->args[0], ctx->args[1], 0, 1);
}
SEC("tracepoint/syscalls/sys_exit_readv")
int exit_readv(struct trace_event_raw_sys_exit *ctx)
{
    return leave(ctx->ret);
}
SEC("tracepoint/syscalls/sys_enter_write")
int enter_write(struct trace_event_raw_sys_enter *ctx)
{
    return enter(ctx->args[0], ctx->args[1], 1, 0);
}
SEC("tracepoint/syscalls/sys_exit_write")
int exit_write(struct trace_event_raw_sys_exit *ctx)
{
    return leave(ctx->ret);
}
SEC("tracepoint/syscalls/sys_enter_sendto")
int enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
    return enter(ctx->args[0], ctx->args[1], 1, 0);
}
SEC("tracepoint/syscalls/sys_exit_sendto")
int exit_sendto(struct trace_event_raw_sys_exit *ctx)
{
    return leave(ctx->ret);
}
SEC("tracepoint/syscalls/sys_enter_writev")
int enter_writev(struct trace_event_raw_sys_enter *ctx)
{
    return enter(ctx->args[0], ctx->args[1], 1, 1);
}
SEC("tracepoint/syscalls/sys_exit_writev")
int exit_writev(struct trace_event_raw_sys_exit *ctx)
{
    return leave(ctx->ret);
}

SEC("tracepoint/syscalls/sys_enter_close")
int enter_close(struct trace_event_raw_sys_enter *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id >> 32))
        return 0;
    struct call c = {};
    int fd = ctx->args[0];
    if (stream_socket(fd, &c))
        return 0;
    struct dynobs_ebpf_ev *e = event_new(DYNOBS_EV_CLOSE);
    if (!e)
        return 0;
    e->conn = fd;
    e->src = DYNOBS_SRC_SOCK;
    event_send(e);
    return 0;
}

/* A thread that waits in epoll serves whatever is ready: it is told once,
 * and user space links no outbound call of it to a request (as the shim's
 * loopwait.c). */
static __always_inline int waits(void)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u8 one = 1;
    if (!traced(id >> 32) || bpf_map_lookup_elem(&muxed, &id))
        return 0;
    bpf_map_update_elem(&muxed, &id, &one, BPF_ANY);
    struct dynobs_ebpf_ev *e = event_new(DYNOBS_EV_MUX);
    if (e)
        event_send(e);
    return 0;
}

SEC("tracepoint/syscalls/sys_enter_epoll_wait")
int enter_epoll_wait(struct trace_event_raw_sys_enter *ctx)
{
    return waits();
}
SEC("tracepoint/syscalls/sys_enter_epoll_pwait")
int enter_epoll_pwait(struct trace_event_raw_sys_enter *ctx)
{
    return waits();
}
