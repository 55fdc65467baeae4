/*
 * Creating a process's segment (producer side) and the geometry both
 * sides agree on.
 *
 * A segment is a file "<pid>-<start ticks>.seg" in the segment directory
 * (default /dev/shm/dynobs, sticky and world-writable like /tmp), mode
 * 0600. It is built under a hidden temporary name and renamed into place
 * once complete, so a consumer never sees a half-made segment. Its pages
 * are allocated up front with fallocate: on a full tmpfs, creation fails
 * cleanly instead of a later write faulting inside the service. The ring
 * may start smaller than its size (ring_start_bytes) and grow, each step
 * allocated before it is written (ring.h).
 */
#ifndef DYNOBS_COMMON_SEGMENT_H
#define DYNOBS_COMMON_SEGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "metrics.h"
#include "resource.h"
#include "ring.h"

struct dynobs_geometry {
    uint64_t consumer_offset, ring_offset, ring_bytes, metric_offset, total_bytes;
    uint32_t metric_slots, ring_shards, shard_bytes;
    uint64_t meta_offset, window_offset; /* layout 3 */
    uint32_t meta_slots;
    uint64_t window_end;  /* where layout 3 ended */
    uint64_t tmpl_offset; /* layout 4: DYNOBS_TMPL_SLOTS span templates, page-aligned */
};

/* The offsets of a segment: the metric table after the ring, then the
 * declared metrics, one window per metric slot, and the span templates. */
void dynobs__geometry(uint64_t ring_bytes, uint32_t shards, uint32_t metric_slots,
                      uint32_t meta_slots, struct dynobs_geometry *g);

/* Shards for a ring: one per online CPU (rounded up to a power of two),
 * at most DYNOBS_MAX_SHARDS, each at least DYNOBS_SHARD_BYTES_MIN. */
uint32_t dynobs__default_shards(uint64_t ring_bytes);

struct dynobs_segment {
    uint8_t *base;
    size_t size;
    struct dynobs_seg_header *hdr;
    uint32_t nshards;
    struct dynobs_ring rings[DYNOBS_MAX_SHARDS];
    /* How much of each shard is backed (ring.h); whole when the segment
     * was made with ring_start_bytes 0. */
    struct dynobs_ring_room room[DYNOBS_MAX_SHARDS];
    struct dynobs_tmpl_slot *tmpl; /* DYNOBS_TMPL_SLOTS of them */
    /* The table's pages this process has backed (bit i: page i; the file
     * holds a hole there until then, which must not be touched). */
    uint32_t tmpl_backed;
    /* After the fields above, which a span's record reads, and with its
     * own hot words first (its per-name counts last): a request's record
     * and metric read one page of this struct, not two. */
    struct dynobs_metric_table metrics;
    char path[512];
};

struct dynobs_segment_params {
    const char *dir;
    uint64_t ring_bytes;   /* power of two */
    /* Ring bytes allocated at creation, split over the shards (each gets
     * at least DYNOBS_SHARD_BYTES_MIN); the shards grow from there (ring.h,
     * struct dynobs_ring_room). 0, or at least ring_bytes: all of it. */
    uint64_t ring_start_bytes;
    uint32_t ring_shards;  /* power of two; 0 picks dynobs__default_shards */
    uint32_t metric_slots; /* power of two */
    /* Declared metrics (power of two) and window slices: 0 for the
     * defaults (layout.h). */
    uint32_t meta_slots;
    uint32_t window_slice_ms, window_slices;
    int pid, ppid;
    uint64_t start_ticks;
    const struct dynobs_resource *resource;
};

/* Returns 0 or a negative errno; on failure nothing is left behind. Uses
 * only system calls, so it may run in any context, signal handlers too. */
int dynobs__segment_create(struct dynobs_segment *s, const struct dynobs_segment_params *p)
    __attribute__((warn_unused_result));

/* The room of ring r, one of s->rings. */
static inline struct dynobs_ring_room *dynobs__ring_room(struct dynobs_segment *s,
                                                         const struct dynobs_ring *r)
{
    return &s->room[r - s->rings];
}

/* Unmaps without touching the file (a forked child letting go of its
 * parent's segment). */
void dynobs__segment_detach(struct dynobs_segment *s);

/* Field 22 of /proc/PID/stat (0 for self), or 0 when unreadable. Together
 * with the pid it names one process for the life of the system. */
uint64_t dynobs__proc_start_ticks(int pid);

/* Formats "<pid>-<ticks>.seg" into buf; returns the length or -ERANGE. */
int dynobs__segment_name(char *buf, size_t len, int pid, uint64_t ticks);

#endif
