/* Pins the shared-memory layout: producers and consumers built at
 * different times must agree on every offset below. A change here needs
 * a new DYNOBS_LAYOUT_VERSION. */
#include <criterion/criterion.h>
#include <stddef.h>

#include "layout.h"

#define PIN(type, field, off) cr_expect_eq(offsetof(type, field), off, #type "." #field)

Test(layout, version)
{
    cr_assert_eq(DYNOBS_LAYOUT_VERSION, 4);
    cr_assert_eq(DYNOBS_LAYOUT_VERSION_MIN, 3);
    cr_assert_eq(DYNOBS_SEG_MAGIC, 0x31474553534f4e59ULL);
}

Test(layout, segment_header)
{
    typedef struct dynobs_seg_header H;
    cr_assert_eq(sizeof(H), 4096);
    PIN(H, magic, 0);
    PIN(H, layout_version, 8);
    PIN(H, header_bytes, 12);
    PIN(H, total_bytes, 16);
    PIN(H, consumer_offset, 24);
    PIN(H, ring_offset, 32);
    PIN(H, ring_bytes, 40);
    PIN(H, metric_offset, 48);
    PIN(H, metric_slots, 56);
    PIN(H, metric_slot_bytes, 60);
    PIN(H, pid, 64);
    PIN(H, ppid, 68);
    PIN(H, start_ticks, 72);
    PIN(H, start_time_ns, 80);
    PIN(H, flags, 88);
    PIN(H, max_record_bytes, 92);
    PIN(H, config_generation, 96);
    PIN(H, resource_len, 104);
    PIN(H, resource_count, 108);
    PIN(H, service_name_len, 110);
    PIN(H, ring_shards, 112);
    PIN(H, shard_bytes, 116);
    PIN(H, service_name, 128);
    PIN(H, resource, 384);
    PIN(H, meta_offset, 2432);
    PIN(H, meta_slots, 2440);
    PIN(H, window_slice_ms, 2444);
    PIN(H, window_offset, 2448);
    PIN(H, window_slices, 2456);
    PIN(H, declare_conflicts, 2464);
    PIN(H, declare_refused, 2472);
    PIN(H, tmpl_offset, 2480);
    PIN(H, tmpl_slots, 2488);
    PIN(H, tmpl_slot_bytes, 2492);
    PIN(H, tmpl_next, 2496);
    PIN(H, reserved1, 2560);
    PIN(H, shards, 3584);
    PIN(H, shards[0].head, 3584);
    PIN(H, shards[0].counters, 3592);
    PIN(H, shards[1].head, 3648);
    PIN(H, shards[7].head, 4032);
    cr_assert_eq(sizeof(((H *)0)->shards[0]), 64);
    cr_assert_eq(DYNOBS_MAX_SHARDS, 8);
    cr_assert_eq(DYNOBS_SHARD_COUNTERS, 7);
    cr_assert_eq(DYNOBS_CTR_COUNT, 7);
    cr_assert_eq(DYNOBS_CTR_RECORDS_WRITTEN, 0);
    cr_assert_eq(DYNOBS_CTR_RECORDS_DROPPED, 1);
    cr_assert_eq(DYNOBS_CTR_RECORDS_TRUNCATED, 2);
    cr_assert_eq(DYNOBS_CTR_SPANS_REFUSED, 3);
    cr_assert_eq(DYNOBS_CTR_METRIC_SERIES_REFUSED, 4);
    cr_assert_eq(DYNOBS_CTR_METRIC_UPDATES_REFUSED, 5);
    cr_assert_eq(DYNOBS_CTR_METRIC_OVERFLOW, 6);
}

Test(layout, consumer_page)
{
    typedef struct dynobs_seg_consumer C;
    cr_assert_leq(sizeof(C), 4096);
    PIN(C, shards[0].tail, 0);
    PIN(C, shards[1].tail, 64);
    PIN(C, shards[7].tail, 448);
    PIN(C, consumer_pid, 512);
    PIN(C, last_drain_ns, 520);
    PIN(C, rules_generation, 528);
}

Test(layout, records)
{
    typedef struct dynobs_rec_hdr R;
    cr_assert_eq(sizeof(R), 16);
    PIN(R, stamp, 0);
    PIN(R, len, 8);
    PIN(R, type, 12);
    PIN(R, flags, 14);
    typedef struct dynobs_span_rec S;
    cr_assert_eq(sizeof(S), 80);
    PIN(S, trace_id, 0);
    PIN(S, span_id, 16);
    PIN(S, parent_span_id, 24);
    PIN(S, start_ns, 32);
    PIN(S, end_ns, 40);
    PIN(S, tid, 48);
    PIN(S, kind, 52);
    PIN(S, status, 53);
    PIN(S, trace_flags, 54);
    PIN(S, span_flags, 55);
    PIN(S, name_len, 56);
    PIN(S, status_msg_len, 58);
    PIN(S, tracestate_len, 60);
    PIN(S, attr_count, 62);
    PIN(S, event_count, 64);
    PIN(S, dropped_attrs, 66);
    PIN(S, dropped_events, 68);
    PIN(S, template_slot, 70);
    PIN(S, body_len, 72);
    PIN(S, template_id, 76);
    cr_assert_eq(DYNOBS_REC_PAD, 1);
    cr_assert_eq(DYNOBS_REC_SPAN, 2);
    cr_assert_eq(DYNOBS_REC_LOG, 3);
    cr_assert_eq(DYNOBS_REC_SPAN_REF, 4);
    typedef struct dynobs_tmpl_slot T;
    cr_assert_eq(sizeof(T), 512);
    PIN(T, id, 0);
    PIN(T, len, 4);
    PIN(T, body, 16);
    cr_assert_eq(DYNOBS_TMPL_SLOTS, 128);
    cr_assert_eq(DYNOBS_TMPL_BODY_MAX, 496);
    cr_assert_eq(DYNOBS_TMPL_EMPTY, 0);
    cr_assert_eq(DYNOBS_TMPL_WRITING, 0xffffffffu);
    cr_assert_eq(DYNOBS_ITEM_HDR, 4);
    cr_assert_eq(DYNOBS_EVENT_FIXED, 10);
    cr_assert_eq(DYNOBS_MAX_RECORD_BYTES, 8192);
}

Test(layout, log_record)
{
    typedef struct dynobs_log_rec L;
    cr_assert_eq(sizeof(L), 56);
    PIN(L, trace_id, 0);
    PIN(L, span_id, 16);
    PIN(L, time_ns, 24);
    PIN(L, tid, 32);
    PIN(L, severity, 36);
    PIN(L, trace_flags, 37);
    PIN(L, severity_text_len, 38);
    PIN(L, body_len, 40);
    PIN(L, attr_count, 44);
    PIN(L, dropped_attrs, 46);
    PIN(L, items_len, 48);
    cr_assert_eq(DYNOBS_ITEM_LOG_ATTR, 5);
}

Test(layout, metric_slot)
{
    typedef struct dynobs_metric_slot M;
    cr_assert_eq(sizeof(M), 640);
    cr_assert_eq(DYNOBS_METRIC_KEY_BYTES, 288);
    PIN(M, state, 0);
    PIN(M, kind, 4);
    PIN(M, nbounds, 5);
    PIN(M, name_len, 6);
    PIN(M, labels_len, 7);
    PIN(M, hash, 8);
    PIN(M, unit, 16);
    PIN(M, key, 32);
    PIN(M, value, 320);
    PIN(M, min, 328);
    PIN(M, max, 336);
    PIN(M, start_ns, 344);
    PIN(M, buckets, 352);
    PIN(M, bounds, 480);
    PIN(M, window_delta, 600);
}

Test(layout, metric_meta)
{
    typedef struct dynobs_metric_meta E;
    cr_assert_eq(sizeof(E), 576);
    PIN(E, state, 0);
    PIN(E, kind, 4);
    PIN(E, name_len, 5);
    PIN(E, nbounds, 6);
    PIN(E, hash, 8);
    PIN(E, description_len, 16);
    PIN(E, unit, 24);
    PIN(E, name, 40);
    PIN(E, description, 168);
    PIN(E, bounds, 424);
    cr_assert_eq(DYNOBS_META_NAME_BYTES, 128);
    cr_assert_eq(DYNOBS_META_DESC_BYTES, 256);
    cr_assert_eq(DYNOBS_META_SLOTS_DEFAULT, 128);
}

Test(layout, metric_window)
{
    typedef struct dynobs_window_slice S;
    cr_assert_eq(sizeof(S), 40);
    PIN(S, epoch, 0);
    PIN(S, count, 8);
    PIN(S, sum, 16);
    PIN(S, min, 24);
    PIN(S, max, 32);
    typedef struct dynobs_metric_window W;
    cr_assert_eq(sizeof(W), 704);
    PIN(W, slice_ms, 0);
    PIN(W, slices, 4);
    PIN(W, count, 8);
    PIN(W, sum, 16);
    PIN(W, min, 24);
    PIN(W, max, 32);
    PIN(W, dropped, 40);
    PIN(W, slice, 64);
    PIN(W, slice[1], 104);
    cr_assert_eq(DYNOBS_WINDOW_SLICES_MAX, 16);
    cr_assert_eq(DYNOBS_WINDOW_SLICE_MS_DEFAULT, 1000);
    cr_assert_eq(DYNOBS_WINDOW_BUSY, 1ull << 63);
}
