"""Tests of the Python API (pytest, e.g. Debian's python3-pytest).

Each test runs a small program in a fresh interpreter (every CPython >= 3.9
found on the machine: /usr/bin/python3 and the python3 on PATH) with its
own segment directory, then reads what was recorded with dynobs-dump.

    DYNOBS_BUILD_DIR=build /usr/bin/python3 -m pytest python/tests
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("DYNOBS_BUILD_DIR",
                                       os.path.join(PKG, "..", "build")))
LIB = os.path.join(BUILD, "libdynobs.so")
DUMP = os.path.join(BUILD, "dynobs-dump")


def interpreters():
    seen, out = set(), []
    for p in ("/usr/bin/python3", shutil.which("python3"), sys.executable):
        if not p or not os.path.exists(p):
            continue
        real = os.path.realpath(p)
        r = subprocess.run([p, "-c", "import sys; print(sys.version_info >= (3, 9))"],
                           capture_output=True, text=True)
        if real not in seen and r.stdout.strip() == "True":
            seen.add(real)
            out.append(p)
    return out


PYTHONS = interpreters()


class Interpreter(str):
    """An interpreter (its path) and the path the package's spans take in
    it: "native" (dynobs._native, the C module CMake builds into the
    build directory's python/) or "ctypes" (DYNOBS_PYTHON_NATIVE=0). Every
    test taking the `python` fixture runs with both."""

    def __new__(cls, path, spans):
        s = str.__new__(cls, path)
        s.spans = spans
        return s


def native_module(python):
    """The C module built for this interpreter's ABI, or None."""
    r = subprocess.run([python, "-c", "import importlib.machinery as m; "
                        "print(m.EXTENSION_SUFFIXES[0])"], capture_output=True, text=True)
    path = os.path.join(BUILD, "python", "_native" + r.stdout.strip())
    return path if r.returncode == 0 and os.path.isfile(path) else None


VARIANTS = [pytest.param(Interpreter(p, spans), id="%s-%s" % (p, spans))
            for p in PYTHONS for spans in ("native", "ctypes")]


class Recorded:
    """What dynobs-dump printed, parsed: spans, logs, metrics."""

    def __init__(self, text):
        self.text = text
        self.spans, self.logs, self.metrics = [], [], {}
        cur = None
        for line in text.splitlines():
            m = re.match(r"span (.*?)  kind=(\w+)  trace=(\w+) span=(\w+) parent=(\S+?)(\(remote\))?"
                         r"  [\d.]+ ms  status=(\w+)(?: \"(.*)\")?$", line)
            if m:
                cur = {"name": m[1], "kind": m[2], "trace": m[3], "span": m[4],
                       "parent": None if m[5] == "-" else m[5], "remote": bool(m[6]),
                       "status": m[7], "message": m[8], "attrs": {}, "events": []}
                self.spans.append(cur)
                continue
            m = re.match(r'log (\S*) "(.*)" severity=(\d+)(?: trace=(\w+) span=(\w+))?$', line)
            if m:
                cur = {"text": m[1], "body": m[2], "severity": int(m[3]), "trace": m[4],
                       "span": m[5], "attrs": {}}
                self.logs.append(cur)
                continue
            m = re.match(r"metric (\S+?)\{(.*)\} (\w+)(?: unit=\S+)? (?:value=(\S+)|count=(\d+) "
                         r"sum=(\S+))", line)
            if m:
                self.metrics[(m[1], m[2])] = (float(m[4]) if m[4] is not None
                                              else (int(m[5]), float(m[6])))
                cur = None
                continue
            m = re.match(r"    event (.*)$", line)
            if m and cur is not None and "events" in cur:
                cur["events"].append({"name": m[1], "attrs": {}})
                continue
            m = re.match(r"(    |      )([\w.]+) = (.*)$", line)
            if m and cur is not None:
                target = cur["events"][-1]["attrs"] if len(m[1]) == 6 else cur["attrs"]
                v = m[3]
                if v.startswith('"'):
                    v = v[1:-1] if v.endswith('"') else v[1:]
                elif v in ("true", "false"):
                    v = v == "true"
                elif re.match(r"^-?\d+$", v):
                    v = int(v)
                else:
                    try:
                        v = float(v)
                    except ValueError:
                        pass
                target[m[2]] = v

    def span(self, name):
        found = [s for s in self.spans if s["name"] == name]
        assert len(found) == 1, "span %r: %d found in\n%s" % (name, len(found), self.text)
        return found[0]

    def service_names(self):
        return re.findall(r"^service\.name=(\S+)", self.text, re.M)


def run(code, python=None, env=None, preload=False, expect_rc=0):
    """Runs code in a new interpreter; returns (stdout, Recorded)."""
    out, _, rec = run3(code, python, env, preload, expect_rc)
    return out, rec


def run3(code, python=None, env=None, preload=False, expect_rc=0):
    """run(), also returning what the program wrote to its stderr:
    (stdout, stderr, Recorded)."""
    shm = tempfile.mkdtemp(prefix="dynobs-py-")
    try:
        e = {k: v for k, v in os.environ.items()
             if not k.startswith("OTEL_") and k not in ("LD_PRELOAD", "DYNOBS_CAPTURE_LOGS")}
        e.update(PYTHONPATH=PKG, DYNOBS_SHM_DIR=shm, DYNOBS_LIBRARY=LIB)
        spans = getattr(python, "spans", None)
        if spans == "ctypes":
            e["DYNOBS_PYTHON_NATIVE"] = "0"
        elif spans == "native":
            e.pop("DYNOBS_PYTHON_NATIVE", None)
        if preload:
            e["LD_PRELOAD"] = LIB
        e.update(env or {})
        r = subprocess.run([python or PYTHONS[0], "-c", textwrap.dedent(code)], env=e,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == expect_rc, "exit %d\n%s\n%s" % (r.returncode, r.stdout, r.stderr)
        d = subprocess.run([DUMP, shm], capture_output=True, text=True, timeout=30)
        return r.stdout, r.stderr, Recorded(d.stdout)
    finally:
        shutil.rmtree(shm, ignore_errors=True)


@pytest.fixture(params=VARIANTS)
def python(request):
    py = request.param
    if py.spans == "native" and not native_module(py):
        pytest.skip("no dynobs._native built for %s (a C compiler and its Python.h are "
                    "needed): its ctypes path only" % py)
    return py


def test_built():
    assert os.path.exists(LIB) and os.path.exists(DUMP), "build first: " + BUILD


def test_spans_nest_with_attributes_events_and_status(python):
    out, rec = run("""
        import dynobs
        print(dynobs.enabled())
        with dynobs.span("outer", kind=dynobs.SERVER, attributes={"a": 1, "b": "x"}) as s:
            s.set_attribute("c", True).set_attribute("d", 2.5).set_attribute("big", 1 << 70)
            s.add_event("priced", {"n": 3})
            with dynobs.span("inner") as t:
                t.set_status(dynobs.OK)
            print(dynobs.current_traceparent() == s.traceparent)
        print(dynobs.current_span())
    """, python)
    assert out.split() == ["True", "True", "None"]
    outer, inner = rec.span("outer"), rec.span("inner")
    assert outer["kind"] == "SERVER" and outer["parent"] is None
    assert outer["attrs"] == {"a": 1, "b": "x", "c": True, "d": 2.5,
                              "big": "1180591620717411303424"}
    assert outer["events"] == [{"name": "priced", "attrs": {"n": 3}}]
    assert inner["trace"] == outer["trace"] and inner["parent"] == outer["span"]
    assert not inner["remote"] and inner["status"] == "OK"


def test_exception_sets_error_adds_event_and_is_reraised(python):
    out, rec = run("""
        import dynobs
        class Boom(Exception):
            pass
        try:
            with dynobs.span("work"):
                raise Boom("disk on fire")
        except Boom:
            print("reraised")
        @dynobs.traced()
        def f():
            raise ValueError("bad")
        try:
            f()
        except ValueError:
            print("again")
    """, python)
    assert out.split() == ["reraised", "again"]
    work = rec.span("work")
    assert work["status"] == "ERROR" and work["message"] == "__main__.Boom: disk on fire"
    ev = work["events"][0]
    assert ev["name"] == "exception"
    assert ev["attrs"]["exception.type"] == "__main__.Boom"
    assert ev["attrs"]["exception.message"] == "disk on fire"
    assert "Traceback (most recent call last)" in rec.text
    assert 'File "<string>", line 7, in <module>' in rec.text  # the raise
    assert "__main__.Boom: disk on fire" in rec.text
    assert rec.span("f")["status"] == "ERROR"


def test_traced_decorator_and_asyncio_tasks_keep_their_own_span(python):
    out, rec = run("""
        import asyncio, dynobs

        @dynobs.traced("step")
        async def step(n):
            await asyncio.sleep(0.01)
            return dynobs.current_span().name

        async def task(n):
            with dynobs.span("task%d" % n):
                await asyncio.sleep(0.005 * n)
                with dynobs.span("child%d" % n):
                    await asyncio.sleep(0.01)
                print(await step(n))

        async def main():
            await asyncio.gather(task(1), task(2), task(3))
        asyncio.run(main())

        @dynobs.traced
        def plain():
            return 7
        print(plain())
    """, python)
    assert out.split() == ["step"] * 3 + ["7"]
    for n in (1, 2, 3):
        t, c = rec.span("task%d" % n), rec.span("child%d" % n)
        assert c["parent"] == t["span"] and c["trace"] == t["trace"]
    traces = {rec.span("task%d" % n)["trace"] for n in (1, 2, 3)}
    assert len(traces) == 3
    steps = [s for s in rec.spans if s["name"] == "step"]
    assert sorted(s["trace"] for s in steps) == sorted(traces)
    assert rec.span("plain")["parent"] is None


def test_attach_continues_a_remote_trace(python):
    out, rec = run("""
        import dynobs
        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        with dynobs.attach(tp, "vendor=abc"):
            print(dynobs.current_traceparent())
            with dynobs.span("job") as s:
                pass
        print(dynobs.current_traceparent())
        for bad in ("00-xyz", "00-00000000000000000000000000000000-b7ad6b7169203331-01", None):
            try:
                with dynobs.attach(bad):
                    pass
            except ValueError as e:
                print("refused")
    """, python)
    lines = out.split()
    assert lines[0] == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert lines[1] == "None" and lines[2:] == ["refused"] * 3
    job = rec.span("job")
    assert job["trace"] == "0af7651916cd43dd8448eb211c80319c"
    assert job["parent"] == "b7ad6b7169203331" and job["remote"]
    assert "tracestate: vendor=abc" in rec.text


def test_metrics(python):
    out, rec = run("""
        import dynobs
        c = dynobs.counter("orders", "{order}")
        c.add(2, {"region": "eu"}); c.add(3, {"region": "eu"}); c.add(1)
        dynobs.updown_counter("queue.depth").add(5); dynobs.updown_counter("queue.depth").add(-2)
        dynobs.gauge("temperature", "Cel").set(21.5, {"room": "a"})
        h = dynobs.histogram("latency", "s", bounds=[0.1, 1])
        for v in (0.05, 0.5, 5):
            h.record(v)
        for bad in (lambda: c.add(-1), lambda: c.add(1, {"k": "a,b"}),
                    lambda: dynobs.histogram("h2", bounds=[2, 1])):
            try:
                bad()
            except ValueError:
                print("refused")
    """, python)
    assert out.split() == ["refused"] * 3
    assert rec.metrics[("orders", "region=eu")] == 5
    assert rec.metrics[("orders", "")] == 1
    assert rec.metrics[("queue.depth", "")] == 3
    assert rec.metrics[("temperature", "room=a")] == 21.5
    assert rec.metrics[("latency", "")] == (3, 5.55)
    assert "buckets=1,1,1" in rec.text


def test_logging_handler_forwards_records_in_their_span(python):
    out, rec = run("""
        import logging, threading, dynobs
        dynobs.enable(logs=True)
        log = logging.getLogger("shop.cart")
        log.setLevel(logging.DEBUG)
        with dynobs.span("checkout") as s:
            log.warning("low stock: %d left", 3)
            try:
                1 / 0
            except ZeroDivisionError:
                log.exception("pricing failed")
        log.info("outside")
        log.error("bad format %d", "x")   # logging reports it; we must not raise
        print(dynobs.stats["log_handler_errors"])
    """, python)
    by = {l["body"]: l for l in rec.logs}
    w = by["low stock: 3 left"]
    checkout = rec.span("checkout")
    assert w["text"] == "WARNING" and w["severity"] == 13
    assert w["trace"] == checkout["trace"] and w["span"] == checkout["span"]
    assert w["attrs"]["logger.name"] == "shop.cart"
    assert w["attrs"]["code.function"] == "<module>" and w["attrs"]["code.lineno"] == 7
    assert w["attrs"]["thread.name"] == "MainThread" and w["attrs"]["thread.id"] > 0
    e = by["pricing failed"]
    assert e["severity"] == 17 and e["attrs"]["exception.type"] == "ZeroDivisionError"
    assert e["attrs"]["exception.message"] == "division by zero"
    assert by["outside"]["trace"] is None and by["outside"]["severity"] == 9
    assert out.split() == ["1"]


# The application's logging set-up must do what it does without dynobs.
# Each program below runs twice, with and without dynobs.enable() (called
# through enable_here(), where the program says), and its console output
# must be the same both ways and the expected one; the run with dynobs
# must have exported exactly the records the application's levels let
# through, each once.
LOGGING_PRELUDE = """
import logging, logging.config, os, sys, dynobs

def enable_here(**kw):
    if os.environ["T_ENABLE"] == "1":
        dynobs.enable(**kw)
"""


def run_logging(code, python, console, without=()):
    """Runs code with and without dynobs.enable(); asserts that both
    runs wrote `console` to stderr and the same stdout, and that the run
    without enable() exported the records `without` (body, severity).
    Returns the Recorded of the run with enable()."""
    code = LOGGING_PRELUDE + textwrap.dedent(code)
    out, err, rec = run3(code, python, env={"T_ENABLE": "1"})
    out0, err0, rec0 = run3(code, python, env={"T_ENABLE": "0"})
    assert err0 == console, "without dynobs, Python's logging printed\n%s" % err0
    assert err == console, "with dynobs, the console got\n%s\ninstead of\n%s" % (err, console)
    assert out == out0
    assert bodies(rec0) == list(without)
    return rec


def bodies(rec):
    return [(l["body"], l["severity"]) for l in rec.logs]


def test_basic_config_after_enable_prints_and_exports_info(python):
    rec = run_logging("""
        enable_here()
        logging.basicConfig(level=logging.INFO)
        log = logging.getLogger("shop")
        with dynobs.span("checkout"):
            log.info("priced %d items", 3)
        log.debug("debug is below the configured level")
        log.warning("low stock")
    """, python, "INFO:shop:priced 3 items\nWARNING:shop:low stock\n")
    assert bodies(rec) == [("priced 3 items", 9), ("low stock", 13)]
    priced, checkout = rec.logs[0], rec.span("checkout")
    assert priced["trace"] == checkout["trace"] and priced["span"] == checkout["span"]
    assert priced["attrs"]["logger.name"] == "shop" and priced["text"] == "INFO"
    assert rec.logs[1]["trace"] is None


def test_basic_config_before_enable_prints_and_exports_info(python):
    rec = run_logging("""
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        enable_here()
        log = logging.getLogger("shop")
        log.info("priced")
        log.debug("debug is below the configured level")
    """, python, "INFO shop: priced\n")
    assert bodies(rec) == [("priced", 9)]


def test_application_levels_decide_what_is_exported(python):
    rec = run_logging("""
        enable_here()
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        log = logging.getLogger("shop")
        log.info("info is below the configured level")
        log.warning("low stock")
        db = logging.getLogger("shop.db")
        db.setLevel(logging.ERROR)
        db.warning("a warning below shop.db's level")
        db.error("connection lost")
        trace = logging.getLogger("shop.trace")
        trace.setLevel(logging.DEBUG)
        trace.debug("step 1")
        # A handler the application adds after enable() gets what it would
        # without dynobs.
        out = logging.StreamHandler(sys.stdout)
        out.setLevel(logging.ERROR)
        logging.getLogger().addHandler(out)
        log.error("payment failed")
    """, python, "WARNING shop: low stock\nERROR shop.db: connection lost\n"
                 "DEBUG shop.trace: step 1\nERROR shop: payment failed\n")
    assert bodies(rec) == [("low stock", 13), ("connection lost", 17), ("step 1", 5),
                           ("payment failed", 17)]


def test_no_logging_set_up_keeps_logging_s_last_resort(python):
    # Without handlers, logging prints WARNING and above on stderr (its
    # last resort); a logger level set by the application exports below.
    rec = run_logging("""
        enable_here()
        log = logging.getLogger("shop")
        log.info("info is below the root logger's default WARNING")
        log.warning("low stock")
        cart = logging.getLogger("cart")
        cart.setLevel(logging.INFO)
        cart.info("added")
        enable_here(logs=False)
        log.warning("printed, not exported")
    """, python, "low stock\nprinted, not exported\n")
    assert bodies(rec) == [("low stock", 13), ("added", 9)]


def test_basic_config_force_replaces_the_set_up(python):
    rec = run_logging("""
        enable_here()
        logging.basicConfig(level=logging.INFO)
        log = logging.getLogger("shop")
        log.info("first set-up")
        logging.basicConfig(force=True, level=logging.ERROR, format="%(levelname)s|%(message)s")
        log.warning("a warning below the new level")
        log.error("second set-up")
    """, python, "INFO:shop:first set-up\nERROR|second set-up\n")
    assert bodies(rec) == [("first set-up", 9), ("second set-up", 17)]


def test_dict_config_and_loggers_that_do_not_propagate(python):
    # "access" keeps its records to its own handler (propagate=False, as
    # uvicorn's and gunicorn's access loggers do): still exported, since
    # the application outputs them. "silenced" sends them to a NullHandler
    # only: the application discards them, and so does dynobs. "lonely" has
    # no handler: logging's last resort prints its warnings, which are
    # exported, and drops its INFO records.
    rec = run_logging("""
        enable_here()
        logging.config.dictConfig({
            "version": 1,
            "formatters": {"f": {"format": "%(name)s %(levelname)s %(message)s"}},
            "handlers": {
                "console": {"class": "logging.StreamHandler", "formatter": "f",
                            "stream": "ext://sys.stderr"},
                "quiet": {"class": "logging.NullHandler"}},
            "loggers": {
                "access": {"handlers": ["console"], "level": "INFO", "propagate": False},
                "silenced": {"handlers": ["quiet"], "level": "INFO", "propagate": False},
                "lonely": {"level": "INFO", "propagate": False}},
            "root": {"handlers": ["console"], "level": "INFO"},
        })
        logging.getLogger("app").info("started")
        logging.getLogger("access").info("GET /")
        logging.getLogger("silenced").warning("discarded")
        logging.getLogger("app").debug("debug is below the configured level")
        logging.getLogger("lonely").info("dropped by the last resort")
        logging.getLogger("lonely").warning("disk full")
    """, python, "app INFO started\naccess INFO GET /\ndisk full\n")
    assert bodies(rec) == [("started", 9), ("GET /", 9), ("disk full", 13)]


def test_explicit_logging_handler_and_enable_export_once(python):
    rec = run_logging("""
        logging.basicConfig(level=logging.INFO)
        logging.getLogger().addHandler(dynobs.LoggingHandler())
        enable_here()
        log = logging.getLogger("shop")
        with dynobs.span("checkout"):
            log.info("priced")
        log.warning("low stock")
    """, python, "INFO:shop:priced\nWARNING:shop:low stock\n",
                        without=[("priced", 9), ("low stock", 13)])
    assert bodies(rec) == [("priced", 9), ("low stock", 13)]
    assert rec.logs[0]["span"] == rec.span("checkout")["span"]
    # The application's LoggingHandler decides what it exports, also with
    # enable(): its level here.
    _, rec = run("""
        import logging, dynobs
        h = dynobs.LoggingHandler()
        h.setLevel(logging.ERROR)
        logging.getLogger().addHandler(h)
        dynobs.enable()
        log = logging.getLogger("shop")
        log.setLevel(logging.INFO)
        log.warning("below the handler's level")
        log.error("payment failed")
    """, python)
    assert bodies(rec) == [("payment failed", 17)]
    # Behind a QueueListener (another thread), once, in the span of the
    # thread that logged.
    _, rec = run("""
        import logging, logging.handlers, queue, dynobs
        q = queue.Queue()
        logging.getLogger().addHandler(logging.handlers.QueueHandler(q))
        listener = logging.handlers.QueueListener(q, dynobs.LoggingHandler())
        listener.start()
        dynobs.enable()
        log = logging.getLogger("shop")
        log.setLevel(logging.INFO)
        with dynobs.span("checkout"):
            log.info("priced")
        listener.stop()
    """, python)
    assert bodies(rec) == [("priced", 9)]
    assert rec.logs[0]["span"] == rec.span("checkout")["span"]
    # Without enable(), the handler exports what reaches it, as always.
    _, rec = run("""
        import logging, dynobs
        logging.getLogger().addHandler(dynobs.LoggingHandler())
        log = logging.getLogger("shop")
        log.setLevel(logging.INFO)
        log.info("priced")
    """, python)
    assert bodies(rec) == [("priced", 9)]


def test_enable_explicit_arguments_win_over_the_environment(python):
    _, rec = run("""
        import dynobs
        dynobs.enable(service_name="explicit")
        with dynobs.span("x"):
            pass
    """, python, env={"OTEL_SERVICE_NAME": "from-env"})
    assert rec.service_names() == ["explicit"]
    _, rec = run("""
        import dynobs
        with dynobs.span("x"):
            pass
    """, python, env={"OTEL_SERVICE_NAME": "from-env"})
    assert rec.service_names() == ["from-env"]
    out, rec = run("""
        import dynobs
        dynobs.enable(sampler="always_off")
        with dynobs.span("x") as s:
            print(int(s.traceparent[-2:], 16) & 1)  # the sampled flag
        dynobs.enable(traces=False)
        with dynobs.span("y") as s:
            print(s.recording)
    """, python, env={"OTEL_TRACES_SAMPLER": "always_on"})
    assert out.split() == ["0", "False"]
    assert rec.spans == []


def test_preloaded_service_name_set_in_time_or_refused(python):
    out, rec = run("""
        import warnings, dynobs
        dynobs.enable(service_name="early")
        dynobs.counter("c").add(1)
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            dynobs.enable(service_name="late")
            print(len(w), "already fixed" in str(w[0].message))
    """, python, preload=True)
    assert out.split() == ["1", "True"]
    assert rec.service_names() == ["early"]


def test_http_call_inside_a_python_span_is_its_child(python):
    out, rec = run("""
        import http.server, threading, urllib.request, dynobs

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        with dynobs.span("fetch") as s:
            body = urllib.request.urlopen("http://127.0.0.1:%d/x" % srv.server_port).read()
        print(body.decode())
        srv.shutdown()
    """, python, preload=True)
    assert out.split() == ["ok"]
    fetch = rec.span("fetch")
    client = [s for s in rec.spans if s["kind"] == "CLIENT"]
    server = [s for s in rec.spans if s["kind"] == "SERVER"]
    assert len(client) == 1 and client[0]["parent"] == fetch["span"]
    assert client[0]["trace"] == fetch["trace"]
    # The server end (same process, another thread) continued the trace
    # from the traceparent the shim injected.
    assert len(server) == 1 and server[0]["parent"] == client[0]["span"] and server[0]["remote"]


def test_plain_interpreter_without_the_library_is_a_no_op(python):
    out, _ = run("""
        import warnings, dynobs
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            with dynobs.span("x") as s:
                s.set_attribute("k", 1)
            dynobs.counter("c").add(1)
            print(dynobs.enabled(), s.recording, len(w))
    """, python, env={"DYNOBS_LIBRARY": "/nonexistent/libdynobs.so"})
    assert out.split() == ["False", "False", "1"]


def test_baggage_set_get_and_sent_on(python):
    out, rec = run("""
        import http.server, threading, urllib.request, dynobs

        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = (self.headers.get("baggage") or "-").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *a):
                pass

        srv = http.server.HTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        url = "http://127.0.0.1:%d/x" % srv.server_port
        print(dynobs.get_baggage("tenant"))
        with dynobs.span("outer"):
            with dynobs.set_baggage("tenant", "acme"), dynobs.set_baggage("plan", "gold"):
                print(dynobs.get_baggage("tenant"), dynobs.get_baggage("plan"))
                print(urllib.request.urlopen(url).read().decode())
                with dynobs.set_baggage("tenant", None):
                    print(dynobs.get_baggage("tenant"))
            print(dynobs.get_baggage("tenant"))
            print(urllib.request.urlopen(url).read().decode())
        try:
            with dynobs.set_baggage("bad key", "x"):
                pass
        except ValueError:
            print("refused")
        srv.shutdown()
    """, python, preload=True)
    assert out.split("\n")[:7] == ["None", "acme gold", "tenant=acme,plan=gold", "None", "None",
                                   "-", "refused"], out


def test_declared_metrics_and_stats(python):
    out, rec = run("""
        import math, dynobs
        q = dynobs.gauge("queue.depth", "{job}", description="Jobs waiting")
        for v in (4, 9, 1, 6):
            q.set(v, {"queue": "a"})
        s = dynobs.stats("queue.depth", labels={"queue": "a"})
        print(s["count"], s["sum"], s["avg"], s["min"], s["max"], s["value"], s["kind"],
              10000 <= s["window_ms"] <= 11000)
        s = q.stats({"queue": "a"}, window_ms=0)
        print(s["count"], s["window_ms"])
        h = dynobs.histogram("job.seconds", "s", bounds=[1, 5], description="Job time")
        for v in (0.5, 2, 7):
            h.record(v)
        s = dynobs.stats("job.seconds", labels="", window_ms=1000)
        print(s["count"], s["min"], s["max"])
        c = dynobs.counter("jobs", description="Jobs done")
        c.add(3)
        s = dynobs.stats("jobs")
        print(s["value"], s["count"], math.isnan(s["avg"]))
        print(dynobs.stats("nothing.here"))
        try:
            dynobs.stats("queue.depth", labels="queue=a", window_ms=60000)
        except ValueError:
            print("too long")
        dynobs.gauge("queue.depth", "{job}", description="Jobs waiting")  # the same: fine
        for bad in (lambda: dynobs.gauge("queue.depth", "{job}", description="Other"),
                    lambda: dynobs.counter("queue.depth", description="Jobs waiting")):
            try:
                bad()
            except dynobs.MetricConflict:
                print("conflict")
        dynobs.updown("workers", description="Busy").add(2)
        print(dynobs.stats["spans_refused"])  # still the counters too
    """, python)
    lines = out.splitlines()
    assert lines[0] == "4 20.0 5.0 1.0 9.0 6.0 gauge True"
    assert lines[1] == "4 0"
    assert lines[2] == "3 0.5 7.0"
    assert lines[3] == "3.0 0 True"
    assert lines[4] == "None"
    assert lines[5] == "too long"
    assert lines[6:8] == ["conflict", "conflict"]
    assert lines[8] == "0"
    assert 'declared queue.depth gauge unit={job} "Jobs waiting"' in rec.text
    assert 'declared job.seconds histogram unit=s "Job time"' in rec.text
    assert "conflicts=2" in rec.text
    assert rec.metrics[("workers", "")] == 2


def test_watch(python):
    out, rec = run("""
        import threading, time, dynobs
        g = dynobs.gauge("load")
        g.set(1)
        seen, done = [], threading.Event()
        def on(ev):
            seen.append((ev["condition"], ev["previous"], ev["value"],
                         threading.current_thread() is threading.main_thread()))
        w = dynobs.watch("load", on, above=5)
        own = []
        def once(ev):
            own.append(ev["value"])
            print("cancel inside", ev["id"] == wo.id, wo.cancel(), wo.active)
        wo = g.watch(once, below=0.5)
        many = [0] * 50
        def count(i):
            def f(ev):
                many[i] += 1
            return f
        ws = [dynobs.watch("load", count(i), change=0) for i in range(50)]
        time.sleep(0.05)
        for v in (7, 8, 2, 0, 9):   # above at 7 and 9; below 0.5 once at 0
            g.set(v)
            time.sleep(0.05)
        print(seen)
        print(own)
        print(set(many))
        print(w.cancel(), w.cancel(), w.active)
        for x in ws:
            x.cancel()
        g.set(0); time.sleep(0.05); g.set(10); time.sleep(0.05)
        print(len(seen))
        def boom(ev):
            raise RuntimeError("callback failed")
        b = dynobs.watch("load", boom, below=5)
        g.set(1); time.sleep(0.05)
        print(dynobs.stats["watch_callback_errors"])
        for bad in (lambda: dynobs.watch("load", on), lambda: dynobs.watch("load", on, above=1,
                    below=2), lambda: dynobs.watch("bad name", on, above=1)):
            try:
                bad()
            except ValueError:
                print("refused")
        # b stays active: cancelled at exit
    """, python)
    lines = out.splitlines()
    assert lines[0] == "cancel inside True True False"
    assert lines[1] == "[('above', 1.0, 7.0, False), ('above', 0.0, 9.0, False)]"
    assert lines[2] == "[0.0]"
    assert lines[3] == "{5}"
    assert lines[4] == "True False False"
    assert lines[5] == "2"
    assert lines[6] == "1"
    assert lines[7:] == ["refused"] * 3
