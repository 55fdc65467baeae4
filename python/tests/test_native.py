"""The two paths of the package's spans: dynobs._native (C, built by
CMake or pip) and ctypes (DYNOBS_PYTHON_NATIVE=0, or no compiler). Every
test of the package runs with both (the `python` fixture); these tests
pin that the path under test is the one in use, and the corners where a
C fast path could part from the Python one: arguments it hands back to
Python, refused spans, spans ended by hand, contexts left in another
context, threads, and the wheel pip builds with and without a compiler.

    DYNOBS_BUILD_DIR=build /usr/bin/python3 -m pytest python/tests
"""

import glob
import importlib.util
import os
import subprocess
import tempfile
import zipfile

import pytest

from test_dynobs import LIB, PKG, python, run  # noqa: F401  (the fixture)


def test_the_path_under_test_is_the_one_in_use(python):
    out, rec = run("""
        import dynobs
        print(dynobs._native is not None, dynobs.Span.__mro__[1].__name__,
              type(dynobs.Span.set_attribute).__name__)
        with dynobs.span("x"):
            pass
    """, python)
    want = ("True SpanBase method_descriptor" if python.spans == "native"
            else "False _PySpanBase function")
    assert out.strip() == want
    assert rec.span("x")["parent"] is None


def test_arguments_the_fast_path_hands_to_python(python):
    out, rec = run("""
        import dynobs
        def err(f):
            try:
                f()
            except Exception as e:
                return type(e).__name__
            return "none"
        print(err(lambda: dynobs.span("a", 9)), err(lambda: dynobs.span(3)),
              err(lambda: dynobs.span("a", kind="x")), err(lambda: dynobs.span()),
              err(lambda: dynobs.span("a", nope=1)), err(lambda: dynobs.span("a", 1, kind=1)),
              err(lambda: dynobs.start_span("a", parent="00-zz")))
        with dynobs.span("kw", kind=dynobs.CLIENT):
            pass
        with dynobs.span(name="named", kind=True):  # True == 1: INTERNAL, as in Python
            pass
        with dynobs.span(b"bytes"):
            pass
        with dynobs.span("sur\\udc80rogate"):
            pass
        with dynobs.span("nul\\x00cut"):
            pass
        with dynobs.span("empty", attributes={}, parent=None, root=0):
            pass
        with dynobs.start_span("root", dynobs.SERVER, None, None, True):
            pass
    """, python)
    assert out.split() == ["ValueError", "TypeError", "ValueError", "TypeError", "TypeError",
                           "TypeError", "ValueError"]
    assert rec.span("kw")["kind"] == "CLIENT"
    assert rec.span("named")["kind"] == "INTERNAL"
    assert rec.span("bytes")["parent"] is None
    assert rec.span("sur?rogate")["parent"] is None
    assert rec.span("nul")["parent"] is None
    assert rec.span("empty")["kind"] == "INTERNAL"
    assert rec.span("root")["kind"] == "SERVER"


def test_refused_spans_are_counted_and_do_nothing(python):
    # Started without a with-block, no span of ours becomes current: each
    # start is the common case, until the thread's pool of open spans is
    # full and the library refuses.
    out, rec = run("""
        import dynobs
        spans = [dynobs.start_span("open%d" % i) for i in range(40)]
        refused = [s for s in spans if not s.recording]
        print(len(refused), dynobs.stats["spans_refused"], refused[0].traceparent,
              refused[0]._h, refused[0].name)
        with refused[0] as r:
            r.set_attribute("k", 1).add_event("e").set_status(dynobs.ERROR)
            print(dynobs.current_span() is r)
        for s in reversed(spans):
            s.end()
            s.end()
        print(sum(s.recording for s in spans))
    """, python)
    n, counted, tp, h, name, current, left = out.split()
    assert int(n) >= 1 and counted == n and (tp, h, current, left) == ("None", "None", "True", "0")
    assert name == "open%d" % (40 - int(n))
    assert len(rec.spans) == 40 - int(n)


def test_spans_ended_by_hand_and_left_in_another_context(python):
    out, rec = run("""
        import contextvars, dynobs
        s = dynobs.start_span("by-hand")
        print(s.recording, isinstance(s._h, int), len(s.traceparent))
        s.set_attribute("n", 7)
        s.end()
        print(s.recording, s._h, s.traceparent is not None)
        with dynobs.span("ended-inside") as t:
            t.end()
            print(dynobs.current_span() is t)
        print(dynobs.current_span())
        # A generator entered in one context and closed in another: the
        # reset of the context variable fails there and is ignored.
        def gen():
            with dynobs.span("moved"):
                yield 1
        g = gen()
        contextvars.copy_context().run(next, g)
        g.close()
        print(dynobs.current_span())
        with dynobs.span("outer") as o:
            inner = dynobs.span("inner")
            with inner:
                print(dynobs.current_span() is inner)
            print(dynobs.current_span() is o)
    """, python)
    assert out.split() == ["True", "True", "55", "False", "None", "True", "True", "None",
                           "None", "True", "True"]
    assert rec.span("by-hand")["attrs"] == {"n": 7}
    assert rec.span("ended-inside")["parent"] is None
    assert rec.span("moved")["parent"] is None
    assert rec.span("inner")["parent"] == rec.span("outer")["span"]


def test_set_attribute_however_it_is_called(python):
    out, rec = run("""
        import dynobs
        with dynobs.span("s") as s:
            print(s.set_attribute("a", 1) is s, s.set_attribute(key="b", value="x") is s,
                  s.set_attribute("c", value=2.5) is s, dynobs.Span.set_attribute(s, "d", True) is s)
            s.set_attribute("a", 2).set_attribute("none", None).set_attribute("big", -(1 << 63))
            for call in (lambda: s.set_attribute("k"), lambda: s.set_attribute("k", 1, 2),
                         lambda: s.set_attribute(k="k", value=1), lambda: s.set_attribute(1, 1),
                         lambda: s.set_attribute("", 1)):
                try:
                    call()
                except (TypeError, ValueError) as e:
                    print(type(e).__name__)
        print(s.set_attribute("after", 1) is s)
    """, python)
    assert out.split() == ["True"] * 4 + ["TypeError"] * 4 + ["ValueError", "True"]
    assert rec.span("s")["attrs"] == {"a": 2, "b": "x", "c": 2.5, "d": True,
                                      "big": -(1 << 63)}


def test_exceptions_and_base_exceptions(python):
    out, rec = run("""
        import dynobs
        try:
            with dynobs.span("exc"):
                raise KeyError("k")
        except KeyError:
            pass
        try:
            with dynobs.span("base"):
                raise KeyboardInterrupt
        except KeyboardInterrupt:
            pass
        with dynobs.span("ok") as s:
            s.set_status(dynobs.OK)
        print(dynobs.current_span())
    """, python)
    assert out.strip() == "None"
    exc = rec.span("exc")
    assert exc["status"] == "ERROR" and exc["message"] == "KeyError: 'k'"
    assert exc["events"][0]["name"] == "exception"
    base = rec.span("base")  # not an Exception: not recorded as an error
    assert base["status"] == "UNSET" and base["events"] == []
    assert rec.span("ok")["status"] == "OK"


def test_threads_each_have_their_own_spans(python):
    out, rec = run("""
        import threading, dynobs
        def hook(args):
            print("error in a thread:", args.exc_value)
        threading.excepthook = hook
        go = threading.Barrier(4)
        def work(i):
            go.wait()
            with dynobs.span("t%d" % i):
                with dynobs.span("t%d-child" % i):
                    for _ in range(200):
                        with dynobs.span("leaf"):
                            pass
        ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print(dynobs.current_span())
    """, python)
    assert out.strip() == "None"
    for i in range(4):
        top, child = rec.span("t%d" % i), rec.span("t%d-child" % i)
        assert top["parent"] is None and child["parent"] == top["span"]
        leaves = [s for s in rec.spans if s["name"] == "leaf" and s["parent"] == child["span"]]
        assert len(leaves) == 200 and all(s["trace"] == top["trace"] for s in leaves)


def test_spans_started_while_the_library_loads(python):
    # The first span() loads the library; a thread starting spans while
    # it does (here, held in os.path.realpath, near its end) must find it
    # either not loaded (and wait) or loaded whole, never half set up.
    out, rec = run("""
        import os, threading, time, dynobs
        real, loading = os.path.realpath, threading.Event()
        def slow_realpath(p, *a, **kw):
            if p.endswith("libdynobs.so"):
                loading.set()
                time.sleep(0.3)
            return real(p, *a, **kw)
        os.path.realpath = slow_realpath
        errors = []
        def other():
            loading.wait()
            try:
                with dynobs.span("other"):
                    with dynobs.span("other-child", attributes={"k": 1}):
                        pass
            except Exception as e:
                errors.append(repr(e))
        t = threading.Thread(target=other)
        t.start()
        with dynobs.span("first"):
            pass
        t.join()
        print(errors)
    """, python)
    assert out.strip() == "[]"
    assert rec.span("other-child")["parent"] == rec.span("other")["span"]
    assert rec.span("first")["parent"] is None


def test_nested_spans_in_coroutines_leave_the_thread_s_context_alone(python):
    # A nested span in a coroutine must not become the thread's current
    # context: another task's span, with no span of its own current,
    # would then take it as its parent.
    out, rec = run("""
        import asyncio, dynobs
        async def a(started):
            with dynobs.span("a"):
                with dynobs.span("a-child", attributes={"n": 1}):
                    started.set()
                    await asyncio.sleep(0.05)
        async def b(started):
            await started.wait()
            with dynobs.span("b"):
                pass
        async def main():
            started = asyncio.Event()
            await asyncio.gather(a(started), b(started))
        asyncio.run(main())
        with dynobs.span("after"):
            pass
    """, python)
    assert out == ""
    assert rec.span("a-child")["parent"] == rec.span("a")["span"]
    assert rec.span("b")["parent"] is None and rec.span("b")["trace"] != rec.span("a")["trace"]
    assert rec.span("after")["parent"] is None


def test_traces_off_records_no_span(python):
    out, rec = run("""
        import dynobs
        dynobs.enable(traces=False, logs=False)
        with dynobs.span("off") as s:
            print(s.recording)
        dynobs.enable(traces=True, logs=False)
        with dynobs.span("on") as s:
            print(s.recording)
    """, python)
    assert out.split() == ["False", "True"]
    assert [s["name"] for s in rec.spans] == ["on"]


def _backend():
    spec = importlib.util.spec_from_file_location(
        "dynobs_build", os.path.join(PKG, "dynobs_build.py"))
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    return backend


@pytest.mark.parametrize("compiler", ["yes", "no"])
def test_wheel_with_and_without_a_compiler(compiler):
    """pip's build (the package's own backend): with a compiler, the C
    module is in a wheel for this interpreter, and the installed package
    uses it; without one, a pure wheel whose package takes ctypes."""
    env = dict(os.environ)
    if compiler == "no":
        env["CC"] = "/nonexistent/cc"
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["/usr/bin/python3", "-c", "import sys; sys.path.insert(0, %r); "
                            "import dynobs_build as b; print(b.build_wheel(%r))" % (PKG, tmp)],
                           env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        name = r.stdout.split()[-1]
        with zipfile.ZipFile(os.path.join(tmp, name)) as z:
            natives = [n for n in z.namelist() if n.startswith("dynobs/_native")]
            wheel = z.read(name.split("-")[0] + "-" + name.split("-")[1]
                           + ".dist-info/WHEEL").decode()
            z.extractall(os.path.join(tmp, "site"))
        if compiler == "yes":
            assert natives == ["dynobs/_native.cpython-311-x86_64-linux-gnu.so"], natives
            assert name.endswith("-cp311-cp311-linux_x86_64.whl") and "Root-Is-Purelib: false" in wheel
        else:
            assert natives == [] and name.endswith("-py3-none-any.whl"), (natives, name)
            assert "Root-Is-Purelib: true" in wheel and "no C compiler" in r.stderr, r.stderr
        shm = os.path.join(tmp, "shm")
        e = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "DYNOBS_PYTHON_NATIVE")}
        e.update(PYTHONPATH=os.path.join(tmp, "site"), DYNOBS_LIBRARY=LIB, DYNOBS_SHM_DIR=shm)
        r = subprocess.run(["/usr/bin/python3", "-c", "import dynobs\n"
                            "with dynobs.span('w') as s: print(s.recording)\n"
                            "m = dynobs._native\n"
                            "print(m.__file__ if m else None)"],
                           env=e, cwd=tmp, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        recording, where = r.stdout.split()
        assert recording == "True"
        if compiler == "yes":
            assert where == os.path.join(tmp, "site", natives[0])
        else:
            assert where == "None"
        assert glob.glob(os.path.join(shm, "*"))


def test_nested_spans_with_attributes_of_every_type(python):
    out, rec = run("""
        import enum, dynobs
        class Color(enum.IntEnum):
            RED = 3
        class Thing:
            def __str__(self):
                return "thing"
        tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        with dynobs.attach(tp, "vendor=abc"):
            with dynobs.span("job", attributes={"i": 1}) as job:
                with dynobs.span("child", dynobs.CLIENT, {
                        "i": -5, "big": 1 << 64, "f": 0.5, "t": True, "no": False, "s": "é",
                        "none": None, "b": b"raw", "sur": "a\\udc80", "enum": Color.RED,
                        "obj": Thing(), b"bkey": 2}) as child:
                    with dynobs.span("grandchild", attributes={"n": 0}):
                        pass
                for bad in ({"": 1}, {"ok": 1, 3: 1}):
                    try:
                        with dynobs.span("refused-attr", attributes=bad):
                            pass
                    except (ValueError, TypeError) as e:
                        print(type(e).__name__)
                print(dynobs.current_span() is job)
        print(dynobs.current_span())
    """, python)
    assert out.split() == ["ValueError", "TypeError", "True", "None"]
    job, child, grand = rec.span("job"), rec.span("child"), rec.span("grandchild")
    assert job["parent"] == "b7ad6b7169203331" and job["remote"]
    assert child["parent"] == job["span"] and not child["remote"]
    assert grand["parent"] == child["span"] and grand["trace"] == job["trace"]
    assert child["kind"] == "CLIENT" and grand["attrs"] == {"n": 0}
    assert child["attrs"] == {"i": -5, "big": "18446744073709551616", "f": 0.5, "t": True,
                              "no": False, "s": "é", "b": "raw", "sur": "a?", "enum": 3,
                              "obj": "thing", "bkey": 2}
    assert rec.text.count("tracestate: vendor=abc") == 3, rec.text
