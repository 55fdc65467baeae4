/*
 * The shared-memory segment layout, included by every producer (the shim)
 * and every consumer (the reader, the exporter). Only fixed-width types;
 * tests/unit/test_layout.c pins every offset and size below, and any change
 * to them must bump DYNOBS_LAYOUT_VERSION.
 *
 *   offset 0                 struct dynobs_seg_header   (one page, producer)
 *   consumer_offset          struct dynobs_seg_consumer (one page, consumer)
 *   ring_offset              ring data, ring_bytes (a power of two), split
 *                            into ring_shards shards of shard_bytes each
 *   metric_offset            metric_slots x struct dynobs_metric_slot
 *   meta_offset              meta_slots x struct dynobs_metric_meta
 *   window_offset            metric_slots x struct dynobs_metric_window
 *   tmpl_offset              tmpl_slots x struct dynobs_tmpl_slot (layout 4)
 *
 * The consumer maps the whole file read-only and only its own page
 * read-write: that page holds everything a consumer ever writes (each
 * shard's read position, its pid and the time of its last drain); the
 * producer never reads anything there but the read positions.
 *
 * The _Static_asserts at the end hold the sizes and the offsets that the
 * comments give, so a change that moves a field fails to compile here
 * before test_layout.c runs.
 */
#ifndef DYNOBS_COMMON_LAYOUT_H
#define DYNOBS_COMMON_LAYOUT_H

#include <stdint.h>

#define DYNOBS_SEG_MAGIC 0x31474553534f4e59ULL /* "YNOSSEG1" read as LE */
/* 4: span templates (DYNOBS_REC_SPAN_REF and the template table). A
 * consumer of layout 4 reads layout 3 segments too: the same bytes, with
 * no table (tmpl_slots 0, as that space was zero). */
#define DYNOBS_LAYOUT_VERSION 4u
#define DYNOBS_LAYOUT_VERSION_MIN 3u
#define DYNOBS_PAGE 4096u
#define DYNOBS_CACHELINE 64u

/* Bounds that size the fixed arrays below. */
#define DYNOBS_SERVICE_NAME_MAX 256u
#define DYNOBS_RESOURCE_BYTES 2048u
/* Largest record a producer writes or a consumer accepts (header included). */
#define DYNOBS_MAX_RECORD_BYTES 8192u
#define DYNOBS_REC_ALIGN 16u

/* Default and accepted sizes (see README.md for the arithmetic). A ring
 * starts with DYNOBS_RING_START_BYTES allocated (or all of it, when it is
 * smaller) and grows as its backlog needs (ring.h): not a layout matter,
 * consumers see the same records and PAD records either way. */
#define DYNOBS_RING_BYTES_DEFAULT (4u * 1024u * 1024u)
#define DYNOBS_RING_START_BYTES (512u * 1024u)
#define DYNOBS_RING_BYTES_MIN (64u * 1024u)
#define DYNOBS_RING_BYTES_MAX (256u * 1024u * 1024u)
#define DYNOBS_METRIC_SLOTS_DEFAULT 512u
#define DYNOBS_METRIC_SLOTS_MIN 16u
#define DYNOBS_METRIC_SLOTS_MAX 65536u
/* Declared metrics (name, kind, unit, description, bounds), one entry a
 * name, and the time slices kept per series for windowed statistics:
 * 16 slices of one second cover any window up to 15 s exactly to the
 * slice (the slice being written is the 16th). */
#define DYNOBS_META_SLOTS_DEFAULT 128u
#define DYNOBS_META_SLOTS_MIN 16u
#define DYNOBS_META_SLOTS_MAX 4096u
#define DYNOBS_WINDOW_SLICE_MS_DEFAULT 1000u
#define DYNOBS_WINDOW_SLICE_MS_MIN 10u
#define DYNOBS_WINDOW_SLICE_MS_MAX 60000u
#define DYNOBS_WINDOW_SLICES_MAX 16u
#define DYNOBS_WINDOW_SLICES_MIN 2u

/* The ring is split into shards, each with its own head, so that threads
 * on different shards never contend; a thread keeps one shard for life. */
#define DYNOBS_MAX_SHARDS 8u
#define DYNOBS_SHARD_BYTES_MIN (64u * 1024u)

/* Header flags. */
#define DYNOBS_SEG_EXITED 0x1u /* the process ran its exit path */

/* Counters, one set per ring shard (a consumer sums them), updated with
 * relaxed atomic adds by the threads of that shard. METRIC_OVERFLOW took
 * the last word, unused and zero before, so the layout version stayed. */
enum dynobs_counter {
    /* records committed to the ring (a span's counted as its writing
     * starts: ring.h, dynobs__ring_count_written) */
    DYNOBS_CTR_RECORDS_WRITTEN = 0,
    DYNOBS_CTR_RECORDS_DROPPED,     /* records refused: ring full */
    DYNOBS_CTR_RECORDS_TRUNCATED,   /* records that lost attributes/events/bytes */
    DYNOBS_CTR_SPANS_REFUSED,       /* span starts refused: too many open spans */
    DYNOBS_CTR_METRIC_SERIES_REFUSED, /* new series refused: table full */
    DYNOBS_CTR_METRIC_UPDATES_REFUSED, /* updates lost with a refused series */
    DYNOBS_CTR_METRIC_OVERFLOW,   /* updates sent to an overflow series: cardinality cap */
    DYNOBS_CTR_COUNT
};
/* Counter words per shard: the head and these share one cache line. */
#define DYNOBS_SHARD_COUNTERS 7u

struct dynobs_seg_header {
    uint64_t magic;             /*   0: written last, when the rest is valid */
    uint32_t layout_version;    /*   8 */
    uint32_t header_bytes;      /*  12: sizeof(struct dynobs_seg_header) */
    uint64_t total_bytes;       /*  16: the file's size */
    uint64_t consumer_offset;   /*  24 */
    uint64_t ring_offset;       /*  32 */
    uint64_t ring_bytes;        /*  40: power of two */
    uint64_t metric_offset;     /*  48 */
    uint32_t metric_slots;      /*  56: power of two */
    uint32_t metric_slot_bytes; /*  60 */
    int32_t pid;                /*  64 */
    int32_t ppid;               /*  68 */
    uint64_t start_ticks;       /*  72: /proc/PID/stat starttime, with pid names the process */
    uint64_t start_time_ns;     /*  80: wall clock at segment creation */
    uint32_t flags;             /*  88: DYNOBS_SEG_*, atomic */
    uint32_t max_record_bytes;  /*  92 */
    uint64_t config_generation; /*  96: bumped when a new rule set is published */
    uint32_t resource_len;      /* 104: bytes used in resource[] */
    uint16_t resource_count;    /* 108: attributes in resource[] */
    uint16_t service_name_len;  /* 110 */
    uint32_t ring_shards;       /* 112: power of two, <= DYNOBS_MAX_SHARDS */
    uint32_t shard_bytes;       /* 116: ring_bytes / ring_shards */
    uint8_t reserved0[8];       /* 120 */
    char service_name[DYNOBS_SERVICE_NAME_MAX]; /* 128: not NUL-terminated */
    uint8_t resource[DYNOBS_RESOURCE_BYTES];    /* 384: attribute items */
    /* 2432: layout 3, declared metrics and windows (taken from reserved1). */
    uint64_t meta_offset;       /* 2432 */
    uint32_t meta_slots;        /* 2440: power of two */
    uint32_t window_slice_ms;   /* 2444: length of one window slice */
    uint64_t window_offset;     /* 2448: one window per metric slot */
    uint32_t window_slices;     /* 2456: slices kept per window, power of two */
    uint32_t reserved2;         /* 2460 */
    uint64_t declare_conflicts; /* 2464: redeclarations refused, atomic */
    uint64_t declare_refused;   /* 2472: declarations refused: table full */
    /* 2480: layout 4, span templates (DYNOBS_REC_SPAN_REF). */
    uint64_t tmpl_offset;       /* 2480 */
    uint32_t tmpl_slots;        /* 2488: power of two; 0: no table (layout 3) */
    uint32_t tmpl_slot_bytes;   /* 2492: sizeof(struct dynobs_tmpl_slot) */
    uint64_t tmpl_next;         /* 2496: the last template id given out, atomic */
    uint8_t reserved4[56];      /* 2504: (tmpl_next's line is its own) */
    uint8_t reserved1[1024];                    /* 2560 */
    /* 3584: one cache line per ring shard, written by the producers of
     * that shard only, so threads on different shards never share a line. */
    struct dynobs_seg_shard {
        uint64_t head;                          /* next reserve position */
        uint64_t counters[DYNOBS_SHARD_COUNTERS]; /* enum dynobs_counter */
    } shards[DYNOBS_MAX_SHARDS];                /* 3584 */
};                                              /* 4096 */

struct dynobs_seg_consumer {
    struct {
        uint64_t tail;         /* next read position of shard i */
        uint8_t pad[DYNOBS_CACHELINE - 8];
    } shards[DYNOBS_MAX_SHARDS]; /* 0 */
    int32_t consumer_pid;      /* 512: who drains this segment (informational) */
    uint32_t reserved0;
    uint64_t last_drain_ns;    /* 520 */
    /* 528: the generation of the rules table in force (DIR/.rules.<gen>,
     * rules_layout.h), written by the exporter, read by the shim with one
     * relaxed load; 0: no table published, the built-in defaults apply.
     * Space that was unused before, so the layout version stays. */
    uint64_t rules_generation;
};

/* Ring records. Positions are free-running byte counts; a record at
 * position p lives at ring data offset p & (ring_bytes - 1), is 16-byte
 * aligned and never wraps: a producer that would cross the end first
 * writes a PAD record to it. The stamp names the position, so data left
 * over from an earlier lap can never pass for a current record. */
#define DYNOBS_STAMP_RESERVED 0x1u  /* len/type valid, payload being written */
#define DYNOBS_STAMP_COMMITTED 0x2u /* record complete */
#define DYNOBS_STAMP_STATE_MASK 0xfu

enum dynobs_rec_type {
    DYNOBS_REC_PAD = 1,
    DYNOBS_REC_SPAN = 2,
    DYNOBS_REC_LOG = 3, /* a log record: struct dynobs_log_rec */
    /* Layout 4: a span written as a reference to a template: the fixed
     * part (struct dynobs_span_rec) only, its body being the one in
     * template slot template_slot while that slot holds template_id
     * (struct dynobs_tmpl_slot). A consumer hands it on as the
     * DYNOBS_REC_SPAN it stands for, or skips and counts it when the slot
     * has moved on. */
    DYNOBS_REC_SPAN_REF = 4,
};

struct dynobs_rec_hdr {
    uint64_t stamp; /* 0: position | DYNOBS_STAMP_* */
    uint32_t len;   /* 8: whole record, header included, multiple of 16 */
    uint16_t type;  /* 12: enum dynobs_rec_type */
    uint16_t flags; /* 14: DYNOBS_RECF_* */
};

#define DYNOBS_RECF_TRUNCATED 0x1u /* something did not fit and was cut */
/* Tail sampling (rules: keep errors / slow spans): a span of a trace the
 * head sampler did not keep, written only so that the exporter can keep
 * its whole trace if any span of it turns out to be worth keeping. */
#define DYNOBS_RECF_UNSAMPLED 0x2u
/* This span is a reason to keep its trace: an error, or slower than its
 * sampling rule's keep_slower_ms. Set on sampled and unsampled spans. */
#define DYNOBS_RECF_KEEP 0x4u

/* Span record: header, this fixed part, then `body_len` bytes: the name,
 * the status message, the tracestate, then attribute and event items. */
struct dynobs_span_rec {
    uint8_t trace_id[16];      /*  0 */
    uint8_t span_id[8];        /* 16 */
    uint8_t parent_span_id[8]; /* 24: all zero for a root span */
    uint64_t start_ns;         /* 32: wall clock, ns since the epoch */
    uint64_t end_ns;           /* 40 */
    uint32_t tid;              /* 48 */
    uint8_t kind;              /* 52: DYNOBS_SPAN_KIND_* */
    uint8_t status;            /* 53: DYNOBS_STATUS_* */
    uint8_t trace_flags;       /* 54: W3C flags as propagated */
    uint8_t span_flags;        /* 55: DYNOBS_SPANF_* */
    uint16_t name_len;         /* 56 */
    uint16_t status_msg_len;   /* 58 */
    uint16_t tracestate_len;   /* 60 */
    uint16_t attr_count;       /* 62: span attributes in the items */
    uint16_t event_count;      /* 64 */
    uint16_t dropped_attrs;    /* 66 */
    uint16_t dropped_events;   /* 68 */
    uint16_t template_slot;    /* 70: layout 4, DYNOBS_REC_SPAN_REF only, else 0 */
    uint32_t body_len;         /* 72 */
    uint32_t template_id;      /* 76: layout 4, DYNOBS_REC_SPAN_REF only, else 0 */
};

/* Span templates (layout 4). A span body (name and items, without status
 * message or tracestate) that repeats byte for byte, as the server spans
 * of a keep-alive connection whose requests repeat do, is put once into
 * a slot of this table, and the spans that have it are written as
 * DYNOBS_REC_SPAN_REF records of 96 bytes instead of whole. A producer
 * claims an empty slot by swapping its id from DYNOBS_TMPL_EMPTY to
 * DYNOBS_TMPL_WRITING, writes len and body, then stores an id from
 * tmpl_next with release order. A slot is never written again: a
 * reference stays good for the segment's life however late it is read,
 * and a body that finds no free slot (a body has two candidates) is
 * written whole. A consumer reads the id (acquire), len and body, then
 * the id again, and skips and counts a reference that does not match. */
#define DYNOBS_TMPL_SLOTS 128u /* 64 KiB, backed a page at a time as used */
#define DYNOBS_TMPL_BODY_MAX 496u
#define DYNOBS_TMPL_EMPTY 0u
#define DYNOBS_TMPL_WRITING 0xffffffffu
struct dynobs_tmpl_slot {
    uint32_t id;       /* 0: the template's id, DYNOBS_TMPL_EMPTY or _WRITING; atomic */
    uint32_t len;      /* 4: body bytes */
    uint8_t reserved[8];                   /* 8 */
    uint8_t body[DYNOBS_TMPL_BODY_MAX];    /* 16 */
};                                         /* 512 */

/* Log record: header, this fixed part, then the severity text, the body
 * and `items_len` bytes of LOG_ATTR items. */
struct dynobs_log_rec {
    uint8_t trace_id[16];       /*  0: all zero outside a span */
    uint8_t span_id[8];         /* 16 */
    uint64_t time_ns;           /* 24 */
    uint32_t tid;               /* 32 */
    uint8_t severity;           /* 36: OpenTelemetry SeverityNumber, 0-24 */
    uint8_t trace_flags;        /* 37 */
    uint16_t severity_text_len; /* 38 */
    uint32_t body_len;          /* 40 */
    uint16_t attr_count;        /* 44 */
    uint16_t dropped_attrs;     /* 46 */
    uint32_t items_len;         /* 48 */
    uint32_t reserved;          /* 52 */
};                              /* 56 */

#define DYNOBS_SPANF_PARENT_REMOTE 0x1u /* parent came from another process */
#define DYNOBS_SPANF_HAS_PARENT 0x2u

/* Items in a span body. Every item starts with a 4-byte header:
 *   u8 tag, u8 value type (DYNOBS_ATTR_*), u8 key length, u8 flags,
 * followed for attributes by the key, then the value: a u16 length and the
 * bytes for strings, or 8 bytes for int/double/bool. An event item is
 *   u8 tag, u8 0, u8 name length (<= 255), u8 0, u64 time, u16 dropped
 *   attribute count, then the name;
 * its attributes are the EVENT_ATTR items that follow it. */
enum dynobs_item_tag {
    DYNOBS_ITEM_SPAN_ATTR = 1,
    DYNOBS_ITEM_EVENT = 2,
    DYNOBS_ITEM_EVENT_ATTR = 3,
    DYNOBS_ITEM_RESOURCE_ATTR = 4,
    DYNOBS_ITEM_LOG_ATTR = 5,
};
#define DYNOBS_ITEMF_TRUNCATED 0x1u /* the string value was cut */
#define DYNOBS_ITEM_HDR 4u
#define DYNOBS_EVENT_FIXED 10u /* u64 time + u16 dropped attributes */

/* Metric table: open addressing on a hash of name and labels. A slot goes
 * EMPTY -> CLAIMED (one producer won it and writes the key) -> READY. */
#define DYNOBS_SLOT_EMPTY 0u
#define DYNOBS_SLOT_CLAIMED 1u
#define DYNOBS_SLOT_READY 2u
#define DYNOBS_METRIC_KEY_BYTES 288u /* name NUL labels NUL */
#define DYNOBS_METRIC_UNIT_BYTES 16u
#define DYNOBS_METRIC_MAX_BUCKETS 16u /* DYNOBS_HISTOGRAM_MAX_BOUNDS + 1 */

struct dynobs_metric_slot {
    uint32_t state;      /*   0: DYNOBS_SLOT_*, atomic */
    uint8_t kind;        /*   4: DYNOBS_METRIC_* */
    uint8_t nbounds;     /*   5 */
    uint8_t name_len;    /*   6 */
    uint8_t labels_len;  /*   7 */
    uint64_t hash;       /*   8 */
    char unit[DYNOBS_METRIC_UNIT_BYTES]; /* 16: NUL-padded */
    char key[DYNOBS_METRIC_KEY_BYTES];   /* 32: name NUL labels NUL */
    /* 320: values. Doubles are stored as their bit patterns and updated by
     * compare-and-swap; bucket counts by fetch-and-add. A histogram's
     * count is the sum of its buckets. */
    uint64_t value;      /* 320: counter/updown/gauge value, histogram sum */
    uint64_t min;        /* 328: histogram min (bits of a double) */
    uint64_t max;        /* 336: histogram max */
    uint64_t start_ns;   /* 344: wall clock when the series was registered */
    uint64_t buckets[DYNOBS_METRIC_MAX_BUCKETS]; /* 352 */
    double bounds[DYNOBS_METRIC_MAX_BUCKETS - 1]; /* 480 */
    /* 600: the producer's own pointer arithmetic, written before READY
     * and never read by consumers: the distance in bytes from this slot
     * to its window (0: none), so that an update that holds only the
     * slot's address finds the window without the segment at hand. */
    int64_t window_delta;                         /* 600 */
    uint8_t reserved[32];                         /* 608 */
};                                                /* 640 */

/* Declared metrics: open addressing on a hash of the name, entries going
 * EMPTY -> CLAIMED -> READY as metric slots do, written once by the first
 * declaration of a name and immutable after. */
#define DYNOBS_META_NAME_BYTES 128u /* name NUL */
#define DYNOBS_META_DESC_BYTES 256u /* description NUL */

struct dynobs_metric_meta {
    uint32_t state;           /*   0: DYNOBS_SLOT_*, atomic */
    uint8_t kind;             /*   4: DYNOBS_METRIC_* */
    uint8_t name_len;         /*   5: <= 127 */
    uint8_t nbounds;          /*   6: histograms: bounds in use */
    uint8_t reserved0;        /*   7 */
    uint64_t hash;            /*   8: of the name */
    uint16_t description_len; /*  16: <= 255 */
    uint8_t reserved1[6];     /*  18 */
    char unit[DYNOBS_METRIC_UNIT_BYTES];        /*  24: NUL-padded */
    char name[DYNOBS_META_NAME_BYTES];          /*  40: NUL-terminated */
    char description[DYNOBS_META_DESC_BYTES];   /* 168: NUL-terminated */
    double bounds[DYNOBS_METRIC_MAX_BUCKETS - 1]; /* 424 */
    uint8_t reserved[32];                       /* 544 */
};                                              /* 576 */

/* Windows: the statistics of one series per time slice. Slice k of the
 * monotonic clock (k = CLOCK_MONOTONIC / window_slice_ms) lives in entry
 * (k + 1) % window_slices and carries epoch k + 1 (0: never written); the first
 * writer of a new slice claims it by a compare-and-swap of its epoch to
 * (k + 1) | DYNOBS_WINDOW_BUSY, resets the values, then clears the bit.
 * Values are doubles stored as bit patterns, as in a metric slot. */
#define DYNOBS_WINDOW_BUSY (1ull << 63)

struct dynobs_window_slice {
    uint64_t epoch; /*  0: atomic */
    uint64_t count; /*  8 */
    uint64_t sum;   /* 16 */
    uint64_t min;   /* 24 */
    uint64_t max;   /* 32 */
};                  /* 40 */

struct dynobs_metric_window {
    uint32_t slice_ms; /*  0: the header's, set with the slot (0: no windows) */
    uint32_t slices;   /*  4: the header's window_slices */
    /* 8: gauges only, since the series started (a histogram's slot keeps
     * these already). */
    uint64_t count;    /*  8 */
    uint64_t sum;      /* 16 */
    uint64_t min;      /* 24 */
    uint64_t max;      /* 32 */
    uint64_t dropped;  /* 40: updates a busy slice could not take, atomic */
    uint64_t reserved[2]; /* 48 */
    struct dynobs_window_slice slice[DYNOBS_WINDOW_SLICES_MAX]; /* 64 */
};                                                              /* 704 */

#include <stddef.h>
#define DYNOBS_AT(type, field, off) \
    _Static_assert(offsetof(type, field) == (off), #type "." #field " moved")
_Static_assert(sizeof(struct dynobs_seg_header) == DYNOBS_PAGE, "header is one page");
DYNOBS_AT(struct dynobs_seg_header, layout_version, 8);
DYNOBS_AT(struct dynobs_seg_header, ring_offset, 32);
DYNOBS_AT(struct dynobs_seg_header, metric_offset, 48);
DYNOBS_AT(struct dynobs_seg_header, pid, 64);
DYNOBS_AT(struct dynobs_seg_header, flags, 88);
DYNOBS_AT(struct dynobs_seg_header, config_generation, 96);
DYNOBS_AT(struct dynobs_seg_header, ring_shards, 112);
DYNOBS_AT(struct dynobs_seg_header, service_name, 128);
DYNOBS_AT(struct dynobs_seg_header, resource, 384);
DYNOBS_AT(struct dynobs_seg_header, meta_offset, 2432);
DYNOBS_AT(struct dynobs_seg_header, meta_slots, 2440);
DYNOBS_AT(struct dynobs_seg_header, window_slice_ms, 2444);
DYNOBS_AT(struct dynobs_seg_header, window_offset, 2448);
DYNOBS_AT(struct dynobs_seg_header, window_slices, 2456);
DYNOBS_AT(struct dynobs_seg_header, declare_conflicts, 2464);
DYNOBS_AT(struct dynobs_seg_header, declare_refused, 2472);
DYNOBS_AT(struct dynobs_seg_header, shards, 3584);
_Static_assert(sizeof(struct dynobs_seg_shard) == DYNOBS_CACHELINE, "a shard is one line");
_Static_assert(DYNOBS_CTR_COUNT <= DYNOBS_SHARD_COUNTERS, "counters fit the shard line");
_Static_assert(sizeof(struct dynobs_seg_consumer) <= DYNOBS_PAGE, "consumer page");
DYNOBS_AT(struct dynobs_seg_consumer, consumer_pid, 512);
DYNOBS_AT(struct dynobs_seg_consumer, last_drain_ns, 520);
DYNOBS_AT(struct dynobs_seg_consumer, rules_generation, 528);
_Static_assert(sizeof(struct dynobs_rec_hdr) == DYNOBS_REC_ALIGN, "record header");
_Static_assert(sizeof(struct dynobs_span_rec) == 80, "span record");
_Static_assert(sizeof(struct dynobs_tmpl_slot) == 512, "template slot");
DYNOBS_AT(struct dynobs_span_rec, start_ns, 32);
DYNOBS_AT(struct dynobs_span_rec, tid, 48);
DYNOBS_AT(struct dynobs_span_rec, name_len, 56);
DYNOBS_AT(struct dynobs_span_rec, body_len, 72);
_Static_assert(sizeof(struct dynobs_log_rec) == 56, "log record");
DYNOBS_AT(struct dynobs_log_rec, time_ns, 24);
DYNOBS_AT(struct dynobs_log_rec, body_len, 40);
DYNOBS_AT(struct dynobs_log_rec, items_len, 48);
_Static_assert(sizeof(struct dynobs_metric_slot) == 640, "metric slot");
DYNOBS_AT(struct dynobs_metric_slot, hash, 8);
DYNOBS_AT(struct dynobs_metric_slot, key, 32);
DYNOBS_AT(struct dynobs_metric_slot, value, 320);
DYNOBS_AT(struct dynobs_metric_slot, buckets, 352);
DYNOBS_AT(struct dynobs_metric_slot, bounds, 480);
DYNOBS_AT(struct dynobs_metric_slot, window_delta, 600);
_Static_assert(sizeof(struct dynobs_metric_meta) == 576, "metric meta entry");
DYNOBS_AT(struct dynobs_metric_meta, hash, 8);
DYNOBS_AT(struct dynobs_metric_meta, unit, 24);
DYNOBS_AT(struct dynobs_metric_meta, name, 40);
DYNOBS_AT(struct dynobs_metric_meta, description, 168);
DYNOBS_AT(struct dynobs_metric_meta, bounds, 424);
_Static_assert(sizeof(struct dynobs_window_slice) == 40, "window slice");
_Static_assert(sizeof(struct dynobs_metric_window) == 704, "metric window");
DYNOBS_AT(struct dynobs_metric_window, count, 8);
DYNOBS_AT(struct dynobs_metric_window, dropped, 40);
DYNOBS_AT(struct dynobs_metric_window, slice, 64);
#undef DYNOBS_AT

#endif /* DYNOBS_COMMON_LAYOUT_H */
