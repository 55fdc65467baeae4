"""Tail sampling end to end: a program under the shim makes traces of a
root span and a child at 1% head sampling (parentbased_traceidratio), some
children ending in ERROR or lasting long; dynobs-exporter sends what it
keeps to a test OTLP receiver.

With DYNOBS_TAIL_KEEP, every trace with an error (or a slow span) must
arrive whole, once, with its head decision (sampled flag) unchanged; the
other traces arrive exactly when the head sampler kept them, about 1% of
them (checked against a binomial bound); the exporter's counters say what
it kept, dropped and evicted. Without it, an unsampled error trace is lost,
as before.

usage: test_tail_sampling.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import math
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

TAILGEN = os.path.join(tx.BUILD, "tests", "dynobs-tailgen")
RATIO = 0.01


# The same sampling from a rules file instead of the environment: the
# ratio and the keeping of errors as one sampling entry.
RULES = """\
file_format: "0.3"
dynobs:
  version: 1
  sampling:
    - sampler:
        parent_based:
          root:
            trace_id_ratio_based:
              ratio: %s
      keep:
        errors: true
""" % RATIO


def run_tailgen(env, args, keep, rules=False):
    extra = {"OTEL_SERVICE_NAME": "tailgen",
             # Every span of 2000 traces goes to the ring: room for all.
             "DYNOBS_RING_BYTES": "8M"}
    if not rules:
        extra.update({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                      "OTEL_TRACES_SAMPLER_ARG": str(RATIO)})
    if keep is not None:
        extra["DYNOBS_TAIL_KEEP"] = keep
    r = subprocess.run([TAILGEN] + [str(a) for a in args], env=env.app_env(extra),
                       capture_output=True, text=True, timeout=120)
    tx.check(r.returncode == 0, "tailgen exited %d: %s" % (r.returncode, r.stderr))
    traces = {}
    for line in r.stdout.splitlines():
        tid, sampled, err, slow = line.split()
        traces[tid] = (sampled == "1", int(err), slow == "1")
    tx.check(len(traces) == args[0], "tailgen printed %d traces" % len(traces))
    return traces


def by_trace(spans):
    out = {}
    for _, s in spans:
        out.setdefault(tx.hexid(s, "trace_id"), []).append(s)
    return out


def metric(env, name):
    v = env.metric(name)
    return int(v) if v is not None else None


def binomial_bound(n, p, sigmas=5):
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return max(0, math.floor(mean - sigmas * sd)), math.ceil(mean + sigmas * sd)


def check_whole(trace_spans, tid, sampled, err):
    """A kept trace: its root and its child, once each, linked, with the
    head decision as recorded and the error where it was (1: on the child,
    2: on the root, which ends last)."""
    names = sorted(tx.one(s, "name").decode() for s in trace_spans)
    tx.check(names == ["GET /work", "step"], "trace %s arrived as %s" % (tid, names))
    root = [s for s in trace_spans if tx.one(s, "name") == b"GET /work"][0]
    child = [s for s in trace_spans if tx.one(s, "name") == b"step"][0]
    tx.check(tx.hexid(child, "parent_span_id") == tx.hexid(root, "span_id"),
             "trace %s: the child's parent is not the root" % tid)
    for s in trace_spans:
        flags = int(tx.one(s, "flags", "0"))
        tx.check((flags & 1) == (1 if sampled else 0),
                 "trace %s: span flags %#x, head decision %s" % (tid, flags, sampled))
    if err:
        failed = child if err == 1 else root
        code = tx.one(tx.one(failed, "status", {}), "code", b"")
        tx.check(code == "STATUS_CODE_ERROR", "trace %s: status %r" % (tid, code))


@tx.with_env
def test_error_traces_arrive_whole_at_one_percent(env):
    error_traces_arrive_whole(env, False)


@tx.with_env
def test_error_traces_arrive_whole_at_one_percent_set_by_rules(env):
    # The process starts after the exporter has published the rules: its
    # very first span follows them (DIR/.rules.current), so the head
    # decisions it prints are those of the rules' ratio.
    error_traces_arrive_whole(env, True)


def error_traces_arrive_whole(env, rules):
    rx = Receiver()
    try:
        extra = None
        if rules:
            path = os.path.join(env.dir, "rules.yaml")
            with open(path, "w") as f:
                f.write(RULES)
            extra = {"DYNOBS_RULES": path}
        env.start_exporter(rx.url(), extra)
        n = 2000
        traces = run_tailgen(env, [n, 20], None if rules else "errors", rules)
        errors = {t for t, (_, e, _) in traces.items() if e}
        head = {t for t, (s, _, _) in traces.items() if s}
        expected = errors | head
        unsampled_errors = errors - head
        dropped = n - len(expected)
        # The error traces go out as soon as their child ends; the others
        # are dropped once the decision wait (5 s) is over.
        tx.wait_for(lambda: len(by_trace(tx.spans_of(rx.accepted("/v1/traces")))) >= len(expected),
                    20, "%d traces at the receiver" % len(expected))
        tx.wait_for(lambda: metric(env, "dynobs_exporter_tail_traces_dropped_total") == dropped,
                    20, "%d traces dropped after the decision wait" % dropped)
        bodies = rx.accepted("/v1/traces")
        spans = tx.spans_of(bodies)
        got = by_trace(spans)
        ids = [tx.hexid(s, "span_id") for _, s in spans]
        tx.check(len(ids) == len(set(ids)), "%d spans arrived more than once" %
                 (len(ids) - len(set(ids))))
        tx.check(len(unsampled_errors) > 80, "only %d unsampled error traces: the test needs "
                 "the head sampler to miss most" % len(unsampled_errors))
        for t in errors:
            tx.check(t in got, "error trace %s did not arrive" % t)
            check_whole(got[t], t, traces[t][0], traces[t][1])
        others = set(got) - errors
        tx.check(others == head - errors,
                 "non-error traces arrived that the head sampler did not keep, or were lost: "
                 "%d extra, %d missing" % (len(others - head), len(head - errors - others)))
        lo, hi = binomial_bound(n - len(errors), RATIO)
        tx.check(lo <= len(others) <= hi, "%d non-error traces of %d arrived; expected %d..%d" %
                 (len(others), n - len(errors), lo, hi))
        for t in others:
            check_whole(got[t], t, True, False)
        tx.check(metric(env, "dynobs_exporter_tail_traces_kept_total") == len(unsampled_errors),
                 "kept counter %s, %d unsampled error traces" %
                 (metric(env, "dynobs_exporter_tail_traces_kept_total"), len(unsampled_errors)))
        tx.check(metric(env, "dynobs_exporter_tail_evictions_total") == 0, "evictions")
        tx.check(metric(env, "dynobs_exporter_tail_held_spans") == 0, "spans still held")
        tx.check(metric(env, "dynobs_exporter_tail_spans_dropped_total") == 2 * dropped,
                 "spans dropped %s, expected %d" %
                 (metric(env, "dynobs_exporter_tail_spans_dropped_total"), 2 * dropped))
        tx.check(metric(env, "dynobs_exporter_ring_records_dropped_total") == 0,
                 "the application's ring dropped records")
        # The kept spans decode with the official schema too.
        if os.path.isdir(tx.OFFICIAL_PROTO):
            official = tx.spans_of(bodies, tx.OFFICIAL_PROTO)
            tx.check(sorted(tx.hexid(s, "span_id") for _, s in official) == sorted(ids),
                     "the official schema decodes other spans")
        else:
            tx.skip_part("decoding with the official schema", "%s is absent" % tx.OFFICIAL_PROTO)
    finally:
        rx.stop()


@tx.with_env
def test_slow_traces_arrive_whole(env):
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        n = 200
        traces = run_tailgen(env, [n, 0, 25, 60], "slow:40ms")
        slow = {t for t, (_, _, sl) in traces.items() if sl}
        head = {t for t, (s, _, _) in traces.items() if s}
        expected = slow | head
        dropped = n - len(expected)
        tx.wait_for(lambda: metric(env, "dynobs_exporter_tail_traces_dropped_total") == dropped,
                    20, "%d traces dropped after the decision wait" % dropped)
        got = by_trace(tx.spans_of(rx.accepted("/v1/traces")))
        tx.check(set(got) == expected, "%d traces arrived, %d expected (%d slow)" %
                 (len(got), len(expected), len(slow)))
        for t in slow:
            check_whole(got[t], t, traces[t][0], False)
    finally:
        rx.stop()


def only_head_sampled_traces_arrive(env, keep):
    rx = Receiver()
    try:
        env.start_exporter(rx.url())
        n = 400
        traces = run_tailgen(env, [n, 20], keep)
        head = {t for t, (s, _, _) in traces.items() if s}
        tx.check(len(head) < n // 20, "the head sampler kept %d of %d" % (len(head), n))
        if head:
            tx.wait_for(lambda: len(by_trace(tx.spans_of(rx.accepted("/v1/traces")))) >=
                        len(head), 20, "%d sampled traces" % len(head))
        tx.wait_for(lambda: metric(env, "dynobs_exporter_records_drained_total{signal=\"traces\"}")
                    == 2 * len(head), 10, "the sampled spans drained")
        got = by_trace(tx.spans_of(rx.accepted("/v1/traces")))
        tx.check(set(got) == head, "%d traces arrived, the head sampler kept %d" %
                 (len(got), len(head)))
        tx.check(metric(env, "dynobs_exporter_tail_held_spans") == 0, "nothing held")
        tx.check(metric(env, "dynobs_exporter_tail_traces_kept_total") == 0, "nothing kept")
    finally:
        rx.stop()


@tx.with_env
def test_without_the_setting_unsampled_errors_are_lost(env):
    only_head_sampled_traces_arrive(env, None)


@tx.with_env
def test_a_malformed_setting_is_reported_and_keeps_nothing(env):
    # The report, from a process of its own (its segment elsewhere).
    r = subprocess.run([TAILGEN, "1", "1"], capture_output=True, text=True, timeout=60,
                       env=env.app_env({"DYNOBS_TAIL_KEEP": "errors,fast",
                                        "DYNOBS_SHM_DIR": os.path.join(env.dir, "other")}))
    tx.check(r.returncode == 0 and "ignoring malformed DYNOBS_TAIL_KEEP" in r.stderr,
             "exit %d, stderr %r" % (r.returncode, r.stderr))
    only_head_sampled_traces_arrive(env, "errors,fast")


def main():
    if not shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
