"""Cost of `with dynobs.span("x"):` in Python, on both paths of the
package (its C module dynobs._native, and ctypes with
DYNOBS_PYTHON_NATIVE=0) in every interpreter found (Debian's
/usr/bin/python3 and the python3 that runs this), in one run.

Timing: each round runs one child per interpreter and path, alternating;
a child prints the median over batches of the time per span (start,
context variable, end, one ring record), of the same with one attribute,
of the same inside an open span (its child), and of an empty with-block
in the same batches; the table gives the
median over rounds. Every child has its own segment and an
exporter-free 8 MiB ring (drained by nobody, so the batch count is kept
below its size: records past it would be counted drops, cheaper than
writes).

--callgrind: instructions per span instead (valgrind's callgrind, the
whole process: interpreter, package and library), from two runs of
N and 6N spans, (I(6N) - I(N)) / 5N, which takes out start-up. These
are repeatable where the timings on a shared machine are not.

--before DIR: a third path, "before", the package found in DIR (another
checkout's python/, e.g. from `git worktree add`), for before/after.

usage: python3 bench/python_span_bench.py BUILD_DIR [--quick] [--rounds N] [--callgrind]
                                          [--before DIR]
"""
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PATHS = ["native", "ctypes"]
BEFORE = sys.argv[sys.argv.index("--before") + 1] if "--before" in sys.argv else None
if BEFORE:
    PATHS.append("before")
CASES = ("empty", "span", "attr", "nested")


def child_timing(dynobs, quick):
    # 60 * (3 * 100 + 1) + 500 = 18 560 records, well below the ~37 000
    # that fit in the 8 MiB ring (dynobs-dump of its segment: dropped=0).
    batches, per = (30, 100) if quick else (60, 100)
    null = contextlib.nullcontext()
    span = dynobs.span
    for _ in range(500):  # warm-up
        with span("x"):
            pass
    base, ours, attr, nested = [], [], [], []
    for _ in range(batches):
        t0 = time.perf_counter_ns()
        for _ in range(per):
            with null:
                pass
        t1 = time.perf_counter_ns()
        for _ in range(per):
            with span("x"):
                pass
        t2 = time.perf_counter_ns()
        for _ in range(per):
            with span("x", attributes={"k": 1}):
                pass
        t3 = time.perf_counter_ns()
        with span("parent"):
            t4 = time.perf_counter_ns()
            for _ in range(per):
                with span("x"):
                    pass
            t5 = time.perf_counter_ns()
        base.append((t1 - t0) / per)
        ours.append((t2 - t1) / per)
        attr.append((t3 - t2) / per)
        nested.append((t5 - t4) / per)
    print("result", *(statistics.median(x) for x in (base, ours, attr, nested)))


def child_count(dynobs, case, n):
    null = contextlib.nullcontext()
    span = dynobs.span
    for _ in range(200):  # warm-up: the same code paths, caches filled
        with span("x", attributes={"k": 1}):
            pass
    if case == "empty":
        for _ in range(n):
            with null:
                pass
    elif case == "span":
        for _ in range(n):
            with span("x"):
                pass
    elif case == "attr":
        for _ in range(n):
            with span("x", attributes={"k": 1}):
                pass
    else:
        with span("parent"):
            for _ in range(n):
                with span("x"):
                    pass


def child():
    import dynobs
    assert dynobs.enabled(), "libdynobs.so not loaded"
    want = os.environ["DYNOBS_BENCH_PATH"]
    native = getattr(dynobs, "_native", None) is not None
    assert native == (want == "native"), "dynobs._native in use: %s" % native
    if os.environ.get("DYNOBS_BENCH_COUNT"):
        case, n = os.environ["DYNOBS_BENCH_COUNT"].split(":")
        return child_count(dynobs, case, int(n))
    return child_timing(dynobs, "--quick" in sys.argv)


def run_child(py, path, shm, build, extra_env=None, prefix=()):
    env = dict(os.environ, DYNOBS_BENCH_CHILD="1", DYNOBS_SHM_DIR=shm, DYNOBS_RING_BYTES="8M",
               DYNOBS_LIBRARY=os.path.join(build, "libdynobs.so"), DYNOBS_BENCH_PATH=path,
               PYTHONPATH=os.path.abspath(BEFORE) if path == "before"
               else os.path.join(os.path.dirname(HERE), "python"))
    env.pop("LD_PRELOAD", None)
    env["DYNOBS_PYTHON_NATIVE"] = "0" if path == "ctypes" else "1"
    env.update(extra_env or {})
    return subprocess.run(list(prefix) + [py, os.path.abspath(__file__)] + sys.argv[2:],
                          env=env, check=True, capture_output=True, text=True)


def instructions(py, path, shm, build, case, n):
    r = run_child(py, path, shm, build, {"DYNOBS_BENCH_COUNT": "%s:%d" % (case, n)},
                  ("valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"))
    m = re.search(r"Collected : (\d+)", r.stderr)
    return int(m.group(1))


def main():
    if os.environ.get("DYNOBS_BENCH_CHILD"):
        return child()
    build = os.path.abspath(sys.argv[1])
    rounds = int(sys.argv[sys.argv.index("--rounds") + 1]) if "--rounds" in sys.argv else 5
    pythons = []
    for p in ("/usr/bin/python3", sys.executable):
        if os.path.exists(p) and os.path.realpath(p) not in map(os.path.realpath, pythons):
            pythons.append(p)
    label = {p: subprocess.run([p, "-c", "import sys; print(sys.version.split()[0])"],
                               capture_output=True, text=True).stdout.strip() for p in pythons}
    with tempfile.TemporaryDirectory(prefix="dynobs-pybench-") as shm:
        if "--callgrind" in sys.argv:
            n = 1000
            print("instructions per with-block (callgrind, (I(%d) - I(%d)) / %d)" % (6 * n, n, 5 * n))
            print("%-8s %-7s %8s %8s %10s %8s" % ("python", "path", "empty", "span", "span+attr",
                                                "nested"))
            for py in pythons:
                for path in PATHS:
                    row = [(instructions(py, path, shm, build, c, 6 * n)
                            - instructions(py, path, shm, build, c, n)) / (5 * n) for c in CASES]
                    print("%-8s %-7s %8.0f %8.0f %10.0f %8.0f" % (label[py], path, *row), flush=True)
            return 0
        got = {(py, path): [] for py in pythons for path in PATHS}
        for _ in range(rounds):
            for py in pythons:
                for path in PATHS:
                    out = run_child(py, path, shm, build).stdout
                    got[py, path].append([float(x) for x in out.split("result")[1].split()])
        print("ns per with-block, median of %d rounds (each the median of its batches)" % rounds)
        print("%-8s %-7s %8s %8s %10s %8s   %s" % ("python", "path", "empty", "span", "span+attr",
                                                 "nested", "span, each round"))
        for (py, path), rows in got.items():
            med = [statistics.median(r[i] for r in rows) for i in range(4)]
            print("%-8s %-7s %8.0f %8.0f %10.0f %8.0f   %s" % (
                label[py], path, *med, " ".join("%.0f" % r[1] for r in rows)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
