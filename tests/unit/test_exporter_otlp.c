/* OTLP request building: a batch of records goes through the queue and
 * the encoder, and what comes out is decoded by protoc against the
 * project's schema subset (proto/) and, where it is present, against the
 * official schema (../shared/otlp-proto), to prove it is what a collector
 * reads. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dynobs/dynobs.h"
#include "layout.h"
#include "otlp_encode.h"
#include "process_resource.h"
#include "queue.h"
#include "record.h"
#include "testutil.h"
#include "tracestate_th.h"

static struct dx_resource *resource(const char *service, int pid)
{
    struct dx_resource *r = calloc(1, sizeof *r);
    cr_assert_not_null(r);
    r->refs = 1;
    r->pid = pid;
    snprintf(r->service, sizeof r->service, "%s", service);
    static const char *kv[][2] = {{"service.name", NULL}, {"host.name", "testhost"},
                                  {"deployment.environment", "test \"quoted\""}};
    r->attrs = calloc(3, sizeof *r->attrs);
    cr_assert_not_null(r->attrs);
    for (int i = 0; i < 3; i++) {
        r->attrs[i].key = strdup(kv[i][0]);
        r->attrs[i].val = strdup(kv[i][1] ? kv[i][1] : service);
    }
    r->nattrs = 3;
    return r;
}

/* Seals a record whose body (body bytes) is in place after the header
 * and the fixed part f (flen bytes): writes both, padded to 16 bytes;
 * returns its length. */
static size_t seal(uint8_t *buf, size_t cap, int type, const void *f, size_t flen, size_t body)
{
    struct dynobs_rec_hdr h = {.type = (uint16_t)type};
    size_t len = (sizeof h + flen + body + 15) & ~(size_t)15;
    cr_assert_leq(len, cap);
    h.len = (uint32_t)len;
    memcpy(buf, &h, sizeof h);
    memcpy(buf + sizeof h, f, flen);
    return len;
}

/* A span record as the shim writes it: header, fixed part, name, then one
 * string attribute and one event; padded to 16 bytes. */
static size_t span_record(uint8_t *buf, size_t cap, const char *name, uint8_t id)
{
    memset(buf, 0, cap);
    const size_t hl = sizeof(struct dynobs_rec_hdr);
    struct dynobs_span_rec f = {0};
    for (int i = 0; i < 16; i++)
        f.trace_id[i] = (uint8_t)(0x10 + i);
    memset(f.span_id, id, sizeof f.span_id);
    f.start_ns = 1700000000000000000ull;
    f.end_ns = f.start_ns + 2500000;
    f.kind = DYNOBS_SPAN_KIND_SERVER;
    f.status = DYNOBS_STATUS_ERROR;
    f.trace_flags = 1;
    f.name_len = (uint16_t)strlen(name);
    uint8_t *body = buf + hl + sizeof f;
    size_t room = cap - hl - sizeof f, o = 0;
    memcpy(body, name, f.name_len);
    o += f.name_len;
    o += dynobs__item_put_attr(body + o, room - o, DYNOBS_ITEM_SPAN_ATTR, "http.request.method",
                               19, DYNOBS_ATTR_STRING, "GET", 3, 0);
    o += dynobs__item_put_event(body + o, room - o, "retry", 5, f.start_ns + 1000);
    f.attr_count = 1;
    f.event_count = 1;
    f.body_len = (uint32_t)o;
    size_t len = seal(buf, cap, DYNOBS_REC_SPAN, &f, sizeof f, o);
    struct dynobs_span_view v;
    cr_assert_eq(dynobs__span_decode(buf, len, &v), 0, "the test's record must be valid");
    return len;
}

static size_t log_record(uint8_t *buf, size_t cap, const char *text)
{
    memset(buf, 0, cap);
    struct dynobs_log_rec f = {0};
    f.time_ns = 1700000000000000000ull;
    f.severity = 17; /* ERROR */
    f.severity_text_len = 5;
    f.body_len = (uint32_t)strlen(text);
    uint8_t *p = buf + sizeof(struct dynobs_rec_hdr) + sizeof f;
    memcpy(p, "ERROR", 5);
    memcpy(p + 5, text, f.body_len);
    size_t len = seal(buf, cap, DYNOBS_REC_LOG, &f, sizeof f, 5 + f.body_len);
    struct dynobs_log_view v;
    cr_assert_eq(dynobs__log_decode(buf, len, &v), 0, "the test's record must be valid");
    return len;
}

/* Queues the records, then takes the one batch the queue hands over. */
static struct dx_batch *batch_of(enum dx_signal sig, struct dx_resource **res, uint8_t **recs,
                                 const size_t *lens, int n)
{
    dx_queue_configure(512, 2048, 5000);
    for (int i = 0; i < n; i++)
        cr_assert_eq(dx_queue_put(sig, res[i], recs[i], (uint32_t)lens[i]), 0);
    cr_assert_eq(dx_queue_queued(sig), (uint64_t)n);
    dx_queue_flush_due(1);
    int metrics = -1, stopping = -1;
    struct dx_batch *b = dx_queue_wait(&metrics, &stopping);
    cr_assert_not_null(b);
    cr_assert_eq(b->kind, sig);
    cr_assert_eq(b->count, (uint32_t)n);
    cr_assert_eq(metrics, 0);
    cr_assert_eq(stopping, 0);
    return b;
}

/* Runs protoc --decode on the bytes; returns its text output (malloc'ed),
 * or NULL when the schema directory is absent. */
static char *decode(const char *proto_dir, const char *type, const char *file, const uint8_t *bytes,
                    size_t len)
{
    struct stat st;
    if (stat(proto_dir, &st) != 0)
        return NULL;
    char in[] = "/tmp/dynobs-otlp-in-XXXXXX", out[] = "/tmp/dynobs-otlp-out-XXXXXX";
    int fi = mkstemp(in), fo = mkstemp(out);
    cr_assert(fi >= 0 && fo >= 0);
    cr_assert_eq(write(fi, bytes, len), (ssize_t)len);
    close(fi);
    close(fo);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "protoc --decode=%s -I '%s' '%s' < '%s' > '%s' 2>&1", type,
             proto_dir, file, in, out);
    int rc = system(cmd);
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(in);
    unlink(out);
    cr_assert_eq(rc, 0, "protoc --decode failed against %s:\n%s", proto_dir, text);
    return strdup(text);
}

/* Decodes against both schemas: texts[0] from proto/, texts[1] from the
 * official schema, or NULL (with a message) where it is absent. The two
 * texts differ in form (proto2 prints fields the official proto3 schema
 * leaves out at their default), so tests check each for the same
 * content. */
static void decode_both(char *texts[2], const char *type, const char *file, const uint8_t *bytes,
                        size_t len)
{
    texts[0] = decode(DYNOBS_PROTO_DIR, type, file, bytes, len);
    cr_assert_not_null(texts[0], "the project's proto/ must be there: %s", DYNOBS_PROTO_DIR);
    texts[1] = decode(DYNOBS_OFFICIAL_PROTO_DIR, type, file, bytes, len);
    if (!texts[1])
        cr_log_warn("%s is absent: skipped decoding against the official OTLP schema",
                    DYNOBS_OFFICIAL_PROTO_DIR);
}

/* Queues the n records as one batch of sig (traces or logs), encodes it
 * (dx_encode_batch must return want) and decodes the request with both
 * schemas into texts; frees the batch and the body, returns its size. */
static size_t encode_and_decode(enum dx_signal sig, struct dx_resource **owners, uint8_t **recs,
                                const size_t *lens, int n, long want, char *texts[2])
{
    struct dx_batch *batch = batch_of(sig, owners, recs, lens, n);
    uint8_t *body = NULL;
    size_t len = 0;
    cr_assert_eq(dx_encode_batch(batch, &body, &len), want);
    if (sig == DX_LOGS)
        decode_both(texts, "opentelemetry.proto.collector.logs.v1.ExportLogsServiceRequest",
                    "opentelemetry/proto/collector/logs/v1/logs_service.proto", body, len);
    else
        decode_both(texts, "opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest",
                    "opentelemetry/proto/collector/trace/v1/trace_service.proto", body, len);
    free(body);
    dx_batch_free(batch);
    return len;
}

Test(exporter_otlp, traces_request_decodes_with_protoc)
{
    struct dx_resource *a = resource("checkout", 4242), *b = resource("payments", 77);
    uint8_t r1[512], r2[512], r3[512];
    size_t lens[3] = {span_record(r1, sizeof r1, "GET /checkout", 0x21),
                      span_record(r2, sizeof r2, "POST /pay", 0x22),
                      span_record(r3, sizeof r3, "GET /again", 0x23)};
    uint8_t *recs[3] = {r1, r2, r3};
    struct dx_resource *owners[3] = {a, b, a};
    char *texts[2];
    cr_assert_gt(encode_and_decode(DX_TRACES, owners, recs, lens, 3, 3, texts), 0);
    for (int t = 0; t < 2 && texts[t]; t++) {
        const char *text = texts[t];
        /* One ResourceSpans per process, each with its own spans. */
        const char *p = text;
        int resources = 0;
        while ((p = strstr(p, "resource_spans {")))
            resources++, p++;
        cr_assert_eq(resources, 2, "%s", text);
        TU_ASSERT_CONTAINS(text, "string_value: \"checkout\"", "string_value: \"payments\"",
                           "string_value: \"test \\\"quoted\\\"\"",
                           "key: \"process.pid\"\n      value {\n        int_value: 4242",
                           "name: \"GET /checkout\"", "name: \"POST /pay\"", "name: \"GET /again\"",
                           "kind: SPAN_KIND_SERVER", "start_time_unix_nano: 1700000000000000000",
                           "end_time_unix_nano: 1700000000002500000", "code: STATUS_CODE_ERROR",
                           "key: \"http.request.method\"", "string_value: \"GET\"",
                           "name: \"retry\"");
        cr_assert(strstr(text, "span_id: \"!!!!!!!!\""), "%s", text); /* 0x21 bytes */
    }
    free(texts[0]);
    free(texts[1]);
    cr_assert_eq(dx_queue_queued(DX_TRACES), 0);
    dx_resource_unref(a);
    dx_resource_unref(b);
}

Test(exporter_otlp, logs_request_decodes_with_protoc)
{
    struct dx_resource *a = resource("worker", 9);
    uint8_t r1[512];
    size_t lens[1] = {log_record(r1, sizeof r1, "disk almost full")};
    uint8_t *recs[1] = {r1};
    struct dx_resource *owners[1] = {a};
    char *texts[2];
    encode_and_decode(DX_LOGS, owners, recs, lens, 1, 1, texts);
    for (int t = 0; t < 2 && texts[t]; t++) {
        const char *text = texts[t];
        cr_assert(strstr(text, "resource_logs {"), "%s", text);
        cr_assert(strstr(text, "string_value: \"worker\""), "%s", text);
        /* The subset declares the severity as a number, the official
         * schema as an enum: the same field, the same value (17). */
        cr_assert(strstr(text, t ? "severity_number: SEVERITY_NUMBER_ERROR"
                                 : "severity_number: 17"),
                  "%s", text);
        cr_assert(strstr(text, "severity_text: \"ERROR\""), "%s", text);
        cr_assert(strstr(text, "string_value: \"disk almost full\""), "%s", text);
        cr_assert(strstr(text, "time_unix_nano: 1700000000000000000"), "%s", text);
    }
    free(texts[0]);
    free(texts[1]);
    dx_resource_unref(a);
}

Test(exporter_otlp, invalid_records_are_skipped)
{
    struct dx_resource *a = resource("checkout", 1);
    uint8_t good[512], bad[512];
    size_t lens[2] = {span_record(good, sizeof good, "kept", 0x31),
                      span_record(bad, sizeof bad, "broken", 0x32)};
    /* A span that ends before it starts is refused by the decoder. */
    struct dynobs_span_rec f;
    memcpy(&f, bad + sizeof(struct dynobs_rec_hdr), sizeof f);
    f.end_ns = f.start_ns - 1;
    memcpy(bad + sizeof(struct dynobs_rec_hdr), &f, sizeof f);
    uint8_t *recs[2] = {good, bad};
    struct dx_resource *owners[2] = {a, a};
    char *texts[2];
    encode_and_decode(DX_TRACES, owners, recs, lens, 2, 1, texts);
    for (int t = 0; t < 2 && texts[t]; t++) {
            cr_assert(strstr(texts[t], "name: \"kept\""), "%s", texts[t]);
            cr_assert_null(strstr(texts[t], "broken"), "%s", texts[t]);
    }
    free(texts[0]);
    free(texts[1]);
    dx_resource_unref(a);
}

/* A span record with only a name and the tracestate ts, its header
 * carrying the record flags rec_flags. */
static size_t span_with_tracestate(uint8_t *buf, size_t cap, const char *ts, uint16_t rec_flags)
{
    memset(buf, 0, cap);
    struct dynobs_span_rec f = {0};
    memset(f.trace_id, 0x41, sizeof f.trace_id);
    memset(f.span_id, 0x42, sizeof f.span_id);
    f.start_ns = f.end_ns = 1700000000000000000ull;
    f.kind = DYNOBS_SPAN_KIND_SERVER;
    f.name_len = 4;
    f.tracestate_len = (uint16_t)strlen(ts);
    f.body_len = 4u + f.tracestate_len;
    uint8_t *body = buf + sizeof(struct dynobs_rec_hdr) + sizeof f;
    memcpy(body, "span", 4);
    memcpy(body + 4, ts, f.tracestate_len);
    size_t len = seal(buf, cap, DYNOBS_REC_SPAN, &f, sizeof f, f.body_len);
    struct dynobs_rec_hdr h;
    memcpy(&h, buf, sizeof h);
    h.flags = rec_flags;
    memcpy(buf, &h, sizeof h);
    return len;
}

/* The Span.trace_state the exporter sends for a span with tracestate ts
 * and record flags rec_flags, as protoc reads it from the request with
 * the project's schema; "" when the field is absent. */
static void exported_state(const char *ts, uint16_t rec_flags, char *out, size_t cap)
{
    struct dx_resource *a = resource("checkout", 5);
    uint8_t r1[1024];
    size_t lens[1] = {span_with_tracestate(r1, sizeof r1, ts, rec_flags)};
    uint8_t *recs[1] = {r1};
    struct dx_resource *owners[1] = {a};
    char *texts[2];
    encode_and_decode(DX_TRACES, owners, recs, lens, 1, 1, texts);
    cr_assert(strstr(texts[0], "name: \"span\""), "%s", texts[0]);
    const char *p = strstr(texts[0], "trace_state: \"");
    out[0] = '\0';
    if (p) {
        p += strlen("trace_state: \"");
        const char *q = strchr(p, '"');
        cr_assert_not_null(q);
        cr_assert_lt((size_t)(q - p), cap);
        memcpy(out, p, (size_t)(q - p));
        out[q - p] = '\0';
    }
    free(texts[0]);
    free(texts[1]);
    dx_resource_unref(a);
}

Test(exporter_otlp, tail_kept_spans_lose_the_probability_threshold)
{
    static const struct {
        const char *in, *unsampled;
    } cases[] = {
        {"ot=th:8;rv:ab,vendor=x", "ot=rv:ab,vendor=x"},
        {"ot=th:8,a=b", "a=b"},
        {"ot=th:8", ""},
        {"vendor=x,a=b", "vendor=x,a=b"},                   /* no ot member */
        {"ot=th8;rv:ab,vendor=x", "ot=th8;rv:ab,vendor=x"}, /* malformed */
    };
    char got[600];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        exported_state(cases[i].in, DYNOBS_RECF_UNSAMPLED, got, sizeof got);
        cr_assert_str_eq(got, cases[i].unsampled, "unsampled span with %s", cases[i].in);
        /* Kept for a reason of its own makes no difference. */
        exported_state(cases[i].in, DYNOBS_RECF_UNSAMPLED | DYNOBS_RECF_KEEP, got, sizeof got);
        cr_assert_str_eq(got, cases[i].unsampled, "unsampled KEEP span with %s", cases[i].in);
        /* A sampled span was chosen at random: its threshold stays. */
        exported_state(cases[i].in, 0, got, sizeof got);
        cr_assert_str_eq(got, cases[i].in, "sampled span with %s", cases[i].in);
        exported_state(cases[i].in, DYNOBS_RECF_KEEP, got, sizeof got);
        cr_assert_str_eq(got, cases[i].in, "sampled KEEP span with %s", cases[i].in);
    }
}

Test(exporter_otlp, tracestate_drop_th_keeps_the_rest_byte_for_byte)
{
    static const char *cases[][2] = {
        {"ot=th:8;rv:ab,vendor=x", "ot=rv:ab,vendor=x"},
        {"ot=th:8,a=b", "a=b"},
        {"ot=th:8", ""},
        {"a=b,ot=th:0,c=d", "a=b,c=d"},
        {"a=b, ot=th:8", "a=b"},
        {"ot=th:8 ,\tc=d", "c=d"},
        {"x=1,ot=rv:ab;th:c;k:v , y=2", "x=1,ot=rv:ab;k:v , y=2"},
        {"ot=rv:ab;th:8", "ot=rv:ab"},
        {"a@t=th:8,ot=x:1;th:ff", "a@t=th:8,ot=x:1"},
        /* Unchanged: no ot member, no th in it, or an ot value that is
         * not a list of key:value sub-keys. */
        {"vendor=x", "vendor=x"},
        {"bot=th:8", "bot=th:8"},
        {"ot=rv:ab,vendor=th:8", "ot=rv:ab,vendor=th:8"},
        {"ot=rv:ab;t:1", "ot=rv:ab;t:1"},
        {"ot=th8;rv:ab", "ot=th8;rv:ab"},
        {"ot=th:8;;rv:ab", "ot=th:8;;rv:ab"},
        {"ot=:8;th:1", "ot=:8;th:1"},
        {"ot=", "ot="},
        {"ot=rv:ab,ot=th:8", "ot=rv:ab,ot=th:8"}, /* only the first ot member counts */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = strlen(cases[i][0]);
        /* Exactly n bytes of room, and input without a NUL after it. */
        char *in = malloc(n ? n : 1), *out = malloc(n ? n : 1);
        cr_assert(in && out);
        memcpy(in, cases[i][0], n);
        size_t got = dx_tracestate_drop_th(in, n, out);
        cr_assert_eq(got, strlen(cases[i][1]), "%s: length %zu", cases[i][0], got);
        cr_assert(!memcmp(out, cases[i][1], got), "%s -> %.*s", cases[i][0], (int)got, out);
        free(in);
        free(out);
    }
}
