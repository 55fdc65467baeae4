/* The segment reader (what dynobs-exporter runs on files other processes
 * wrote) on hostile segments: a valid segment, with records in both ring
 * shards and metric series, is made once; each input is a list of
 * (offset, byte) edits applied to a copy of it (4 bytes of offset, 1 of
 * value, repeated), so that mutations reach past the header checks into
 * the rings, the records and the metric table. The copy is written to a
 * file and read as the exporter does: open, every record decoded (span
 * template references among them, resolved from the segment's table), every
 * metric slot, the resource (the file is /dev/shm/dynobs-fuzz-PID.seg,
 * removed at exit). Properties: no crash, no read outside the
 * mapping (AddressSanitizer), and the reading ends. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dynobs/dynobs.h"
#include "metrics.h"
#include "reader.h"
#include "record.h"
#include "resource.h"
#include "ring.h"
#include "segment.h"
#include "fuzz.h"


static uint8_t *tmpl, *copy;
static size_t tmpl_len;
static char path[256];

static void remove_file(void)
{
    unlink(path);
}

static void make_template(void)
{
    char dir[] = "/tmp/dynobs-fuzzseg-XXXXXX";
    CHECK(mkdtemp(dir));
    struct dynobs_resource res;
    dynobs__resource_build(&res, "svc", "team=a%2Cb", "prog");
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 131072, .ring_shards = 2,
                                      .metric_slots = 16, .pid = getpid(),
                                      .start_ticks = dynobs__proc_start_ticks(0), .resource = &res};
    struct dynobs_segment s;
    int rc = dynobs__segment_create(&s, &p);
    if (rc != 0)
        fprintf(stderr, "segment_create: %d\n", rc);
    CHECK(rc == 0);
    for (int i = 0; i < 40; i++) {
        struct dynobs_span_rec f;
        memset(&f, 0, sizeof f);
        f.trace_id[0] = (uint8_t)(i + 1);
        f.span_id[0] = (uint8_t)(i + 1);
        f.kind = 2;
        f.start_ns = 1000;
        f.end_ns = 2000 + (uint64_t)i;
        uint8_t body[256];
        size_t used = 0;
        memcpy(body, "GET /x", 6);
        f.name_len = 6;
        used = 6;
        int64_t v = i;
        used += dynobs__item_put_attr(body + used, sizeof body - used, DYNOBS_ITEM_SPAN_ATTR, "k",
                                      1, DYNOBS_ATTR_INT, &v, 8, 0);
        used += dynobs__item_put_attr(body + used, sizeof body - used, DYNOBS_ITEM_SPAN_ATTR, "s",
                                      1, DYNOBS_ATTR_STRING, "value", 5, 0);
        f.attr_count = 2;
        f.body_len = (uint32_t)used;
        if (i == 0) { /* the body of template 9 in slot 3 (layout.h) */
            s.tmpl[3].len = (uint32_t)used;
            memcpy(s.tmpl[3].body, body, used);
            s.tmpl[3].id = 9;
        }
        if (i % 5 == 4) { /* a reference to it, or (i 9) to a slot never written */
            f.template_slot = i == 9 ? 7 : 3;
            f.template_id = 9;
            f.body_len = (uint32_t)s.tmpl[3].len;
            CHECK(dynobs__ring_write(&s.rings[i % 2], DYNOBS_REC_SPAN_REF, 0, &f, sizeof f, NULL,
                                     0) == 0);
            continue;
        }
        CHECK(dynobs__ring_write(&s.rings[i % 2], DYNOBS_REC_SPAN, 0, &f, sizeof f, body, used) ==
              0);
    }
    struct dynobs_metric_def c = {.name = "requests", .kind = DYNOBS_METRIC_COUNTER};
    struct dynobs_metric_def h = {.name = "latency", .kind = DYNOBS_METRIC_HISTOGRAM};
    CHECK(dynobs__metric_update(&s.metrics, &c, 3, "code=200") == 0);
    CHECK(dynobs__metric_update(&s.metrics, &h, 0.2, NULL) == 0);
    int fd = open(s.path, O_RDONLY);
    CHECK(fd >= 0);
    tmpl_len = (size_t)lseek(fd, 0, SEEK_END);
    tmpl = malloc(tmpl_len);
    copy = malloc(tmpl_len);
    CHECK(pread(fd, tmpl, tmpl_len, 0) == (ssize_t)tmpl_len);
    close(fd);
    unlink(s.path);
    rmdir(dir);
    snprintf(path, sizeof path, "/dev/shm/dynobs-fuzz-%d.seg", (int)getpid());
    atexit(remove_file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!tmpl)
        make_template();
    memcpy(copy, tmpl, tmpl_len);
    size_t len = tmpl_len;
    for (size_t i = 0; i + 5 <= size; i += 5) {
        uint32_t off;
        memcpy(&off, data + i, 4);
        if (off == 0xffffffffu) { /* a truncated file */
            len = data[i + 4] * (tmpl_len / 256);
            continue;
        }
        off %= (uint32_t)tmpl_len;
        /* Most edits land in the header, the first ring pages and the
         * metric table: bias offsets to the first 16 KiB half the time. */
        if (data[i + 4] & 1)
            off %= 16384;
        copy[off] = data[i + 4];
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0);
    CHECK(write(fd, copy, len) == (ssize_t)len);
    close(fd);
    static struct dynobs_reader r;
    if (dynobs__reader_open(&r, path, DYNOBS_READER_CONSUME) == 0) {
        r.stall_timeout_ns = 0;
        const struct dynobs_rec_hdr *h;
        int n = 0;
        for (; n < 100000 && dynobs__reader_next(&r, &h) == 1; n++) {
            struct dynobs_span_view v;
            struct dynobs_log_view lv;
            if (h->type == DYNOBS_REC_SPAN && dynobs__span_decode(h, h->len, &v) == 0) {
                size_t o = 0;
                struct dynobs_item it;
                while (dynobs__item_next(v.items, v.items_len, &o, &it) == 1)
                    ;
            } else if (h->type == DYNOBS_REC_LOG) {
                (void)dynobs__log_decode(h, h->len, &lv);
            }
        }
        CHECK(n < 100000); /* the reading ends */
        for (uint32_t i = 0; i < r.hdr.metric_slots; i++) {
            struct dynobs_metric_view mv;
            (void)dynobs__reader_metric(&r, i, &mv);
        }
        size_t o = 0;
        struct dynobs_item it;
        while (dynobs__reader_resource_next(&r, &o, &it) == 1)
            ;
        dynobs__reader_close(&r);
    }
    return 0;
}
