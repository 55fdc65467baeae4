"""The product surface: the dynobs-run launcher, log capture (stderr and
syslog), and a request through two Python services whose shim spans,
Python API spans and log records share one trace at the OTLP receiver.

usage: test_product.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
import test_http_server as hs  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import service  # noqa: E402

BUILD, SOURCE = tx.BUILD, tx.SOURCE
RUN = os.path.join(BUILD, "dynobs-run")
DUMP = os.path.join(BUILD, "dynobs-dump")
PYDIR = os.path.join(SOURCE, "python")
check, wait_for, one, attrs, hexid = tx.check, tx.wait_for, tx.one, tx.attrs, tx.hexid
LIBM = "/lib/x86_64-linux-gnu/libm.so.6"


def launcher_env(env, extra=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("LD_PRELOAD", "OTEL_SERVICE_NAME") and not k.startswith("OTEL_EXPORTER")}
    e.update(DYNOBS_SHM_DIR=env.shm, PYTHONPATH=PYDIR, DYNOBS_EXPORTER_IDLE_EXIT="2",
             OTEL_BSP_SCHEDULE_DELAY="100", OTEL_METRIC_EXPORT_INTERVAL="300",
             OTEL_EXPORTER_PROMETHEUS_PORT="0", DYNOBS_DRAIN_INTERVAL="20")
    e.update(extra or {})
    return e


def exporters_of(shm):
    """PIDs of dynobs-exporter processes draining this directory."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % pid) as f:
                if f.read().strip() != "dynobs-exporter":
                    continue
            with open("/proc/%s/environ" % pid, "rb") as f:
                if ("DYNOBS_SHM_DIR=" + shm).encode() in f.read().split(b"\0"):
                    out.append(int(pid))
        except OSError:
            pass
    return out


def stop_exporters(shm):
    for pid in exporters_of(shm):
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def log_records(rx):
    recs = []
    for body in rx.accepted("/v1/logs"):
        for rl in tx.decode(body, tx.LOG_REQ, tx.OWN_PROTO).get("resource_logs", []):
            res = attrs(one(rl, "resource", {}))
            for sl in rl.get("scope_logs", []):
                recs += [(res, r) for r in sl.get("log_records", [])]
    return recs


def body_of(rec):
    return one(one(rec, "body", {}), "string_value", b"").decode()


@tx.with_env
def test_launcher_exit_status_environment_and_errors(env):
    e = launcher_env(env)
    r = subprocess.run([RUN, "--no-exporter", "--", "sh", "-c", "exit 7"], env=e)
    check(r.returncode == 7, "exit status passed through: %d" % r.returncode)
    r = subprocess.run([RUN, "--no-exporter", "--", "/nonexistent/cmd"], env=e,
                       capture_output=True, text=True)
    check(r.returncode == 127, "missing command: %d" % r.returncode)
    for bad in (["--bogus", "--", "true"], [], ["--prometheus", "nope", "--", "true"],
                ["--otlp", "ftp://x", "--", "true"]):
        r = subprocess.run([RUN] + bad, env=e, capture_output=True, text=True)
        check(r.returncode == 2 and "dynobs-run" in r.stderr + r.stdout or bad == [] and
              r.returncode == 2, "%s: exit %d %s" % (bad, r.returncode, r.stderr))
    show = ["sh", "-c", 'echo "$LD_PRELOAD|$OTEL_SERVICE_NAME"']
    lib = os.path.realpath(tx.LIB)
    r = subprocess.run([RUN, "--no-exporter", "--"] + show, env=dict(e, LD_PRELOAD=LIBM),
                       capture_output=True, text=True)
    check(r.stdout.strip() == "%s:%s|sh" % (lib, LIBM), "prepended: %r" % r.stdout)
    r = subprocess.run([RUN, "--no-exporter", "--service-name", "billing", "--"] + show, env=e,
                       capture_output=True, text=True)
    check(r.stdout.strip() == "%s|billing" % lib, "service name: %r" % r.stdout)
    r = subprocess.run([RUN, "--no-exporter", "--"] + show,
                       env=dict(e, OTEL_SERVICE_NAME="from-env"), capture_output=True, text=True)
    check(r.stdout.strip() == "%s|from-env" % lib, "environment kept: %r" % r.stdout)
    check(exporters_of(env.shm) == [], "--no-exporter started one")


@tx.with_env
def test_launcher_forwards_signals(env):
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: sys.exit(5))\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n")
    p = subprocess.Popen([RUN, "--no-exporter", "--", "/usr/bin/python3", "-c", code],
                         env=launcher_env(env), stdout=subprocess.PIPE, text=True)
    env.procs.append(p)
    check(p.stdout.readline().strip() == "ready", "child started")
    p.send_signal(signal.SIGTERM)
    check(p.wait(10) == 5, "the handler's exit status: %s" % p.returncode)
    p = subprocess.Popen([RUN, "--no-exporter", "--", "sleep", "30"], env=launcher_env(env))
    env.procs.append(p)
    time.sleep(0.3)
    p.send_signal(signal.SIGINT)
    check(p.wait(10) == -signal.SIGINT, "killed by the signal: %s" % p.returncode)


@tx.with_env
def test_one_exporter_for_two_launches(env):
    rx = Receiver()
    try:
        e = launcher_env(env, {"DYNOBS_EXPORTER_IDLE_EXIT": "4"})
        cmd = [RUN, "--otlp", rx.url(), "--", tx.SCENARIO, "nested"]
        procs = [subprocess.Popen(cmd, env=e, stdout=subprocess.DEVNULL) for _ in range(2)]
        for p in procs:
            check(p.wait(30) == 0, "scenario exit %s" % p.returncode)
        # If both launches started one at the same moment, the lock lets
        # one drain and the other exits at once, saying so.
        xs = wait_for(lambda: (lambda x: x if len(x) == 1 else None)(exporters_of(env.shm)), 10,
                      "exactly one exporter for the directory")

        def pids():
            got = {r["process.pid"] for r, _ in tx.spans_of(rx.accepted("/v1/traces"))}
            return got if len(got) == 2 else None
        wait_for(pids, 15, "spans of both launches")
        names = {r["service.name"] for r, _ in tx.spans_of(rx.accepted("/v1/traces"))}
        check(names == {"dynobs-scenario"}, "service name defaults to the command: %s" % names)
        # A third launch while it runs reuses it.
        r = subprocess.run(cmd, env=e, stdout=subprocess.DEVNULL)
        check(r.returncode == 0 and exporters_of(env.shm) == xs, "reused")
        # Idle (DYNOBS_EXPORTER_IDLE_EXIT=4): it drains, reaps and leaves.
        wait_for(lambda: not exporters_of(env.shm), 20, "the idle exporter to exit")
        check(env.segments() == [], "segments reaped: %s" % env.segments())
    finally:
        stop_exporters(env.shm)
        rx.stop()


CAPTURE = r'''
import os, sys, syslog, dynobs
with dynobs.span("job") as s:
    print(s.traceparent, flush=True)
    sys.stderr.write("first line\n")
    sys.stderr.flush()
    os.write(2, b"second ")
    os.write(2, b"line\r\nthird line\n")
    syslog.syslog(syslog.LOG_WARNING, "disk 91% full")
    syslog.syslog(syslog.LOG_ERR, "cannot write")
os.write(2, b"outside\n")
os.write(2, b"no newline at exit")
'''


@tx.with_env
def test_stderr_and_syslog_become_log_records(env):
    for capture in ("1", None):
        e = env.app_env({"PYTHONPATH": PYDIR, "OTEL_SERVICE_NAME": "capture"})
        if capture:
            e["DYNOBS_CAPTURE_LOGS"] = capture
        r = subprocess.run(["/usr/bin/python3", "-c", CAPTURE], env=e, capture_output=True,
                           timeout=60)
        check(r.returncode == 0, r.stderr)
        # What the service wrote still reaches its stderr, unchanged.
        check(r.stderr == b"first line\nsecond line\r\nthird line\noutside\nno newline at exit",
              "stderr untouched: %r" % r.stderr)
        tp = r.stdout.decode().strip()
        d = subprocess.run([DUMP, "--drain", env.shm], capture_output=True, text=True).stdout
        logs = [l for l in d.splitlines() if l.startswith("log ")]
        if not capture:
            check(logs == [], "nothing captured unless asked: %s" % logs)
            continue
        want = ['log  "first line" severity=0', 'log  "second line" severity=0',
                'log  "third line" severity=0', 'log warning "disk 91% full" severity=13',
                'log err "cannot write" severity=17']
        ids = " trace=%s span=%s" % (tp[3:35], tp[36:52])
        check(logs == [w + ids for w in want] + ['log  "outside" severity=0',
                                                 'log  "no newline at exit" severity=0'],
              "records:\n%s" % "\n".join(logs))
        check(d.count("log.iostream = \"stderr\"") == 5, "stderr records are marked")
        for f in os.listdir(env.shm):
            os.unlink(os.path.join(env.shm, f))


SHOP = service(r'''
import http.server, logging, sys, urllib.request, dynobs
dynobs.enable(logs=True)
log = logging.getLogger("shop")
log.setLevel(logging.INFO)

class Handler(QuietHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/order"):
            with dynobs.span("price-order", attributes={"order.items": 2}):
                log.info("pricing order")
                with urllib.request.urlopen(sys.argv[2] + "/stock") as r:
                    stock = r.read()
            body = b"order ok, " + stock
        else:
            log.warning("stock is low")
            body = b"stock 3"
        self.reply(body)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
''')


@tx.with_env
def test_python_spans_shim_spans_and_logs_share_a_trace(env):
    rx = Receiver()
    try:
        e = launcher_env(env, {"OTEL_BSP_SCHEDULE_DELAY": "100"})
        pa, pb = tx.free_port(), tx.free_port()
        procs = []
        for name, port, peer in (("shop", pa, pb), ("stock", pb, pa)):
            p = subprocess.Popen([RUN, "--otlp", rx.url(), "--service-name", name, "--",
                                  "/usr/bin/python3", "-c", SHOP, str(port),
                                  "http://127.0.0.1:%d" % peer], env=e,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            p.stop_signal = signal.SIGTERM
            env.procs.append(p)
            procs.append(p)
            hs.wait_listening(port, p, name)
        with urllib.request.urlopen("http://127.0.0.1:%d/order/7" % pa, timeout=10) as r:
            check(r.read() == b"order ok, stock 3", "response")

        def spans():
            got = tx.spans_of(rx.accepted("/v1/traces"))
            return got if len(got) >= 4 else None
        got = wait_for(spans, 15, "4 spans")
        by = {}
        for res, sp in got:
            by[(res["service.name"], one(sp, "name").decode())] = sp
        check(len(got) == 4, "exactly 4 spans: %s" % sorted(by))
        price, server_b = by[("shop", "price-order")], by[("stock", "GET /stock")]
        client = [sp for res, sp in got if res["service.name"] == "shop" and
                  one(sp, "kind") in ("SPAN_KIND_CLIENT", "3")][0]
        server_a = [sp for res, sp in got if res["service.name"] == "shop" and
                    one(sp, "kind") in ("SPAN_KIND_SERVER", "2")][0]
        trace = hexid(server_a, "trace_id")
        check(all(hexid(sp, "trace_id") == trace for _, sp in got), "one trace")
        check(hexid(price, "parent_span_id") == hexid(server_a, "span_id"), "Python span under "
              "the shim's server span")
        check(hexid(client, "parent_span_id") == hexid(price, "span_id"), "HTTP call under the "
              "Python span")
        check(hexid(server_b, "parent_span_id") == hexid(client, "span_id"), "B continues A")

        def logs():
            got = log_records(rx)
            return got if len(got) >= 2 else None
        recs = {body_of(r): (res, r) for res, r in wait_for(logs, 15, "2 log records")}
        res, info = recs["pricing order"]
        check(res["service.name"] == "shop", "log resource")
        check(hexid(info, "trace_id") == trace and hexid(info, "span_id") == hexid(price, "span_id"),
              "the log record is in the Python span")
        res, warn = recs["stock is low"]
        check(res["service.name"] == "stock" and hexid(warn, "trace_id") == trace and
              hexid(warn, "span_id") == hexid(server_b, "span_id"),
              "B's log record is in B's server span")
    finally:
        for p in env.procs:
            if p.poll() is None:
                p.terminate()
        stop_exporters(env.shm)
        rx.stop()


@tx.with_env
def test_python_enable_starts_an_exporter_for_its_endpoint(env):
    """A plain interpreter (no preload): enable() loads the library and,
    as no exporter drains the directory, starts one sending to endpoint."""
    rx = Receiver()
    try:
        e = launcher_env(env, {"DYNOBS_LIBRARY": tx.LIB,
                               "DYNOBS_EXPORTER": tx.EXPORTER})
        code = ("import dynobs\n"
                "print(dynobs.enable(service_name='py-plain', endpoint=%r))\n"
                "with dynobs.span('plain-job', attributes={'n': 1}) as s:\n"
                "    print(s.traceparent)\n" % rx.url())
        r = subprocess.run(["/usr/bin/python3", "-c", code], env=e, capture_output=True,
                           text=True, timeout=60)
        check(r.returncode == 0, r.stderr)
        ok, tp = r.stdout.split()
        check(ok == "True", "enabled")

        def spans():
            got = tx.spans_of(rx.accepted("/v1/traces"))
            return got or None
        res, sp = wait_for(spans, 15, "the span at the receiver")[0]
        check(res["service.name"] == "py-plain" and one(sp, "name") == b"plain-job", "span")
        check(hexid(sp, "trace_id") == tp[3:35], "trace id")
        check(len(exporters_of(env.shm)) == 1, "one exporter started")
    finally:
        stop_exporters(env.shm)
        rx.stop()


if __name__ == "__main__":
    sys.exit(tx.run_tests(globals()))
