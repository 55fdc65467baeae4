/* Log records in real processes: explicit parents, records made
 * through the C API, and stderr lines and syslog calls captured with
 * DYNOBS_CAPTURE_LOGS=1.
 * Shared set-up: preload_harness.h. */
#include "preload_harness.h"

PRELOAD_SUITE(preload_logs);

/* Explicit parents (dynobs_span_start_ex), dynobs_set_service_name, log
 * records with attributes and an explicit span, and the capture of stderr
 * lines and syslog calls (DYNOBS_CAPTURE_LOGS=1). */
Test(preload_logs, explicit_parents_log_records_and_captured_logs)
{
    const char *env[] = {"DYNOBS_CAPTURE_LOGS=1", NULL};
    cr_assert_eq(run("capture", env, 1), 0);
    char *text = tu_slurp(out);
    cr_assert(strstr(text, "name 0\n") && strstr(text, "late -16\n"), "%s", text);
    cr_assert(strstr(text, "bad null\n") && strstr(text, "wrote 1529\n"), "%s", text);
    cr_assert(strstr(text, "rec 0\n") && strstr(text, "rec2 0\n") && strstr(text, "rec3 -22\n"),
              "%s", text);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    struct dynobs_reader *r = malloc(sizeof *r);
    cr_assert_eq(dynobs__reader_open(r, paths[0], DYNOBS_READER_CONSUME), 0);
    cr_assert_str_eq(r->service_name, "renamed");
    static struct tu_span sp[8];
    int nsp = 0;
    char bodies[16][64];
    int sev[16] = {0}, attrs_of[16] = {0}, correlated[16] = {0}, nlog = 0;
    size_t biglen = 0;
    const struct dynobs_rec_hdr *h;
    while (dynobs__reader_next(r, &h) == 1) {
        struct dynobs_span_view v;
        struct dynobs_log_view lv;
        if (h->type == DYNOBS_REC_SPAN && dynobs__span_decode(h, h->len, &v) == 0 && nsp < 8) {
            tu_span_from_view(&sp[nsp++], &v);
        } else if (h->type == DYNOBS_REC_LOG && dynobs__log_decode(h, h->len, &lv) == 0 &&
                   nlog < 16) {
            if (lv.f.body_len > 1000)
                biglen += lv.f.body_len;
            snprintf(bodies[nlog], sizeof bodies[nlog], "%.*s", (int)(lv.f.body_len < 60 ? lv.f.body_len : 60), lv.body);
            sev[nlog] = lv.f.severity;
            attrs_of[nlog] = lv.f.attr_count;
            correlated[nlog] = lv.f.trace_id[0] || lv.f.trace_id[1];
            nlog++;
        }
    }
    dynobs__reader_close(r);
    free(r);
    const struct tu_span *outer = tu_find(sp, nsp, "outer"), *side = tu_find(sp, nsp, "side"),
                         *next = tu_find(sp, nsp, "next"), *root = tu_find(sp, nsp, "root"),
                         *remote = tu_find(sp, nsp, "remote");
    cr_assert(outer && side && next && root && remote);
    cr_assert_str_eq(side->parent_hex, outer->span_hex);
    cr_assert_not(side->span_flags & DYNOBS_SPANF_PARENT_REMOTE);
    cr_assert_str_eq(next->parent_hex, outer->span_hex, "NO_CONTEXT left the context alone");
    cr_assert_not(root->span_flags & DYNOBS_SPANF_HAS_PARENT);
    cr_assert_str_neq(root->trace_hex, outer->trace_hex);
    cr_assert_str_eq(remote->trace_hex, "0af7651916cd43dd8448eb211c80319c");
    cr_assert_str_eq(remote->parent_hex, "b7ad6b7169203331");
    cr_assert(remote->span_flags & DYNOBS_SPANF_PARENT_REMOTE);
    /* stderr: three lines, the long one in pieces (1024 + the rest), the
     * vectored one; syslog with %m; the two records. */
    cr_assert_str_eq(bodies[0], "first line");
    cr_assert_str_eq(bodies[1], "second line");
    cr_assert_str_eq(bodies[2], "third");
    cr_assert_eq(biglen, 1024, "the first piece of the long line");
    cr_assert_eq(sev[0], 0);
    cr_assert_eq(attrs_of[0], 1); /* log.iostream */
    int i = 3;
    while (i < nlog && strcmp(bodies[i], "vectored"))
        i++;
    cr_assert_lt(i, nlog, "the writev line");
    cr_assert_str_eq(bodies[i + 1], "open failed: No such file or directory (7)");
    cr_assert_eq(sev[i + 1], 17);
    cr_assert_str_eq(bodies[i + 2], "with attrs");
    cr_assert_eq(attrs_of[i + 2], 2);
    cr_assert_str_eq(bodies[i + 3], "explicit span");
    cr_assert(correlated[0] && correlated[i + 1] && correlated[i + 3]);
    free(text);
}
