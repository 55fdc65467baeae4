"""Cardinality caps with OpenTelemetry's overflow semantics, end to end:
Python programs using the dynobs package under the shim record a counter
and a histogram with 3000 distinct label values each; a running
dynobs-exporter shows them on /metrics and sends them to a test OTLP
receiver. The series are bounded as designed, the overflow series carries
otel.metric.overflow (a label "true" in Prometheus, a bool in OTLP), and
the values of all series add up to exactly what was recorded.

usage: test_cardinality.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402

check, one, attrs = tx.check, tx.one, tx.attrs
PY = "/usr/bin/python3"

# Records "card.requests" += i % 7 + 1 and "card.latency" <- i % 100 for
# id = i, i in [FROM, TO); prints the totals, then waits for stdin to close.
APP = r'''
import sys
import dynobs
lo, hi = int(sys.argv[1]), int(sys.argv[2])
c = dynobs.counter("card.requests")
h = dynobs.histogram("card.latency")
for i in range(lo, hi):
    c.add(i % 7 + 1, {"id": str(i)})
    h.record(i % 100, {"id": str(i)})
print(dynobs.stats["metric_updates_refused"], flush=True)
sys.stdin.read()
'''

# The shim's cap with the default table (512 slots): min(2000, 512 / 4).
SHIM_CAP = 128
LIMIT = 2000  # the default cardinality_limit
OVERFLOW = 'otel_metric_overflow="true"'


def expected(lo, hi):
    return (sum(i % 7 + 1 for i in range(lo, hi)), hi - lo, sum(i % 100 for i in range(lo, hi)))


def start_app(env, service, lo, hi, extra=None):
    script = os.path.join(env.dir, "card_app.py")
    with open(script, "w") as f:
        f.write(APP)
    e = env.app_env({"OTEL_SERVICE_NAME": service, "DYNOBS_LIBRARY": tx.LIB,
                     "PYTHONPATH": os.path.join(tx.SOURCE, "python")})
    e.update(extra or {})
    p = subprocess.Popen([PY, script, str(lo), str(hi)], env=e, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    env.procs.append(p)
    line = p.stdout.readline()
    check(line.strip() == "0", "the app refused updates or failed: %r %s"
          % (line, p.stderr.read() if p.poll() is not None else ""))
    return p


def stop_app(p):
    p.stdin.close()
    check(p.wait(30) == 0, "the app exited %s" % p.returncode)


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$')


def series(text, family, service):
    """{labels text: value} of one family's samples of one service."""
    out = {}
    want = 'service_name="%s"' % service
    for line in text.splitlines():
        m = SAMPLE.match(line)
        if m and m.group(1) == family and m.group(2).startswith(want):
            out[m.group(2)] = float(m.group(3))
    return out


def snapshot(env, service):
    text = env.metrics()
    return {
        "requests": series(text, "card_requests_total", service),
        "count": series(text, "card_latency_count", service),
        "sum": series(text, "card_latency_sum", service),
        "text": text,
    }


def self_counter(text, name, service):
    for line in text.splitlines():
        if line.startswith('%s{service_name="%s"} ' % (name, service)):
            return int(line.rsplit(" ", 1)[1])
    return None


def wait_totals(env, service, want, nseries):
    """/metrics once it shows every measurement in nseries series."""
    total, count, vsum = want

    def ready():
        s = snapshot(env, service)
        if (len(s["requests"]) == nseries and sum(s["requests"].values()) == total
                and len(s["count"]) == nseries and sum(s["count"].values()) == count
                and sum(s["sum"].values()) == vsum):
            return s
        return None
    try:
        return tx.wait_for(ready, 15, "%d series of %s holding every measurement"
                           % (nseries, service))
    except tx.Failure:
        s = snapshot(env, service)
        raise tx.Failure("%s: %d/%d series, requests %s of %s, count %s of %s, sum %s of %s"
                         % (service, len(s["requests"]), len(s["count"]),
                            sum(s["requests"].values()), total, sum(s["count"].values()),
                            count, sum(s["sum"].values()), vsum))


def otlp_points(rx, service):
    """The data points of the latest metrics export, by metric name."""
    def latest():
        bodies = rx.accepted("/v1/metrics")
        if not bodies:
            return None
        req = tx.decode(bodies[-1], tx.METRIC_REQ, tx.OWN_PROTO)
        found = {}
        for rm in req.get("resource_metrics", []):
            if attrs(one(rm, "resource", {})).get("service.name") != service:
                continue
            for sm in rm.get("scope_metrics", []):
                for m in sm.get("metrics", []):
                    name = one(m, "name").decode()
                    data = one(m, "sum") or one(m, "histogram")
                    if data:
                        found.setdefault(name, []).extend(data.get("data_points", []))
        return found
    return latest


def check_otlp(rx, service, want, nseries):
    total, count, vsum = want

    def ready():
        found = otlp_points(rx, service)()
        if not found:
            return None
        req, lat = found.get("card.requests", []), found.get("card.latency", [])
        if len(req) != nseries or len(lat) != nseries:
            return None
        if sum(float(one(p, "as_double")) for p in req) != total:
            return None
        if sum(int(one(p, "count")) for p in lat) != count:
            return None
        if sum(float(one(p, "sum")) for p in lat) != vsum:
            return None
        return req, lat
    req, lat = tx.wait_for(ready, 15, "the OTLP export of %d series per metric of %s, exact"
                           % (nseries, service))
    for points in (req, lat):
        over = [p for p in points if attrs(p).get("otel.metric.overflow") is True]
        check(len(over) == 1, "one overflow point with a bool attribute, got %d" % len(over))
        check(attrs(over[0]) == {"otel.metric.overflow": True},
              "the overflow point has no other attribute: %r" % attrs(over[0]))
        ids = [attrs(p).get("id") for p in points if p is not over[0]]
        check(len(set(ids)) == nseries - 1 and None not in ids, "one point per id")


def exporter(env):
    rx = Receiver()
    env.start_exporter(endpoint=rx.url())
    return rx


@tx.with_env
def test_one_process_capped_by_the_shim(env):
    # One process, default table: the shim keeps SHIM_CAP ids of each
    # metric and folds the other 2872 into the overflow series.
    rx = exporter(env)
    try:
        p = start_app(env, "card1", 0, 3000)
        want = expected(0, 3000)
        s = wait_totals(env, "card1", want, SHIM_CAP + 1)
        for fam in ("requests", "count"):
            over = [k for k in s[fam] if OVERFLOW in k]
            check(over == ['service_name="card1",' + OVERFLOW],
                  "one overflow series with the label alone: %r" % over)
        check(self_counter(s["text"], "dynobs_metric_overflow_updates_total", "card1")
              == 2 * (3000 - SHIM_CAP), "the shim counted every update it folded")
        check(self_counter(s["text"], "dynobs_exporter_metric_series_folded_total", "card1") == 0,
              "the exporter folded nothing under its limit")
        check_otlp(rx, "card1", want, SHIM_CAP + 1)
        # Exited: the totals stay, in the same series.
        stop_app(p)
        tx.wait_for(lambda: not env.segments(), 15, "the segment to be reaped")
        after = wait_totals(env, "card1", want, SHIM_CAP + 1)
        check(after["requests"] == s["requests"], "the series kept their values after exit")
        check(self_counter(after["text"], "dynobs_metric_overflow_updates_total", "card1")
              == 2 * (3000 - SHIM_CAP), "the overflow count stays after exit")
    finally:
        rx.stop()


@tx.with_env
def test_two_processes_capped_per_service(env):
    # Two processes of one service with tables large enough that the shim
    # caps at the limit (2000) and never reaches it (1500 ids each): the
    # exporter keeps 2000 ids per metric for the service and folds the
    # other 1000 into the overflow series.
    rx = exporter(env)
    big = {"DYNOBS_METRIC_SLOTS": "16384"}
    try:
        a = start_app(env, "card2", 0, 1500, big)
        b = start_app(env, "card2", 1500, 3000, big)
        want = expected(0, 3000)
        s = wait_totals(env, "card2", want, LIMIT + 1)
        for fam in ("requests", "count"):
            over = [k for k in s[fam] if OVERFLOW in k]
            check(len(over) == 1, "one overflow series: %r" % over)
        check(self_counter(s["text"], "dynobs_metric_overflow_updates_total", "card2") == 0,
              "the shims folded nothing")
        check(self_counter(s["text"], "dynobs_exporter_metric_series_folded_total", "card2")
              == 2 * 1000, "the exporter counted every series it folded")
        check_otlp(rx, "card2", want, LIMIT + 1)
        # One process exits: its totals stay, no series changes place.
        stop_app(a)
        tx.wait_for(lambda: len(env.segments()) == 1, 15, "the first segment to be reaped")
        after = wait_totals(env, "card2", want, LIMIT + 1)
        check(after["requests"] == s["requests"] and after["count"] == s["count"],
              "every series kept its place and value after a process exited")
        stop_app(b)
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
