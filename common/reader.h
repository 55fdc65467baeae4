/*
 * The consumer side of a segment: maps it read-only (plus, when draining,
 * its one consumer page read-write), validates everything it reads, and
 * iterates records and metric series. A corrupt, truncated or hostile
 * segment yields errors, never a crash or an out-of-bounds read.
 *
 * Not thread-safe: one reader per segment per thread.
 */
#ifndef DYNOBS_COMMON_READER_H
#define DYNOBS_COMMON_READER_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "metrics.h"
#include "record.h"
#include "ring.h"

#define DYNOBS_READER_CONSUME 0x1 /* advance the shared read position */

/* A record that stays uncommitted this long while its process lives is
 * taken as abandoned (a producer thread that died mid-write). */
#define DYNOBS_STALL_TIMEOUT_NS (2ull * 1000000000ull)

struct dynobs_reader {
    int fd;
    int flags;
    uint8_t *map;
    size_t size;
    struct dynobs_seg_consumer *consumer; /* RW page when consuming */
    const struct dynobs_seg_header *live; /* for counters and the head */
    struct dynobs_seg_header hdr;         /* validated copy of the header */
    uint32_t nshards;
    uint32_t cursor; /* shard to read next */
    struct dynobs_reader_shard {
        struct dynobs_ring_view ring;
        uint64_t tail;        /* our read position */
        uint64_t stall_pos;   /* position of a record found uncommitted */
        uint64_t stall_since; /* monotonic ns when first found so */
    } shards[DYNOBS_MAX_SHARDS];
    const struct dynobs_metric_slot *slots;
    const struct dynobs_metric_meta *metas;     /* hdr.meta_slots entries */
    const struct dynobs_metric_window *windows; /* one per metric slot */
    const struct dynobs_tmpl_slot *tmpl;        /* hdr.tmpl_slots; NULL in layout 3 */
    uint64_t stall_timeout_ns;
    uint64_t corrupt;   /* records skipped as malformed */
    uint64_t abandoned; /* uncommitted records skipped */
    /* span template references skipped: their slot had moved on to
     * another template by the time they were read (layout.h) */
    uint64_t unresolved;
    char service_name[DYNOBS_SERVICE_NAME_MAX + 1];
    _Alignas(16) uint8_t buf[DYNOBS_MAX_RECORD_BYTES];
};

/* Returns 0, -EAGAIN when the file is not a complete segment yet (no
 * magic), -EPROTO for an unknown layout version, -EBADMSG for a segment
 * that breaks the layout's rules, -ELOOP for a symlink, or another
 * negative errno from open/mmap. */
int dynobs__reader_open(struct dynobs_reader *r, const char *path, int flags)
    __attribute__((warn_unused_result));
void dynobs__reader_close(struct dynobs_reader *r);

/* Next record: 1 with *rec pointing into r->buf (valid until the next
 * call), 0 when none is ready. Malformed records are skipped and counted;
 * an uncommitted record is waited for until its process dies or
 * stall_timeout_ns passes, then skipped and counted. A span written as a
 * template reference (DYNOBS_REC_SPAN_REF) comes out as the whole
 * DYNOBS_REC_SPAN it stands for, or is skipped and counted (unresolved). */
int dynobs__reader_next(struct dynobs_reader *r, const struct dynobs_rec_hdr **rec);

/* Metric series in slot i (0 <= i < hdr.metric_slots): 0, -ENOENT for an
 * empty slot, -EBADMSG for a corrupt one. */
int dynobs__reader_metric(const struct dynobs_reader *r, uint32_t i,
                          struct dynobs_metric_view *v);

/* Declared metrics (dynobs__reader_meta) and windowed statistics
 * (dynobs__reader_window) are in metric_meta.h and metric_window.h. */

/* Resource attributes: iterate the items in hdr.resource. */
int dynobs__reader_resource_next(const struct dynobs_reader *r, size_t *off,
                                 struct dynobs_item *it);

/* A header counter (enum dynobs_counter) summed over the shards, live. */
uint64_t dynobs__reader_counter(const struct dynobs_reader *r, unsigned c);

/* 1 when the process that wrote the segment is still running (same pid
 * and start time), 0 when it is gone. */
int dynobs__reader_producer_alive(const struct dynobs_reader *r);

#endif
