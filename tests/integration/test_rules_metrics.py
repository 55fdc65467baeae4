#!/usr/bin/env python3
"""Filters of metric series, applied in the exporter, live: a Python
program using the dynobs package under the shim records the counters
app.debug.x and app.keep.y; a running dynobs-exporter has DYNOBS_RULES
with the filter {match: {metric.name: "app.debug.*"}, drop: [metrics]}.
  1. /metrics and every OTLP metrics export show app.keep.y and never
     app.debug.x; dynobs_exporter_metric_series_filtered counts it;
  2. app.debug.x keeps being recorded while dropped;
  3. the rules file is rewritten without the filter: within 5 s
     app.debug.x appears on /metrics and in OTLP with everything ever
     recorded (its cumulative total, not only what came after).

usage: test_rules_metrics.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

check, wait_for, one, attrs = tx.check, tx.wait_for, tx.one, tx.attrs
PY = "/usr/bin/python3"
SERVICE = "mfilter-svc"

# Each line "NAME VALUE" on stdin adds VALUE to the counter NAME; the
# program answers "ok" once it is recorded.
APP = r'''
import sys
import dynobs
counters = {}
print("ready", flush=True)
for line in sys.stdin:
    name, value = line.split()
    c = counters.setdefault(name, dynobs.counter(name))
    c.add(float(value), {"k": "v"})
    print("ok", flush=True)
'''

DROPPING = """\
file_format: "1.0"
dynobs:
  version: 1
  filters:
    - match: {metric.name: "app.debug.*"}
      drop: [metrics]
"""

# Without the filter; an entry on a span's field stays, which must not
# touch metric series either.
KEEPING = """\
file_format: "1.0"
dynobs:
  version: 1
  filters:
    - match: {url.path: /healthz}
      drop: [metrics]
"""


def write(path, text):
    # A new file renamed into place, as editors and config management do.
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def record(p, name, value):
    p.stdin.write("%s %s\n" % (name, value))
    p.stdin.flush()
    line = p.stdout.readline()
    check(line.strip() == "ok", "the app did not record %s: %r" % (name, line))


def value(text, family):
    """The value of a family's sample of SERVICE with k="v", or None."""
    want = '%s{service_name="%s",k="v"} ' % (family, SERVICE)
    for line in text.splitlines():
        if line.startswith(want):
            return float(line.rsplit(" ", 1)[1])
    return None


def otlp_sums(body):
    """{metric name: [values]} of SERVICE's sum points in one export."""
    req = tx.decode(body, tx.METRIC_REQ, tx.OWN_PROTO)
    found = {}
    for rm in req.get("resource_metrics", []):
        if attrs(one(rm, "resource", {})).get("service.name") != SERVICE:
            continue
        for sm in rm.get("scope_metrics", []):
            for m in sm.get("metrics", []):
                data = one(m, "sum")
                if data:
                    found.setdefault(one(m, "name").decode(), []).extend(
                        float(one(pt, "as_double")) for pt in data.get("data_points", []))
    return found


def latest_sums(rx, since):
    bodies = rx.accepted("/v1/metrics")
    return otlp_sums(bodies[-1]) if len(bodies) > since else None


@tx.with_env
def test_metric_name_filter_drops_series_in_the_exporter(env):
    rules = os.path.join(env.dir, "rules.yaml")
    write(rules, DROPPING)
    rx = Receiver()
    try:
        env.start_exporter(rx.url(), {"DYNOBS_RULES": rules})
        wait_for(lambda: (env.metric("dynobs_exporter_rules_generation") or 0) > 0, 10,
                 "the first rules in force")
        script = os.path.join(env.dir, "app.py")
        with open(script, "w") as f:
            f.write(APP)
        e = env.app_env({"OTEL_SERVICE_NAME": SERVICE, "DYNOBS_LIBRARY": tx.LIB,
                         "PYTHONPATH": os.path.join(tx.SOURCE, "python")})
        p = subprocess.Popen([PY, script], env=e, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        env.procs.append(p)
        check(p.stdout.readline().strip() == "ready",
              "the app did not start: %s" % (p.stderr.read() if p.poll() is not None else ""))

        # 1. Dropped from the start: the series is new under the filter.
        record(p, "app.debug.x", 3)
        record(p, "app.keep.y", 5)
        wait_for(lambda: value(env.metrics(), "app_keep_y_total") == 5, 10,
                 "app_keep_y_total on /metrics")
        text = env.metrics()
        check("app_debug_x" not in text, "app_debug_x on /metrics under the filter")
        check(env.metric("dynobs_exporter_metric_series_filtered") == 1,
              "one series filtered: %r" % env.metric("dynobs_exporter_metric_series_filtered"))
        n = len(rx.accepted("/v1/metrics"))
        sums = wait_for(lambda: (lambda s: s if s and s.get("app.keep.y") == [5.0] else None)(
            latest_sums(rx, n)), 10, "app.keep.y in an OTLP export")
        check("app.debug.x" not in sums, "app.debug.x in OTLP: %r" % sums)

        # 2. Still recorded while dropped.
        record(p, "app.debug.x", 4)
        record(p, "app.keep.y", 1)
        wait_for(lambda: value(env.metrics(), "app_keep_y_total") == 6, 10,
                 "app_keep_y_total at 6")
        check("app_debug_x" not in env.metrics(), "app_debug_x on /metrics under the filter")
        exports = rx.accepted("/v1/metrics")
        check(exports and not any(b"app.debug.x" in b for b in exports),
              "an OTLP export held app.debug.x while the filter was in force")

        # 3. The filter goes: the series comes back with its full total.
        gen = env.metric("dynobs_exporter_rules_generation")
        write(rules, KEEPING)
        t0 = time.time()
        wait_for(lambda: value(env.metrics(), "app_debug_x_total") == 7, 5,
                 "app_debug_x_total back at 7 within 5 s")
        took = time.time() - t0
        print("app_debug_x back on /metrics %.2f s after the file changed" % took)
        check(env.metric("dynobs_exporter_rules_generation") > gen, "a new generation")
        check(env.metric("dynobs_exporter_metric_series_filtered") == 0, "nothing filtered now")
        check(value(env.metrics(), "app_keep_y_total") == 6, "app.keep.y unchanged")
        n = len(rx.accepted("/v1/metrics"))
        sums = wait_for(lambda: (lambda s: s if s and "app.debug.x" in s else None)(
            latest_sums(rx, n)), 5, "app.debug.x in an OTLP export")
        check(sums["app.debug.x"] == [7.0], "app.debug.x in OTLP: %r" % sums["app.debug.x"])
        check(sums.get("app.keep.y") == [6.0], "app.keep.y in OTLP: %r" % sums.get("app.keep.y"))
        p.stdin.close()
        check(p.wait(30) == 0, "the app exited %s: %s" % (p.returncode, p.stderr.read()))
        check(env.exporter.poll() is None, "the exporter exited")
    finally:
        rx.stop()


def main():
    if not os.path.exists(PY):
        return tx.skip_file("%s is missing (Debian: python3)" % PY)
    if not tx.shutil.which("protoc"):
        return tx.skip_file("protoc is missing (Debian: protobuf-compiler)")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
