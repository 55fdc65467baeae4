/* The record ring: exact accounting under concurrency, wrap-around, and
 * producers that die mid-write. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "reader.h"
#include "ring.h"
#include "segment.h"
#include "testutil.h"

/* A ring on shared anonymous memory, so forked children can produce. */
struct tring {
    uint64_t head;
    uint8_t pad0[56];
    uint64_t tail;
    uint8_t pad1[56];
    uint64_t counters[DYNOBS_SHARD_COUNTERS];
    uint8_t data[];
};

static struct tring *tr_new(uint64_t cap, struct dynobs_ring *r, struct dynobs_ring_view *v)
{
    struct tring *t = mmap(NULL, sizeof *t + cap, PROT_READ | PROT_WRITE,
                           MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(t, MAP_FAILED);
    *r = (struct dynobs_ring){
        .head = &t->head, .tail = &t->tail, .data = t->data, .cap = cap, .counters = t->counters};
    v->head = &t->head;
    v->data = t->data;
    v->cap = cap;
    v->max_record = DYNOBS_MAX_RECORD_BYTES;
    return t;
}

/* Record payload: u32 producer, u32 seq, u32 len, then bytes derived
 * from all three, so any corruption or mix-up is caught. */
static size_t fill_payload(uint8_t *p, uint32_t prod, uint32_t seq, uint32_t len)
{
    memcpy(p, &prod, 4);
    memcpy(p + 4, &seq, 4);
    memcpy(p + 8, &len, 4);
    for (uint32_t i = 12; i < len; i++)
        p[i] = (uint8_t)(prod * 31 + seq * 7 + i);
    return len;
}

static int check_payload(const uint8_t *rec, uint32_t *prod, uint32_t *seq)
{
    const struct dynobs_rec_hdr *h = (const void *)rec;
    const uint8_t *p = rec + sizeof *h;
    uint32_t len;
    memcpy(prod, p, 4);
    memcpy(seq, p + 4, 4);
    memcpy(&len, p + 8, 4);
    if (dynobs__rec_size(len) != h->len)
        return 0;
    for (uint32_t i = 12; i < len; i++)
        if (p[i] != (uint8_t)(*prod * 31 + *seq * 7 + i))
            return 0;
    return 1;
}

Test(ring, single_thread_round_trip_and_wrap)
{
    struct dynobs_ring r;
    struct dynobs_ring_view v;
    struct tring *t = tr_new(64 * 1024, &r, &v);
    uint8_t payload[3000], buf[DYNOBS_MAX_RECORD_BYTES];
    uint64_t tail = 0;
    uint32_t next_read = 0;
    /* Many laps with sizes that force padding at the end of the data. */
    for (uint32_t seq = 0; seq < 20000; seq++) {
        uint32_t len = 12 + (seq * 97) % 2900;
        fill_payload(payload, 1, seq, len);
        cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, len, NULL, 0), 0);
        if (seq % 7 == 6) {
            enum dynobs_peek p;
            while ((p = dynobs__ring_peek(&v, &tail, buf, sizeof buf)) == DYNOBS_PEEK_RECORD) {
                uint32_t prod, s;
                cr_assert(check_payload(buf, &prod, &s));
                cr_assert_eq(s, next_read++);
                t->tail = tail;
            }
            cr_assert_eq(p, DYNOBS_PEEK_EMPTY);
        }
    }
    while (dynobs__ring_peek(&v, &tail, buf, sizeof buf) == DYNOBS_PEEK_RECORD)
        next_read++;
    cr_assert_eq(next_read, 20000);
    cr_assert_eq(t->counters[DYNOBS_CTR_RECORDS_WRITTEN], 20000);
    cr_assert_eq(t->counters[DYNOBS_CTR_RECORDS_DROPPED], 0);
    cr_assert_gt(t->head, 10 * 64 * 1024, "did not wrap enough: %lu", (unsigned long)t->head);
}

Test(ring, full_ring_drops_and_counts)
{
    struct dynobs_ring r;
    struct dynobs_ring_view v;
    struct tring *t = tr_new(64 * 1024, &r, &v);
    uint8_t payload[200];
    int ok = 0, dropped = 0;
    for (uint32_t seq = 0; seq < 1000; seq++) {
        fill_payload(payload, 2, seq, 200);
        if (dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 200, NULL, 0) == 0)
            ok++;
        else
            dropped++;
    }
    /* 216-byte records, 16-aligned to 224: 292 fit in 64 KiB. */
    cr_assert_eq(ok, 65536 / 224);
    cr_assert_eq(ok + dropped, 1000);
    cr_assert_eq(t->counters[DYNOBS_CTR_RECORDS_WRITTEN], (uint64_t)ok);
    cr_assert_eq(t->counters[DYNOBS_CTR_RECORDS_DROPPED], (uint64_t)dropped);
    /* Too large for any ring: dropped and counted, never written. */
    static uint8_t huge[DYNOBS_MAX_RECORD_BYTES + 1];
    cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, huge, sizeof huge, NULL, 0), -ENOSPC);
    cr_assert_eq(t->counters[DYNOBS_CTR_RECORDS_DROPPED], (uint64_t)dropped + 1);
    /* A consumer position that makes no sense means "full", not a crash:
     * as soon as the producer reads it, which it does when the room it saw
     * last (128 bytes here) is too little for the record. */
    t->tail = t->head + 4096;
    cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 200, NULL, 0), -ENOSPC);
    cr_assert_eq(r.tail_seen, t->tail, "the producer read the consumer's position");
}

/* The producer looks at the consumer's position only when the room it
 * saw last is too little for a record, and then uses all that the
 * consumer freed: nothing is dropped for a position read long ago. */
Test(ring, consumer_position_read_when_room_runs_short)
{
    struct dynobs_ring r;
    struct dynobs_ring_view v;
    struct tring *t = tr_new(64 * 1024, &r, &v);
    uint8_t payload[200], rec[DYNOBS_MAX_RECORD_BYTES];
    uint64_t tail = 0;
    for (uint32_t seq = 0; seq < 100; seq++) {
        fill_payload(payload, 3, seq, 200);
        cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 200, NULL, 0), 0);
    }
    /* The consumer takes 50 records; the producer, with room left, does
     * not look. */
    for (int i = 0; i < 50; i++)
        cr_assert_eq(dynobs__ring_peek(&v, &tail, rec, sizeof rec), DYNOBS_PEEK_RECORD);
    __atomic_store_n(&t->tail, tail, __ATOMIC_RELEASE);
    cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 200, NULL, 0), 0);
    cr_assert_eq(r.tail_seen, 0);
    /* Filling the ring: the first record that does not fit in the old room
     * reads the position, and the 50 records' room is used. */
    int ok = 0;
    for (uint32_t seq = 0; seq < 1000; seq++) {
        fill_payload(payload, 3, seq, 200);
        if (dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 200, NULL, 0) == 0)
            ok++;
    }
    cr_assert_eq(r.tail_seen, tail);
    cr_assert_eq(101 + ok, 65536 / 224 + 50);
    cr_assert_eq(t->counters[DYNOBS_CTR_RECORDS_WRITTEN], (uint64_t)(101 + ok));
}

#define PRODUCERS 4
#define PER_PRODUCER 100000

struct mt {
    struct dynobs_ring r;
    struct dynobs_ring_view v;
    struct tring *t;
    int stop;
    uint64_t attempted[PRODUCERS];
    uint64_t refused[PRODUCERS];
};

struct targ {
    struct mt *m;
    uint32_t id;
};

static void *producer(void *arg)
{
    struct mt *m = ((struct targ *)arg)->m;
    uint32_t id = ((struct targ *)arg)->id;
    uint8_t payload[600];
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
        uint32_t len = 12 + (seq * 13 + id * 101) % 580;
        fill_payload(payload, id, seq, len);
        __atomic_fetch_add(&m->attempted[id], 1, __ATOMIC_RELAXED);
        if (dynobs__ring_write(&m->r, DYNOBS_REC_SPAN, 0, payload, len, NULL, 0) != 0)
            m->refused[id]++;
    }
    return NULL;
}

Test(ring, many_producers_exact_accounting, .timeout = 120)
{
    static struct mt m;
    m.t = tr_new(256 * 1024, &m.r, &m.v);
    pthread_t th[PRODUCERS];
    struct targ args[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        args[i] = (struct targ){&m, (uint32_t)i};
        pthread_create(&th[i], NULL, producer, &args[i]);
    }
    /* The consumer runs concurrently; per producer, sequence numbers must
     * arrive increasing (records of one thread keep their order). */
    static uint8_t buf[DYNOBS_MAX_RECORD_BYTES];
    int64_t last[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        last[i] = -1;
    uint64_t tail = 0, consumed = 0, bad = 0;
    int done = 0;
    for (;;) {
        enum dynobs_peek p = dynobs__ring_peek(&m.v, &tail, buf, sizeof buf);
        if (p == DYNOBS_PEEK_RECORD) {
            uint32_t prod, seq;
            if (!check_payload(buf, &prod, &seq) || prod >= PRODUCERS || (int64_t)seq <= last[prod])
                bad++;
            else
                last[prod] = seq;
            consumed++;
            __atomic_store_n(&m.t->tail, tail, __ATOMIC_RELEASE);
            continue;
        }
        cr_assert_neq(p, DYNOBS_PEEK_CORRUPT);
        if (done)
            break;
        if (p == DYNOBS_PEEK_EMPTY) {
            int all = 1;
            for (int i = 0; i < PRODUCERS; i++)
                all &= __atomic_load_n(&m.attempted[i], __ATOMIC_RELAXED) == PER_PRODUCER;
            if (all) {
                for (int i = 0; i < PRODUCERS; i++)
                    pthread_join(th[i], NULL);
                done = 1;
            }
        }
    }
    uint64_t attempted = 0, refused = 0;
    for (int i = 0; i < PRODUCERS; i++) {
        attempted += m.attempted[i];
        refused += m.refused[i];
    }
    uint64_t written = m.t->counters[DYNOBS_CTR_RECORDS_WRITTEN];
    uint64_t dropped = m.t->counters[DYNOBS_CTR_RECORDS_DROPPED];
    cr_assert_eq(bad, 0, "%lu corrupt or out-of-order records", (unsigned long)bad);
    cr_assert_eq(attempted, (uint64_t)PRODUCERS * PER_PRODUCER);
    cr_assert_eq(written + dropped, attempted);
    cr_assert_eq(dropped, refused);
    cr_assert_eq(consumed, written);
    cr_assert_gt(written, 0);
}

Test(ring, producer_dead_between_reserve_and_header)
{
    /* A producer won the CAS and died before writing a byte: the head
     * moved, the bytes are an old lap's. Later records must be found. */
    struct dynobs_ring r;
    struct dynobs_ring_view v;
    struct tring *t = tr_new(64 * 1024, &r, &v);
    uint8_t payload[100], buf[DYNOBS_MAX_RECORD_BYTES];
    fill_payload(payload, 0, 0, 100);
    cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 100, NULL, 0), 0);
    memset(t->data + t->head, 0xa5, 160); /* garbage where the dead record is */
    t->head += 160;
    for (uint32_t s = 1; s <= 3; s++) {
        fill_payload(payload, 0, s, 100);
        cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 100, NULL, 0), 0);
    }
    uint64_t tail = 0;
    uint32_t prod, seq;
    cr_assert_eq(dynobs__ring_peek(&v, &tail, buf, sizeof buf), DYNOBS_PEEK_RECORD);
    cr_assert_eq(dynobs__ring_peek(&v, &tail, buf, sizeof buf), DYNOBS_PEEK_STALLED);
    tail = dynobs__ring_resync(&v, tail);
    for (uint32_t s = 1; s <= 3; s++) {
        cr_assert_eq(dynobs__ring_peek(&v, &tail, buf, sizeof buf), DYNOBS_PEEK_RECORD);
        cr_assert(check_payload(buf, &prod, &seq));
        cr_assert_eq(seq, s);
    }
    cr_assert_eq(dynobs__ring_peek(&v, &tail, buf, sizeof buf), DYNOBS_PEEK_EMPTY);
}

Test(ring, producer_process_killed_mid_write)
{
    struct dynobs_ring r;
    struct dynobs_ring_view v;
    struct tring *t = tr_new(64 * 1024, &r, &v);
    uint8_t payload[300], buf[DYNOBS_MAX_RECORD_BYTES];
    pid_t pid = fork();
    if (pid == 0) {
        fill_payload(payload, 9, 0, 300);
        dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 300, NULL, 0);
        struct dynobs_rec_hdr *h = dynobs__ring_reserve(&r, 300, DYNOBS_REC_SPAN, 0);
        memset(h + 1, 0x11, 100); /* half a payload, then death */
        raise(SIGKILL);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st));
    /* Other producers go on writing past the abandoned record... */
    for (uint32_t s = 1; s <= 50; s++) {
        fill_payload(payload, 9, s, 300);
        cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 300, NULL, 0), 0);
    }
    /* ...and the consumer skips it and reads all of theirs. */
    uint64_t tail = 0;
    uint32_t prod, seq, got = 0;
    cr_assert_eq(dynobs__ring_peek(&v, &tail, buf, sizeof buf), DYNOBS_PEEK_RECORD);
    cr_assert_eq(dynobs__ring_peek(&v, &tail, buf, sizeof buf), DYNOBS_PEEK_STALLED);
    tail = dynobs__ring_resync(&v, tail);
    while (dynobs__ring_peek(&v, &tail, buf, sizeof buf) == DYNOBS_PEEK_RECORD) {
        cr_assert(check_payload(buf, &prod, &seq));
        cr_assert_eq(seq, ++got);
        t->tail = tail;
    }
    cr_assert_eq(got, 50);
    /* The ring is not wedged: it fills and drains again for many laps. */
    for (uint32_t s = 0; s < 2000; s++) {
        fill_payload(payload, 9, s, 300);
        cr_assert_eq(dynobs__ring_write(&r, DYNOBS_REC_SPAN, 0, payload, 300, NULL, 0), 0);
        cr_assert_eq(dynobs__ring_peek(&v, &tail, buf, sizeof buf), DYNOBS_PEEK_RECORD);
        t->tail = tail;
    }
}

/* The reader's policy on a real segment: a record left uncommitted by a
 * process that is gone is skipped at once; by a live one, after the stall
 * timeout. */
static void make_record(struct dynobs_ring *r, uint32_t seq)
{
    uint8_t payload[64];
    fill_payload(payload, 7, seq, 64);
    cr_assert_eq(dynobs__ring_write(r, DYNOBS_REC_SPAN, 0, payload, 64, NULL, 0), 0);
}

Test(ring, reader_skips_record_of_dead_process)
{
    char *dir = tu_tmpdir();
    pid_t pid = fork();
    if (pid == 0) {
        struct dynobs_segment s;
        struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 65536, .metric_slots = 16,
                                          .pid = getpid(), .start_ticks = dynobs__proc_start_ticks(0)};
        if (dynobs__segment_create(&s, &p) < 0)
            _exit(3);
        for (uint32_t i = 0; i < 3; i++)
            make_record(&s.rings[0], i);
        dynobs__ring_reserve(&s.rings[0], 64, DYNOBS_REC_SPAN, 0); /* never committed */
        for (uint32_t i = 3; i < 8; i++)
            make_record(&s.rings[0], i);
        raise(SIGKILL);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFSIGNALED(st));
    char segs[4][1024];
    cr_assert_eq(tu_segments(dir, segs, 4), 1);
    struct dynobs_reader *rd = malloc(sizeof *rd);
    cr_assert_eq(dynobs__reader_open(rd, segs[0], DYNOBS_READER_CONSUME), 0);
    cr_assert_not(dynobs__reader_producer_alive(rd));
    const struct dynobs_rec_hdr *h;
    uint32_t n = 0, prod, seq;
    while (dynobs__reader_next(rd, &h) == 1) {
        cr_assert(check_payload((const uint8_t *)h, &prod, &seq));
        cr_assert_eq(seq, n++);
    }
    cr_assert_eq(n, 8);
    cr_assert_eq(rd->abandoned, 1);
    dynobs__reader_close(rd);
    free(rd);
    tu_rmtree(dir);
    free(dir);
}

Test(ring, reader_waits_for_live_producer_then_gives_up)
{
    char *dir = tu_tmpdir();
    struct dynobs_segment s;
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 65536, .metric_slots = 16,
                                      .pid = getpid(), .start_ticks = dynobs__proc_start_ticks(0)};
    cr_assert_eq(dynobs__segment_create(&s, &p), 0);
    make_record(&s.rings[0], 0);
    struct dynobs_rec_hdr *stuck = dynobs__ring_reserve(&s.rings[0], 64, DYNOBS_REC_SPAN, 0);
    cr_assert_not_null(stuck);
    make_record(&s.rings[0], 1);
    struct dynobs_reader *rd = malloc(sizeof *rd);
    cr_assert_eq(dynobs__reader_open(rd, s.path, DYNOBS_READER_CONSUME), 0);
    cr_assert(dynobs__reader_producer_alive(rd));
    rd->stall_timeout_ns = 50 * 1000 * 1000;
    const struct dynobs_rec_hdr *h;
    uint32_t prod, seq;
    cr_assert_eq(dynobs__reader_next(rd, &h), 1);
    cr_assert_eq(dynobs__reader_next(rd, &h), 0); /* waits: the writer may finish */
    cr_assert_eq(rd->abandoned, 0);
    struct timespec ts = {0, 80 * 1000 * 1000};
    nanosleep(&ts, NULL);
    cr_assert_eq(dynobs__reader_next(rd, &h), 1);
    cr_assert(check_payload((const uint8_t *)h, &prod, &seq));
    cr_assert_eq(seq, 1);
    cr_assert_eq(rd->abandoned, 1);
    dynobs__reader_close(rd);
    free(rd);
    tu_rmtree(dir);
    free(dir);
}

/* A ring that grows (struct dynobs_ring_room): with a prompt consumer it
 * wraps early and keeps to the memory it started with; with none, it
 * grows step by step to its size and then drops, counted; what it holds
 * reads back whole and in order. */
static size_t allocated_bytes(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    return (size_t)st.st_blocks * 512;
}

static void growing_segment(const char *dir, struct dynobs_segment *s)
{
    struct dynobs_segment_params p = {.dir = dir, .ring_bytes = 1u << 20,
                                      .ring_start_bytes = 64 * 1024, .ring_shards = 1,
                                      .metric_slots = 16, .pid = getpid(),
                                      .start_ticks = dynobs__proc_start_ticks(0)};
    cr_assert_eq(dynobs__segment_create(s, &p), 0);
    cr_assert_eq(s->room[0].backed, 64 * 1024);
}

static int grow_write(struct dynobs_segment *s, uint32_t seq)
{
    uint8_t payload[200];
    fill_payload(payload, 5, seq, sizeof payload);
    struct dynobs_rec_hdr *h =
        dynobs__ring_reserve_in(&s->rings[0], &s->room[0], sizeof payload, DYNOBS_REC_SPAN, 0);
    if (!h)
        return -1;
    memcpy(h + 1, payload, sizeof payload);
    dynobs__ring_commit(&s->rings[0], h);
    return 0;
}

Test(ring, growing_ring_keeps_its_start_with_a_prompt_consumer)
{
    char *dir = tu_tmpdir();
    struct dynobs_segment s;
    growing_segment(dir, &s);
    size_t at_start = allocated_bytes(s.path);
    struct dynobs_ring_view v = {s.rings[0].head, s.rings[0].data, s.rings[0].cap,
                                 DYNOBS_MAX_RECORD_BYTES};
    uint64_t *tail = (uint64_t *)s.rings[0].tail;
    static uint8_t buf[DYNOBS_MAX_RECORD_BYTES];
    uint32_t next = 0;
    /* 100 000 records of 224 bytes: 21 MiB, 340 laps of the start. */
    for (uint32_t seq = 0; seq < 100000; seq++) {
        cr_assert_eq(grow_write(&s, seq), 0);
        if (seq % 100 == 99) {
            uint64_t t = *tail;
            while (dynobs__ring_peek(&v, &t, buf, sizeof buf) == DYNOBS_PEEK_RECORD) {
                uint32_t prod, got;
                cr_assert(check_payload(buf, &prod, &got));
                cr_assert_eq(got, next++);
            }
            __atomic_store_n(tail, t, __ATOMIC_RELEASE);
        }
    }
    cr_assert_eq(next, 100000);
    cr_assert_eq(s.room[0].backed, 64 * 1024);
    cr_assert_eq(allocated_bytes(s.path), at_start);
    cr_assert_eq(s.hdr->shards[0].counters[DYNOBS_CTR_RECORDS_DROPPED], 0);
}

Test(ring, growing_ring_grows_to_its_size_then_drops)
{
    char *dir = tu_tmpdir();
    struct dynobs_segment s;
    growing_segment(dir, &s);
    size_t at_start = allocated_bytes(s.path);
    uint32_t ok = 0, dropped = 0;
    for (uint32_t seq = 0; seq < 6000; seq++) {
        if (grow_write(&s, seq) == 0)
            cr_assert_eq(seq, ok++, "a record after a drop was kept");
        else
            dropped++;
    }
    /* 1 MiB of 224-byte records, nothing consumed. */
    cr_assert_eq(ok, (1u << 20) / 224);
    cr_assert_eq(s.room[0].backed, 1u << 20);
    cr_assert_geq(allocated_bytes(s.path), at_start + (1u << 20) - 64 * 1024);
    cr_assert_eq(s.hdr->shards[0].counters[DYNOBS_CTR_RECORDS_DROPPED], dropped);
    struct dynobs_ring_view v = {s.rings[0].head, s.rings[0].data, s.rings[0].cap,
                                 DYNOBS_MAX_RECORD_BYTES};
    static uint8_t buf[DYNOBS_MAX_RECORD_BYTES];
    uint64_t t = 0;
    uint32_t next = 0, prod, got;
    while (dynobs__ring_peek(&v, &t, buf, sizeof buf) == DYNOBS_PEEK_RECORD) {
        cr_assert(check_payload(buf, &prod, &got));
        cr_assert_eq(got, next++);
    }
    cr_assert_eq(next, ok);
}

Test(ring, growth_refused_is_a_full_ring)
{
    /* The part beyond what is backed cannot be populated for writing
     * (read-only here; a full tmpfs in life): records are dropped and
     * counted, nothing faults, and the ring goes on once drained. */
    struct dynobs_ring r;
    struct dynobs_ring_view v;
    struct tring *t = tr_new(256 * 1024, &r, &v);
    size_t data_off = (size_t)(t->data - (uint8_t *)t);
    uint8_t *ro = (uint8_t *)t + ((data_off + 128 * 1024 + 4095) & ~(size_t)4095);
    cr_assert_eq(mprotect(ro, (size_t)(t->data + 256 * 1024 - ro), PROT_READ), 0);
    struct dynobs_ring_room room = {.backed = (uint64_t)(ro - t->data)};
    uint8_t payload[200], buf[DYNOBS_MAX_RECORD_BYTES];
    uint32_t ok = 0, dropped = 0;
    for (uint32_t seq = 0; seq < 2000; seq++) {
        fill_payload(payload, 6, seq, sizeof payload);
        struct dynobs_rec_hdr *h =
            dynobs__ring_reserve_in(&r, &room, sizeof payload, DYNOBS_REC_SPAN, 0);
        if (!h) {
            dropped++;
            continue;
        }
        memcpy(h + 1, payload, sizeof payload);
        dynobs__ring_commit(&r, h);
        ok++;
    }
    cr_assert_gt(dropped, 0);
    cr_assert_eq(ok + dropped, 2000);
    cr_assert_eq(room.backed, (uint64_t)(ro - t->data));
    cr_assert_leq((uint64_t)ok * 224, room.backed);
    cr_assert_eq(t->counters[DYNOBS_CTR_RECORDS_DROPPED], dropped);
    uint64_t tail = 0;
    uint32_t n = 0;
    while (dynobs__ring_peek(&v, &tail, buf, sizeof buf) == DYNOBS_PEEK_RECORD)
        n++;
    cr_assert_eq(n, ok);
    t->tail = tail;
    /* Drained: it wraps early within what is backed and takes more. */
    for (uint32_t seq = 0; seq < 1000; seq++) {
        fill_payload(payload, 6, seq, sizeof payload);
        struct dynobs_rec_hdr *h =
            dynobs__ring_reserve_in(&r, &room, sizeof payload, DYNOBS_REC_SPAN, 0);
        cr_assert_not_null(h, "record %u refused after the drain", seq);
        memcpy(h + 1, payload, sizeof payload);
        dynobs__ring_commit(&r, h);
        cr_assert_eq(dynobs__ring_peek(&v, &tail, buf, sizeof buf), DYNOBS_PEEK_RECORD);
        t->tail = tail;
    }
}
