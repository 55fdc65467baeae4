/*
 * The eBPF source's user side (ebpf/http.c, pq.c, emit.c, threads.c) on
 * arbitrary sequences of events: the bytes a traced process reads and
 * writes are anyone's, and the exporter that turns them into spans must
 * never crash or read out of bounds. The kernel side and the process
 * table are replaced by the few lines below (one traced process whose
 * segment lives in a temporary directory). Each input is a list of
 * events: op, flags (direction, source, connection, thread), a 16-bit
 * length, then that many bytes.
 */
#include <linux/types.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct dynobs_ebpf_stats dynobs__ebpf_counts;

void dynobs__ebpf_log(int level, const char *fmt, ...)
{
    (void)level;
    (void)fmt;
}

static struct eproc proc;
static struct dynobs_route_node nodes[256];
static char dir[] = "/tmp/dynobs-fuzz-ebpf-XXXXXX";

struct eproc *dynobs__eproc(int pid, int how)
{
    (void)how;
    return pid == proc.pid ? &proc : NULL;
}

struct dynobs_segment *dynobs__eproc_segment(struct eproc *p)
{
    if (p->seg_ok)
        return &p->seg;
    if (p->seg_tried)
        return NULL;
    p->seg_tried = 1;
    struct dynobs_resource res;
    dynobs__resource_build(&res, "fuzz", NULL, "fuzz");
    struct dynobs_segment_params sp = {.dir = dir, .ring_bytes = 64 * 1024, .ring_shards = 1,
                                       .metric_slots = 64, .pid = getpid(),
                                       .start_ticks = 1, .resource = &res};
    p->seg_ok = dynobs__segment_create(&p->seg, &sp) == 0;
    return p->seg_ok ? &p->seg : NULL;
}

static struct dynobs_ebpf_ev ev;

int LLVMFuzzerTestOneInput(const uint8_t *in, size_t n)
{
    if (!proc.pid) {
        if (!mkdtemp(dir))
            abort();
        proc.pid = 4242;
        proc.state = EPROC_TRACED;
        struct dynobs_route_trie t = DYNOBS_ROUTE_TRIE_INIT(nodes, 256);
        proc.trie = t;
        proc.go = 0;
    }
    uint64_t ts = 1000000000ull;
    size_t i = 0;
    while (i + 4 <= n) {
        uint8_t op = in[i], fl = in[i + 1];
        size_t len = (size_t)in[i + 2] | (size_t)in[i + 3] << 8;
        i += 4;
        if (len > n - i)
            len = n - i;
        if (len > DYNOBS_EBPF_DATA_MAX)
            len = DYNOBS_EBPF_DATA_MAX;
        memset(&ev, 0, offsetof(struct dynobs_ebpf_ev, data));
        memcpy(ev.data, in + i, len);
        i += len;
        ev.pid = (uint32_t)proc.pid;
        ev.tid = 100u + ((fl >> 4) & 3u);
        ev.ts = (ts += 1000 + op);
        ev.conn = (fl >> 2) & 3u;
        ev.dir = fl & 1u;
        ev.src = (fl & 2u) ? DYNOBS_SRC_TLS : DYNOBS_SRC_SOCK;
        ev.cap = (uint32_t)len;
        ev.len = (fl & 0x40u) ? (int64_t)len + op * 1000 : (int64_t)len;
        ev.flags = (fl & 0x80u) ? DYNOBS_EVF_INET : 0;
        size_t size = offsetof(struct dynobs_ebpf_ev, data) + len;
        switch (op % 5) {
        case 0:
            ev.type = DYNOBS_EV_DATA;
            dynobs__http_event(&ev, size);
            break;
        case 1:
            dynobs__http_close(proc.pid, ev.src, ev.conn, ev.ts);
            break;
        case 2:
            ev.type = DYNOBS_EV_PQ_BEGIN;
            ev.aux = 1u + (op / 5u) % 6u;
            dynobs__pq_event(&ev, size);
            break;
        case 3:
            ev.type = (op & 8u) ? DYNOBS_EV_PQ_END : DYNOBS_EV_PQ_RESULT;
            ev.len = (int64_t)(op % 9) - 1;
            ev.aux = op;
            dynobs__pq_event(&ev, size);
            break;
        case 4:
            dynobs__ethread_mux(proc.pid, (int)ev.tid);
            break;
        }
    }
    dynobs__http_forget(proc.pid);
    dynobs__pq_forget(proc.pid);
    dynobs__ethread_forget(proc.pid);
    return 0;
}
