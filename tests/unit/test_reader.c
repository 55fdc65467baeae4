/* The reader treats a segment as hostile input: garbage, truncation and
 * random corruption give errors, never a crash or an out-of-bounds read
 * (this file also runs under AddressSanitizer). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dynobs/dynobs.h"
#include "reader.h"
#include "record.h"
#include "resource.h"
#include "segment.h"
#include "testutil.h"

static char *dir;

static void setup(void)
{
    dir = tu_tmpdir();
}

static void teardown(void)
{
    tu_rmtree(dir);
    free(dir);
}

/* Writes a valid span record with a name and n string attributes. */
static void put_span(struct dynobs_ring *r, const char *name, int n)
{
    uint8_t body[2048];
    struct dynobs_span_rec f;
    tu_span_rec(&f, name, DYNOBS_SPAN_KIND_SERVER);
    memcpy(body, name, f.name_len);
    size_t used = f.name_len;
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "key%d", i);
        used += dynobs__item_put_attr(body + used, sizeof body - used, DYNOBS_ITEM_SPAN_ATTR, k,
                                      strlen(k), DYNOBS_ATTR_STRING, "value", 5, 0);
    }
    used += dynobs__item_put_event(body + used, sizeof body - used, "ev", 2, 1500);
    int64_t x = 7;
    used += dynobs__item_put_attr(body + used, sizeof body - used, DYNOBS_ITEM_EVENT_ATTR, "x", 1,
                                  DYNOBS_ATTR_INT, &x, 8, 0);
    f.attr_count = (uint16_t)n;
    f.event_count = 1;
    f.body_len = (uint32_t)used;
    cr_assert_eq(dynobs__ring_write(r, DYNOBS_REC_SPAN, 0, &f, sizeof f, body, used), 0);
}

static void make_segment(struct dynobs_segment *s, int spans)
{
    struct dynobs_resource res;
    dynobs__resource_build(&res, "svc", "deployment.environment=test,team=a%2Cb", "prog");
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 131072, .ring_shards = 2,
                                      .metric_slots = 16, .pid = getpid(),
                                      .start_ticks = dynobs__proc_start_ticks(0), .resource = &res};
    cr_assert_eq(dynobs__segment_create(s, &p), 0);
    cr_assert_eq(s->nshards, 2);
    /* Records go to both shards, as two threads' records would. */
    for (int i = 0; i < spans; i++)
        put_span(&s->rings[i % 2], "GET /users", i % 5);
    struct dynobs_metric_def c = {.name = "requests", .kind = DYNOBS_METRIC_COUNTER};
    cr_assert_eq(dynobs__metric_update(&s->metrics, &c, 3, "code=200"), 0);
}

/* Reads everything a reader offers; returns the number of valid spans. */
static int drain(const char *path, int *open_rc)
{
    struct dynobs_reader *r = malloc(sizeof *r);
    *open_rc = dynobs__reader_open(r, path, 0);
    if (*open_rc < 0) {
        free(r);
        return 0;
    }
    r->stall_timeout_ns = 0;
    int n = 0;
    const struct dynobs_rec_hdr *h;
    for (int guard = 0; guard < 10000 && dynobs__reader_next(r, &h) == 1; guard++) {
        struct dynobs_span_view v;
        if (h->type == DYNOBS_REC_SPAN && dynobs__span_decode(h, h->len, &v) == 0) {
            size_t off = 0;
            struct dynobs_item it;
            while (dynobs__item_next(v.items, v.items_len, &off, &it) == 1)
                ;
            n++;
        }
    }
    for (uint32_t i = 0; i < r->hdr.metric_slots; i++) {
        struct dynobs_metric_view mv;
        dynobs__reader_metric(r, i, &mv);
    }
    size_t off = 0;
    struct dynobs_item it;
    while (dynobs__reader_resource_next(r, &off, &it) == 1)
        ;
    dynobs__reader_close(r);
    free(r);
    return n;
}

TestSuite(reader, .init = setup, .fini = teardown);

Test(reader, reads_back_what_was_written)
{
    struct dynobs_segment s;
    make_segment(&s, 10);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, s.path, DYNOBS_READER_CONSUME), 0);
    cr_assert_str_eq(r->service_name, "svc");
    cr_assert_eq(r->hdr.pid, getpid());
    /* Resource attributes, percent-decoded. */
    size_t off = 0;
    struct dynobs_item it;
    int seen = 0;
    while (dynobs__reader_resource_next(r, &off, &it) == 1) {
        if (it.key_len == 4 && !memcmp(it.key, "team", 4)) {
            cr_assert_eq(it.str_len, 3);
            cr_assert_eq(memcmp(it.str, "a,b", 3), 0);
            seen++;
        }
    }
    cr_assert_eq(seen, 1);
    const struct dynobs_rec_hdr *h;
    int n = 0, attrs_seen[5] = {0};
    while (dynobs__reader_next(r, &h) == 1) {
        struct dynobs_span_view v;
        cr_assert_eq(dynobs__span_decode(h, h->len, &v), 0);
        cr_assert_eq(v.f.name_len, 10);
        cr_assert_eq(memcmp(v.name, "GET /users", 10), 0);
        cr_assert_lt(v.f.attr_count, 5);
        attrs_seen[v.f.attr_count]++;
        n++;
    }
    cr_assert_eq(n, 10);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(attrs_seen[i], 2);
    /* The consumer's position is shared: a second reader starts after. */
    for (uint32_t i = 0; i < s.nshards; i++)
        cr_assert_eq(__atomic_load_n(&((struct dynobs_seg_consumer *)(s.base + DYNOBS_PAGE))
                                          ->shards[i].tail,
                                     __ATOMIC_RELAXED),
                     s.hdr->shards[i].head);
    int rc;
    cr_assert_eq(drain(s.path, &rc), 0);
    cr_assert_eq(rc, 0);
    struct dynobs_metric_view mv;
    int found = 0;
    for (uint32_t i = 0; i < r->hdr.metric_slots; i++)
        if (dynobs__reader_metric(r, i, &mv) == 0) {
            cr_assert_str_eq(mv.name, "requests");
            cr_assert_str_eq(mv.labels, "code=200");
            cr_assert_float_eq(mv.value, 3.0, 0);
            found++;
        }
    cr_assert_eq(found, 1);
    cr_assert_eq(dynobs__reader_counter(r, DYNOBS_CTR_RECORDS_WRITTEN), 10);
    dynobs__reader_close(r);
    free(r);
    struct stat st;
    cr_assert_eq(stat(s.path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    cr_assert_eq(stat(dir, &st), 0);
}

/* Puts body b into template slot i of s under id, as a producer does. */
static void put_template(struct dynobs_segment *s, uint32_t i, uint32_t id, const uint8_t *b,
                         uint32_t n)
{
    s->tmpl[i].len = n;
    memcpy(s->tmpl[i].body, b, n);
    __atomic_store_n(&s->tmpl[i].id, id, __ATOMIC_RELEASE);
}

/* Writes a reference to template (slot, id) for a span whose body has
 * body_len bytes, with span id byte sid. */
static void put_ref(struct dynobs_ring *r, uint16_t slot, uint32_t id, uint32_t body_len,
                    uint16_t name_len, uint8_t sid)
{
    struct dynobs_span_rec f;
    tu_span_rec(&f, "", DYNOBS_SPAN_KIND_SERVER);
    memset(f.span_id, sid, 8);
    f.name_len = name_len;
    f.attr_count = 1;
    f.body_len = body_len;
    f.template_slot = slot;
    f.template_id = id;
    cr_assert_eq(dynobs__ring_write(r, DYNOBS_REC_SPAN_REF, 0, &f, sizeof f, NULL, 0), 0);
}

Test(reader, template_references_come_out_whole_or_counted)
{
    struct dynobs_segment s;
    make_segment(&s, 0);
    cr_assert_not_null(s.tmpl);
    cr_assert_eq(s.hdr->tmpl_slots, DYNOBS_TMPL_SLOTS);
    /* A body: the name, then one attribute. */
    uint8_t body[128];
    memcpy(body, "GET /a", 6);
    size_t n = 6 + dynobs__item_put_attr(body + 6, sizeof body - 6, DYNOBS_ITEM_SPAN_ATTR,
                                         "url.path", 8, DYNOBS_ATTR_STRING, "/a", 2, 0);
    put_template(&s, 5, 77, body, (uint32_t)n);
    put_ref(&s.rings[0], 5, 77, (uint32_t)n, 6, 1);   /* resolves */
    put_ref(&s.rings[0], 5, 78, (uint32_t)n, 6, 2);   /* another id: the slot moved on */
    put_ref(&s.rings[0], 5, 77, (uint32_t)n + 1, 6, 3); /* another length */
    put_ref(&s.rings[0], DYNOBS_TMPL_SLOTS, 77, (uint32_t)n, 6, 4); /* no such slot */
    put_ref(&s.rings[0], 6, DYNOBS_TMPL_EMPTY, 0, 0, 5); /* an empty slot's id */
    put_ref(&s.rings[1], 5, 77, (uint32_t)n, 6, 6);   /* another shard: the table is one */
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, s.path, DYNOBS_READER_CONSUME), 0);
    const struct dynobs_rec_hdr *h;
    int got = 0;
    while (dynobs__reader_next(r, &h) == 1) {
        cr_assert_eq(h->type, DYNOBS_REC_SPAN);
        struct dynobs_span_view v;
        cr_assert_eq(dynobs__span_decode(h, h->len, &v), 0);
        cr_assert(v.f.span_id[0] == 1 || v.f.span_id[0] == 6, "span %d", v.f.span_id[0]);
        cr_assert_eq(v.f.name_len, 6);
        cr_assert_eq(memcmp(v.name, "GET /a", 6), 0);
        cr_assert_eq(v.items_len, n - 6);
        cr_assert_eq(memcmp(v.items, body + 6, n - 6), 0);
        /* Handed on as any span record: no trace of the template. */
        cr_assert_eq(v.f.template_slot, 0);
        cr_assert_eq(v.f.template_id, 0);
        cr_assert_eq(h->len % DYNOBS_REC_ALIGN, 0);
        got++;
    }
    cr_assert_eq(got, 2);
    cr_assert_eq(r->unresolved, 4);
    cr_assert_eq(r->corrupt, 0);
    /* A slot being written, or written again after the reference (which
     * a producer never does: layout.h), leaves the reference unresolved. */
    put_ref(&s.rings[0], 5, 77, (uint32_t)n, 6, 7);
    __atomic_store_n(&s.tmpl[5].id, DYNOBS_TMPL_WRITING, __ATOMIC_RELEASE);
    cr_assert_eq(dynobs__reader_next(r, &h), 0);
    put_ref(&s.rings[0], 5, 77, (uint32_t)n, 6, 8);
    body[0] = 'P';
    put_template(&s, 5, 79, body, (uint32_t)n);
    cr_assert_eq(dynobs__reader_next(r, &h), 0);
    cr_assert_eq(r->unresolved, 6);
    dynobs__reader_close(r);
    free(r);
}

Test(reader, reads_layout_3_segments)
{
    /* Layout 3: the same file without the template table. */
    struct dynobs_segment s;
    make_segment(&s, 4);
    put_ref(&s.rings[0], 0, 1, 6, 6, 9);
    s.hdr->layout_version = 3;
    uint64_t end = s.hdr->window_offset +
                   (uint64_t)s.hdr->metric_slots * sizeof(struct dynobs_metric_window);
    s.hdr->tmpl_offset = 0;
    s.hdr->tmpl_slots = 0;
    s.hdr->tmpl_slot_bytes = 0;
    s.hdr->total_bytes = end;
    cr_assert_eq(truncate(s.path, (off_t)end), 0);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, s.path, 0), 0);
    cr_assert_null(r->tmpl);
    const struct dynobs_rec_hdr *h;
    int got = 0;
    while (dynobs__reader_next(r, &h) == 1)
        got++;
    cr_assert_eq(got, 4);
    cr_assert_eq(r->unresolved, 1);
    dynobs__reader_close(r);
    /* A layout 3 header that names a table, or a layout 4 one without,
     * is refused. */
    s.hdr->tmpl_slots = DYNOBS_TMPL_SLOTS;
    cr_assert_eq(dynobs__reader_open(r, s.path, 0), -EBADMSG);
    s.hdr->tmpl_slots = 0;
    s.hdr->layout_version = 4;
    cr_assert_eq(dynobs__reader_open(r, s.path, 0), -EBADMSG);
    s.hdr->layout_version = 2;
    cr_assert_eq(dynobs__reader_open(r, s.path, 0), -EPROTO);
    free(r);
}

Test(reader, refuses_symlinks_and_odd_files)
{
    struct dynobs_segment s;
    make_segment(&s, 1);
    char link[600];
    snprintf(link, sizeof link, "%s/link.seg", dir);
    cr_assert_eq(symlink(s.path, link), 0);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, link, 0), -ELOOP);
    cr_assert_eq(dynobs__reader_open(r, dir, 0), -EBADMSG); /* a directory */
    cr_assert_eq(dynobs__reader_open(r, "/nonexistent/x.seg", 0), -ENOENT);
    cr_assert_eq(dynobs__reader_open(r, NULL, 0), -EINVAL);
    free(r);
}

static void copy_file(const char *from, const char *to, size_t len)
{
    int in = open(from, O_RDONLY), out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert(in >= 0 && out >= 0);
    static char buf[1 << 16];
    ssize_t n;
    size_t total = 0;
    while (total < len && (n = read(in, buf, sizeof buf)) > 0) {
        size_t w = (size_t)n < len - total ? (size_t)n : len - total;
        cr_assert_eq(write(out, buf, w), (ssize_t)w);
        total += w;
    }
    close(in);
    close(out);
}

Test(reader, header_checks)
{
    struct dynobs_segment s;
    make_segment(&s, 3);
    char path[600];
    snprintf(path, sizeof path, "%s/copy.seg", dir);
    struct {
        size_t off;
        uint64_t val;
        int size;
        int expect;
    } cases[] = {
        {0, 0, 8, -EAGAIN},                     /* magic not yet written */
        {8, 99, 4, -EPROTO},                    /* unknown layout version */
        {12, 4095, 4, -EBADMSG},                /* header size */
        {16, 1, 8, -EBADMSG},                   /* total size */
        {32, 4096, 8, -EBADMSG},                /* ring offset */
        {40, 65536 + 16, 8, -EBADMSG},          /* ring size not a power of two */
        {40, 1u << 30, 8, -EBADMSG},            /* ring larger than the file */
        {56, 17, 4, -EBADMSG},                  /* slots not a power of two */
        {112, 3, 4, -EBADMSG},                  /* shards not a power of two */
        {112, 16, 4, -EBADMSG},                 /* too many shards */
        {112, 4, 4, -EBADMSG},                  /* shards x shard size != ring */
        {116, 4096, 4, -EBADMSG},               /* shard smaller than allowed */
        {60, 256, 4, -EBADMSG},                 /* slot size */
        {92, 1u << 20, 4, -EBADMSG},            /* max record */
        {104, 5000, 4, -EBADMSG},               /* resource length */
        {108, 77, 2, -EBADMSG},                 /* resource count */
        {110, 4000, 2, -EBADMSG},               /* service name length */
        {384, 0x99, 1, -EBADMSG},               /* resource item tag */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        copy_file(s.path, path, s.size);
        int fd = open(path, O_WRONLY);
        cr_assert_eq(pwrite(fd, &cases[i].val, (size_t)cases[i].size, (off_t)cases[i].off),
                     cases[i].size);
        close(fd);
        int rc;
        drain(path, &rc);
        cr_expect_eq(rc, cases[i].expect, "case %zu: got %d", i, rc);
    }
}

Test(reader, truncated_segments)
{
    struct dynobs_segment s;
    make_segment(&s, 20);
    char path[600];
    snprintf(path, sizeof path, "%s/trunc.seg", dir);
    size_t sizes[] = {0, 1, 7, 100, 4095, 4096, 8191, 8192, 8193, 40000, s.size - 512, s.size - 1};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        copy_file(s.path, path, sizes[i]);
        int rc;
        cr_assert_eq(drain(path, &rc), 0);
        cr_expect_lt(rc, 0, "size %zu opened", sizes[i]);
    }
    copy_file(s.path, path, s.size);
    int rc;
    cr_assert_eq(drain(path, &rc), 20);
    cr_assert_eq(rc, 0);
}

Test(reader, random_garbage_files, .timeout = 120)
{
    char path[600];
    snprintf(path, sizeof path, "%s/garbage.seg", dir);
    srand(12345);
    static uint8_t buf[200000];
    for (int iter = 0; iter < 300; iter++) {
        size_t len = (size_t)rand() % sizeof buf;
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)rand();
        if (iter % 2) { /* a plausible magic and version, garbage after */
            uint64_t m = DYNOBS_SEG_MAGIC;
            uint32_t v = DYNOBS_LAYOUT_VERSION;
            if (len >= 12) {
                memcpy(buf, &m, 8);
                memcpy(buf + 8, &v, 4);
            }
        }
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        cr_assert_eq(write(fd, buf, len), (ssize_t)len);
        close(fd);
        int rc;
        cr_assert_eq(drain(path, &rc), 0);
        cr_assert_lt(rc, 0);
    }
}

Test(reader, random_corruption_of_a_valid_segment, .timeout = 300)
{
    struct dynobs_segment s;
    make_segment(&s, 200);
    /* Keep a pristine copy, then corrupt bytes in the header, the ring
     * and the metric table of a copy, many times over. */
    size_t size = s.size;
    uint8_t *orig = malloc(size);
    memcpy(orig, s.base, size);
    char path[600];
    snprintf(path, sizeof path, "%s/fuzz.seg", dir);
    srand(777);
    int opened = 0, total_spans = 0;
    for (int iter = 0; iter < 400; iter++) {
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        cr_assert_eq(write(fd, orig, size), (ssize_t)size);
        int flips = 1 + rand() % 16;
        for (int k = 0; k < flips; k++) {
            size_t off;
            int where = rand() % 4;
            if (where == 0)
                off = (size_t)rand() % 4096; /* header */
            else if (where == 3)
                off = s.hdr->metric_offset + (size_t)rand() % (size - s.hdr->metric_offset);
            else /* the ring, where the records are */
                off = s.hdr->ring_offset + (size_t)rand() % s.hdr->ring_bytes;
            uint8_t b = (uint8_t)rand();
            cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
        }
        close(fd);
        int rc;
        total_spans += drain(path, &rc);
        opened += rc == 0;
    }
    /* Most corruptions leave the header readable; the test must have
     * exercised the record and metric paths, not only open(). */
    cr_assert_gt(opened, 100);
    cr_assert_gt(total_spans, 1000);
    free(orig);
}

Test(reader, span_decode_rejects_bad_records)
{
    uint8_t rec[512];
    struct dynobs_rec_hdr h = {.len = 0, .type = DYNOBS_REC_SPAN};
    struct dynobs_span_rec f;
    memset(&f, 0, sizeof f);
    memset(f.trace_id, 1, 16);
    memset(f.span_id, 2, 8);
    f.kind = DYNOBS_SPAN_KIND_CLIENT;
    f.name_len = 3;
    f.body_len = 3;
    size_t len = sizeof h + sizeof f + 3;
    h.len = (uint32_t)len;
    memcpy(rec, &h, sizeof h);
    memcpy(rec + sizeof h, &f, sizeof f);
    memcpy(rec + sizeof h + sizeof f, "abc", 3);
    struct dynobs_span_view v;
    cr_assert_eq(dynobs__span_decode(rec, len, &v), 0);
    struct dynobs_span_rec bad;
#define TRY(mut)                                                               \
    do {                                                                       \
        bad = f;                                                               \
        mut;                                                                   \
        memcpy(rec + sizeof h, &bad, sizeof bad);                              \
        cr_expect_eq(dynobs__span_decode(rec, len, &v), -EBADMSG, #mut);       \
    } while (0)
    TRY(bad.kind = 0);
    TRY(bad.kind = 6);
    TRY(bad.status = 3);
    TRY(bad.end_ns = 1; bad.start_ns = 2);
    TRY(memset(bad.trace_id, 0, 16));
    TRY(memset(bad.span_id, 0, 8));
    TRY(bad.body_len = 4);
    TRY(bad.name_len = 4);
    TRY(bad.attr_count = 1);
    TRY(bad.event_count = 1);
    memcpy(rec + sizeof h, &f, sizeof f);
    cr_assert_eq(dynobs__span_decode(rec, len - 1, &v), -EBADMSG);
    cr_assert_eq(dynobs__span_decode(rec, 10, &v), -EBADMSG);
    cr_assert_eq(dynobs__span_decode(NULL, len, &v), -EBADMSG);
}
