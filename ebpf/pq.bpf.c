// SPDX-License-Identifier: GPL-2.0
/*
 * libpq's statements: uprobes on the calls that send one (PQexec,
 * PQexecParams, PQprepare, PQexecPrepared and their PQsend* forms) and
 * on PQgetResult. The synchronous calls are made of the asynchronous ones
 * inside libpq, whose probes fire too: while a thread is inside a
 * synchronous call those are ignored, and the call's own return gives
 * its result. A result's status and row count are read from the PGresult
 * (ntups at offset 0, resultStatus at 40: libpq's struct pg_result, the
 * same from PostgreSQL 7.4 to 17; checked against libpq-int.h by the
 * ebpf_pq_layout test).
 */
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "maps.bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define PGRESULT_NTUPS 0
#define PGRESULT_STATUS 40

struct call {
    __u64 conn;
    __u32 depth;
};

/* thread -> the synchronous call it is in */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, struct call);
} calls SEC(".maps");

/* thread -> the connection of its PQgetResult in progress */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, __u64);
    __type(value, __u64);
} getresult SEC(".maps");

/* Copies a NUL-terminated string into data at off; returns the new end
 * (past the NUL). */
static __always_inline __u32 put_str(struct dynobs_ebpf_ev *e, __u32 off, const char *s)
{
    if (!s || off >= DYNOBS_EBPF_QUERY_MAX)
        return off;
    long n = bpf_probe_read_user_str(e->data + (off & (DYNOBS_EBPF_QUERY_MAX - 1)),
                                     DYNOBS_EBPF_QUERY_MAX, s);
    if (n <= 0)
        return off;
    if (n == DYNOBS_EBPF_QUERY_MAX)
        e->flags |= DYNOBS_EVF_CUT;
    return off + (__u32)n;
}

static __always_inline int begin(void *conn, __u64 op, const char *a, const char *b, int sync)
{
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id >> 32))
        return 0;
    struct call *in = bpf_map_lookup_elem(&calls, &id);
    if (in) {
        /* the async half of a synchronous call already announced */
        if (sync)
            in->depth++;
        return 0;
    }
    if (sync) {
        struct call c = {.conn = (__u64)conn, .depth = 1};
        if (bpf_map_update_elem(&calls, &id, &c, BPF_ANY)) {
            count(DYNOBS_EBPF_LOST_ARGS);
            return 0;
        }
    }
    struct dynobs_ebpf_ev *e = event_new(DYNOBS_EV_PQ_BEGIN);
    if (!e)
        return 0;
    e->conn = (__u64)conn;
    e->aux = op;
    __u32 n = put_str(e, 0, a);
    if (b) {
        if (!n)
            e->data[n++] = 0;
        n = put_str(e, n, b);
    }
    e->cap = n;
    event_send(e);
    return 0;
}

static __always_inline void result_of(struct dynobs_ebpf_ev *e, const void *res)
{
    int st = -1, rows = 0;
    if (res) {
        bpf_probe_read_user(&st, sizeof st, (const char *)res + PGRESULT_STATUS);
        bpf_probe_read_user(&rows, sizeof rows, (const char *)res + PGRESULT_NTUPS);
    }
    e->len = st;
    e->aux = (__u64)rows;
}

/* A synchronous call returned: its result ends the statement. */
static __always_inline int end(const void *res)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct call *in = bpf_map_lookup_elem(&calls, &id);
    if (!in)
        return 0;
    if (in->depth > 1) {
        in->depth--;
        return 0;
    }
    __u64 conn = in->conn;
    bpf_map_delete_elem(&calls, &id);
    struct dynobs_ebpf_ev *e = event_new(DYNOBS_EV_PQ_END);
    if (!e)
        return 0;
    e->conn = conn;
    result_of(e, res);
    event_send(e);
    return 0;
}

SEC("uprobe")
int BPF_KPROBE(pq_exec, void *conn, const char *query)
{
    return begin(conn, DYNOBS_PQ_EXEC, query, 0, 1);
}
SEC("uprobe")
int BPF_KPROBE(pq_prepare, void *conn, const char *name, const char *query)
{
    return begin(conn, DYNOBS_PQ_PREPARE, name, query, 1);
}
SEC("uprobe")
int BPF_KPROBE(pq_exec_prepared, void *conn, const char *name)
{
    return begin(conn, DYNOBS_PQ_EXEC_PREPARED, name, 0, 1);
}
SEC("uprobe")
int BPF_KPROBE(pq_send, void *conn, const char *query)
{
    return begin(conn, DYNOBS_PQ_SEND, query, 0, 0);
}
SEC("uprobe")
int BPF_KPROBE(pq_send_prepare, void *conn, const char *name, const char *query)
{
    return begin(conn, DYNOBS_PQ_SEND_PREPARE, name, query, 0);
}
SEC("uprobe")
int BPF_KPROBE(pq_send_prepared, void *conn, const char *name)
{
    return begin(conn, DYNOBS_PQ_SEND_PREPARED, name, 0, 0);
}
SEC("uretprobe")
int BPF_KRETPROBE(pq_sync_leave, void *res)
{
    return end(res);
}

SEC("uprobe")
int BPF_KPROBE(pq_getresult_enter, void *conn)
{
    __u64 id = bpf_get_current_pid_tgid();
    if (!traced(id >> 32) || bpf_map_lookup_elem(&calls, &id))
        return 0;
    __u64 c = (__u64)conn;
    if (bpf_map_update_elem(&getresult, &id, &c, BPF_ANY))
        count(DYNOBS_EBPF_LOST_ARGS);
    return 0;
}
SEC("uretprobe")
int BPF_KRETPROBE(pq_getresult_leave, void *res)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u64 *c = bpf_map_lookup_elem(&getresult, &id);
    if (!c)
        return 0;
    __u64 conn = *c;
    bpf_map_delete_elem(&getresult, &id);
    struct dynobs_ebpf_ev *e = event_new(DYNOBS_EV_PQ_RESULT);
    if (!e)
        return 0;
    e->conn = conn;
    result_of(e, res);
    event_send(e);
    return 0;
}
