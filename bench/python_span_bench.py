"""Cost of `with dynobs.span("x"):` in Python: the median over batches of
the time per span (start, context variable, end, one ring record),
against an empty with-block in the same run. Runs itself in a child
with its own segment directory and an exporter-free 8 MiB ring (the ring
never fills: batches are short and it is drained by nobody, so records
past its size are counted drops, which cost less than writes: the batch
count is kept below that).

usage: python3 bench/python_span_bench.py BUILD_DIR [--quick]
"""
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child():
    import dynobs
    quick = "--quick" in sys.argv
    batches, per = (30, 200) if quick else (100, 200)
    null = contextlib.nullcontext()
    span = dynobs.span
    assert dynobs.enabled(), "libdynobs.so not loaded"
    for _ in range(500):  # warm-up
        with span("x"):
            pass
    base, ours, attr = [], [], []
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
        base.append((t1 - t0) / per)
        ours.append((t2 - t1) / per)
        attr.append((t3 - t2) / per)
    b = statistics.median(base)
    print("%-12s %-36s %8.0f ns" % (sys.version.split()[0], "empty with-block", b))
    print("%-12s %-36s %8.0f ns (target <= 2000)" % ("", 'with dynobs.span("x")',
                                                     statistics.median(ours)))
    print("%-12s %-36s %8.0f ns" % ("", 'with dynobs.span("x", attributes={"k": 1})',
                                    statistics.median(attr)))


def main():
    if os.environ.get("DYNOBS_BENCH_CHILD"):
        return child()
    build = os.path.abspath(sys.argv[1])
    pythons = []
    for p in ("/usr/bin/python3", sys.executable):
        if os.path.exists(p) and os.path.realpath(p) not in map(os.path.realpath, pythons):
            pythons.append(p)
    with tempfile.TemporaryDirectory(prefix="dynobs-pybench-") as shm:
        for py in pythons:
            env = dict(os.environ, DYNOBS_BENCH_CHILD="1", DYNOBS_SHM_DIR=shm,
                       DYNOBS_RING_BYTES="8M", DYNOBS_LIBRARY=os.path.join(build, "libdynobs.so"),
                       PYTHONPATH=os.path.join(os.path.dirname(HERE), "python"))
            subprocess.run([py, os.path.abspath(__file__)] + sys.argv[2:], env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
