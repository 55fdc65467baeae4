// SPDX-License-Identifier: GPL-2.0
/*
 * Which processes are traced: those the loader names (--pid, and the
 * processes of an --exe found running), every process that starts one of
 * the --exe executables (matched by inode at exec, so none is missed
 * between its start and the first look from user space), and the
 * processes a traced one forks (a server's workers). A traced process
 * that runs another program, or ends, leaves the set.
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* The --exe executables by inode. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 64);
    __type(key, struct dynobs_ebpf_exe);
    __type(value, __u32);
} exes SEC(".maps");

/* Process events wake the reader at once (they are rare): it looks at a
 * process that just started before the process can have ended. */
static __always_inline void tell(__u32 type, __u32 pid)
{
    struct dynobs_ebpf_ev *e = event_new(type);
    if (!e)
        return;
    e->pid = pid;
    if (bpf_ringbuf_output(&events, e, __builtin_offsetof(struct dynobs_ebpf_ev, data), BPF_RB_FORCE_WAKEUP))
        count(DYNOBS_EBPF_LOST_RINGBUF);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    struct dynobs_ebpf_exe k = {};
    struct inode *ino = BPF_CORE_READ(bprm, file, f_inode);
    k.ino = BPF_CORE_READ(ino, i_ino);
    k.dev = BPF_CORE_READ(ino, i_sb, s_dev);
    __u32 tgid = BPF_CORE_READ(p, tgid), one = 1;
    if (bpf_map_lookup_elem(&exes, &k)) {
        bpf_map_update_elem(&targets, &tgid, &one, BPF_ANY);
        tell(DYNOBS_EV_EXEC, tgid);
    } else if (traced(tgid)) {
        bpf_map_delete_elem(&targets, &tgid);
        tell(DYNOBS_EV_EXIT, tgid);
    }
    return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
    __u32 ptgid = BPF_CORE_READ(parent, tgid), ctgid = BPF_CORE_READ(child, tgid), one = 1;
    /* a new thread shares its thread group: only new processes count */
    if (ctgid == ptgid || !traced(ptgid))
        return 0;
    bpf_map_update_elem(&targets, &ctgid, &one, BPF_ANY);
    tell(DYNOBS_EV_FORK, ctgid);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
    __u32 pid = BPF_CORE_READ(p, pid), tgid = BPF_CORE_READ(p, tgid);
    if (pid != tgid || !traced(tgid))
        return 0;
    bpf_map_delete_elem(&targets, &tgid);
    tell(DYNOBS_EV_EXIT, tgid);
    return 0;
}
