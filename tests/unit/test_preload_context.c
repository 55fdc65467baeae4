/* Trace context in real processes: a remote context attached by
 * the application, and the context a child process keeps across fork.
 * Shared set-up: preload_harness.h. */
#include "preload_harness.h"

PRELOAD_SUITE(preload_context);

Test(preload_context, fork_child_gets_own_segment_and_keeps_context)
{
    cr_assert_eq(run("fork", NULL, 1), 0);
    char *text = tu_slurp(out);
    char ptp[64], ctp[64], croot[64], proot[64];
    cr_assert_not_null(line(text, "parent-span", ptp, sizeof ptp));
    cr_assert_not_null(line(text, "child-span", ctp, sizeof ctp));
    cr_assert_not_null(line(text, "child-root", croot, sizeof croot));
    cr_assert_not_null(line(text, "parent-root", proot, sizeof proot));
    /* Same trace across the fork, and the child's span is a child of the
     * parent's span. */
    cr_assert_eq(strncmp(ptp, ctp, 35), 0, "%s vs %s", ptp, ctp);
    /* New roots after fork: different ids in parent and child. */
    cr_assert_neq(strncmp(croot + 3, proot + 3, 32), 0);
    char paths[4][1024];
    cr_assert_eq(segments(paths, 4), 2);
    static struct tu_span a[8], b[8];
    int na = tu_read_spans(paths[0], a, 8), nb = tu_read_spans(paths[1], b, 8);
    cr_assert_eq(na + nb, 5);
    const struct tu_span *child = tu_find(a, na, "in-child") ? tu_find(a, na, "in-child")
                                                            : tu_find(b, nb, "in-child");
    const struct tu_span *parent = tu_find(a, na, "before-fork");
    if (!parent || !tu_find(a, na, "parent-root"))
        parent = tu_find(b, nb, "parent-root") ? tu_find(b, nb, "before-fork") : parent;
    cr_assert_not_null(child);
    cr_assert_not_null(parent);
    cr_assert_str_eq(child->parent_hex, parent->span_hex);
    cr_assert_str_eq(child->trace_hex, parent->trace_hex);
    free(text);
}

Test(preload_context, attach_remote_context)
{
    cr_assert_eq(run("attach", NULL, 1), 0);
    char *text = tu_slurp(out);
    cr_assert_not_null(strstr(text, "attach 0\n"), "%s", text);
    cr_assert_not_null(strstr(text, "tracestate congo=t61rcWkgMzE,rojo=00f067aa0ba902b7\n"), "%s",
                       text);
    char want[64];
    snprintf(want, sizeof want, "after-detach %d\n", DYNOBS_ENOENT);
    cr_assert_not_null(strstr(text, want), "%s", text);
    snprintf(want, sizeof want, "bad-attach %d\n", DYNOBS_EINVAL);
    cr_assert_not_null(strstr(text, want), "%s", text);
    /* Unsampled remote parent: children keep the trace, flag 00, and are
     * not recorded; a bad tracestate was dropped whole. */
    cr_assert_not_null(strstr(text, "unsampled 00-0af7651916cd43dd8448eb211c80319c-"), "%s", text);
    char v[64];
    cr_assert_not_null(line(text, "unsampled2", v, sizeof v));
    cr_assert_str_eq(v + 53, "00");
    cr_assert_not_null(strstr(text, "tracestate2 []\n"), "%s", text);
    cr_assert_not_null(strstr(text, "attach3 0\ntracestate3 [foo@=1,bar=2,z@z=4]\n"), "%s", text);
    cr_assert_not_null(strstr(text, "attach4 0\ntracestate4 512 0\n"), "%s", text);
    char paths[2][1024];
    cr_assert_eq(segments(paths, 2), 1);
    static struct tu_span sp[8];
    cr_assert_eq(tu_read_spans(paths[0], sp, 8), 1);
    cr_assert_str_eq(sp[0].name, "remote-child");
    cr_assert_str_eq(sp[0].trace_hex, "0af7651916cd43dd8448eb211c80319c");
    cr_assert_str_eq(sp[0].parent_hex, "b7ad6b7169203331");
    cr_assert_eq(sp[0].trace_flags, 0x01); /* the remote had no random flag */
    cr_assert(sp[0].span_flags & 0x1);     /* parent is remote */
    cr_assert_str_eq(sp[0].tracestate, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    free(text);
}
