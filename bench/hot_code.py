#!/usr/bin/env python3
"""Where the code a served request runs lies (BENCHMARKS.md, "Eleventh
round"): the instructions of each library that run on at least half of
the requests served by dynobs-http-bench (serve_one, --quick), and the
cache lines and 4 KiB pages they are on; for libdynobs.so, by function,
with the bytes of code inside those lines that most requests do not run
(what packing the hot path would save). Counted with callgrind
(--dump-instr=yes), so the figures repeat from run to run.

    python3 bench/hot_code.py [BUILD_DIR] [FUNCTION...]   (default: build)
    python3 bench/hot_code.py --file CALLGRIND_OUT BUILD_DIR [FUNCTION...]

--file reads a callgrind file written with --dump-instr=yes
--compress-pos=no --compress-strings=no instead of running the benchmark:
nginx's, from DUMP_INSTR=1 KEEP=DIR bash bench/nginx_callgrind.sh (its
shim-3.out under CLIENT=wrk).

With FUNCTION names (as printed, e.g. span_end_at), also the runs of
instructions inside their hot lines that most requests do not run, with
the source line each starts at (addr2line): what to move out of the way.

    python3 bench/hot_code.py --by-library SHORT_OUT LONG_OUT REQUESTS TAG

prints each library's own instructions, first-level instruction misses
and data misses per request, (LONG_OUT - SHORT_OUT) / REQUESTS, from two
callgrind files of any kind (what bench/nginx_callgrind.sh prints with
CACHESIM=1), each line starting with TAG.

Exits 77 when valgrind or the benchmark is missing."""
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile


def main():
    args = sys.argv[1:]
    if args[:1] == ["--by-library"] and len(args) == 5:
        return by_library(args[1], args[2], float(args[3]), args[4])
    given = None
    if args[:1] == ["--file"] and len(args) >= 3:
        given, args = args[1], args[2:]
    build = os.path.realpath(args[0] if args else "build")
    detail = set(args[1:])
    bench = os.path.join(build, "bench", "dynobs-http-bench")
    if given:
        counts, fn_of = parse(given)
    else:
        if not shutil.which("valgrind") or not os.path.exists(bench):
            print("missing: valgrind or %s (build with -DDYNOBS_BUILD_BENCH=ON)" % bench)
            return 77
        got = run_bench(bench)
        if got is None:
            return 1
        counts, fn_of = got
    # (serve_one's requests go through libc's functions half of the time:
    # the shim's are counted by the instructions of the function that ends
    # each one's span, which no other function inlines)
    served = max((n for (obj, a), n in counts.items() if fn_of[(obj, a)] == "span_end_at"),
                 default=0)
    if not served:
        print("no request was served through the shim")
        return 1
    print("requests served through the shim: %d; code run on at least half of them, by library:" %
          served)
    for obj in sorted({o for o, _ in counts}):
        hot = sorted(a for (o, a), n in counts.items() if o == obj and n >= served / 2)
        if not hot:
            continue
        print("  %-28s %5d instructions, %4d cache lines, %3d pages" %
              (obj, len(hot), len({a >> 6 for a in hot}), len({a >> 12 for a in hot})))
        if obj.startswith("libdynobs"):
            idle, runs = idle_bytes(os.path.join(build, "libdynobs.so"), hot, counts, obj, served)
            by_fn = collections.defaultdict(list)
            for a in hot:
                by_fn[fn_of[(obj, a)]].append(a)
            print("      (address, lines, bytes of code in those lines that most requests do not run)")
            for fn, addrs in sorted(by_fn.items(), key=lambda kv: kv[1][0]):
                lines = {a >> 6 for a in addrs}
                print("      %#8x  %3d lines  %4s  %s" %
                      (addrs[0], len(lines), sum(idle.get(ln, 0) for ln in lines), fn))
            for fn, addrs in sorted(by_fn.items(), key=lambda kv: kv[1][0]):
                if fn.split(".")[0] in detail:
                    show_runs(os.path.join(build, "libdynobs.so"), fn,
                              [r for r in runs if r[0] >> 6 in {a >> 6 for a in addrs}])
            total = sum(idle.values())
            print("      in all, %d bytes not run inside the hot lines: %.1f lines' worth" %
                  (total, total / 64))
    return 0


def run_bench(bench):
    """dynobs-http-bench --quick under callgrind, collecting serve_one:
    (counts, fn_of) as parse gives them, or None."""
    with tempfile.TemporaryDirectory(prefix="dynobs-hot-code-") as d:
        out = os.path.join(d, "cg.out")
        os.mkdir(os.path.join(d, "shm"))
        env = dict(os.environ, DYNOBS_SHM_DIR=os.path.join(d, "shm"))
        run = subprocess.run(["valgrind", "--tool=callgrind", "--dump-instr=yes", "--compress-pos=no",
                              "--compress-strings=no", "--callgrind-out-file=" + out,
                              "--toggle-collect=serve_one", bench, "--quick"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if run.returncode:
            sys.stderr.write(run.stderr.decode(errors="replace")[-2000:])
            return None
        return parse(out)


def idle_bytes(lib, hot, counts, obj, served):
    """Per hot cache line of lib, the bytes of the instructions in it that
    run on fewer than half of the requests (objdump gives where each
    instruction starts)."""
    if not shutil.which("objdump"):
        return {}, []
    dis = subprocess.run(["objdump", "-d", "--no-show-raw-insn", lib], capture_output=True,
                         text=True).stdout
    starts = sorted({int(m.group(1), 16) for m in re.finditer(r"^\s+([0-9a-f]+):", dis, re.M)})
    idle = collections.Counter()
    runs = []  # [start, bytes] of consecutive idle instructions in a hot line
    for ln in sorted({a >> 6 for a in hot}):
        lo, hi = ln << 6, (ln + 1) << 6
        i = bisect.bisect_left(starts, lo)
        while i < len(starts) and starts[i] < hi:
            end = starts[i + 1] if i + 1 < len(starts) else starts[i] + 1
            if counts.get((obj, starts[i]), 0) < served / 2:
                idle[ln] += min(end, hi) - starts[i]
                if runs and runs[-1][0] + runs[-1][1] == starts[i]:
                    runs[-1][1] += min(end, hi) - starts[i]
                else:
                    runs.append([starts[i], min(end, hi) - starts[i]])
            i += 1
    return idle, runs


def show_runs(lib, fn, runs):
    """Each idle run of fn's hot lines: address, bytes, source line."""
    where = []
    if shutil.which("addr2line") and runs:
        where = subprocess.run(["addr2line", "-e", lib] + ["%#x" % a for a, _ in runs],
                               capture_output=True, text=True).stdout.splitlines()
    print("      %s: code not run inside its hot lines" % fn)
    for k, (a, n) in enumerate(runs):
        src = where[k].split(" (")[0] if k < len(where) else "?"
        print("        %#8x  %3d bytes  %s" % (a, n, src.replace(os.getcwd() + "/", "")))


def parse(path):
    """Instructions executed per (object, address), and their functions.
    The cost lines that follow a calls= line are the call's inclusive
    cost, not the instruction's own: skipped."""
    counts, fn_of = collections.Counter(), {}
    obj = fn = None
    after_call = False
    cost = re.compile(r"^(0x[0-9a-f]+)\s+\d+\s+(\d+)")
    with open(path) as f:
        for line in f:
            if line.startswith("ob="):
                obj = os.path.basename(line[3:].strip())
            elif line.startswith("fn="):
                fn = line[3:].strip()
            elif line.startswith("calls="):
                after_call = True
            else:
                m = cost.match(line)
                if not m:
                    continue
                if after_call:
                    after_call = False
                    continue
                key = (obj, int(m.group(1), 16))
                counts[key] += int(m.group(2))
                fn_of[key] = fn
    return counts, fn_of


def by_object(path):
    """Each object's own events in a callgrind file (compressed or not,
    per line or per instruction), a call's inclusive cost skipped."""
    names, obj, events, npos, skip = {}, None, [], 1, False
    sums = collections.defaultdict(collections.Counter)
    with open(path) as f:
        for line in f:
            if line.startswith("positions:"):
                npos = len(line.split()) - 1
            elif line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("ob=", "cob=")):
                # (a compressed name is given once, by whichever line names
                # the object first, and referred to by its number after that)
                ref, _, name = line.split("=", 1)[1].strip().partition(" ")
                if name:
                    names[ref] = name
                if line.startswith("ob="):
                    obj = os.path.basename(names.get(ref, ref))
            elif line.startswith("calls="):
                skip = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip:
                    skip = False
                    continue
                for e, v in zip(events, line.split()[npos:]):
                    sums[obj][e] += int(v)
    return sums


def by_library(short, long_, requests, tag):
    a, b = by_object(short), by_object(long_)
    for obj in sorted(b):
        d = {e: (b[obj][e] - a[obj][e]) / requests for e in b[obj]}
        if d.get("Ir", 0) >= 1:
            print("  %-5s %-28s %6.0f / %6.1f / %5.1f" %
                  (tag, obj[:28], d["Ir"], d.get("I1mr", 0), d.get("D1mr", 0) + d.get("D1mw", 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
