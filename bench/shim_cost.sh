#!/usr/bin/env bash
# Measures one dynobs source tree the same way every time, for before/after
# comparisons of the shim.
#
#   bash bench/shim_cost.sh SRC OUTDIR   (e.g. bench/shim_cost.sh . /tmp/cost-after)
#
# Builds SRC (RelWithDebInfo, benchmarks on, tests off) into OUTDIR/build,
# then writes OUTDIR/report.md from
#   a. callgrind instruction counts (the figures to compare) of the HTTP
#      client path, the HTTP server path (serve_one), non-HTTP socket calls,
#      the libcurl path and the libpq path (a throw-away PostgreSQL 15);
#   b. the timing tables of dynobs-bench and dynobs-http-bench, run
#      MEASURE_REPS times (default 3), median reported.
# Raw outputs stay in OUTDIR/cg (callgrind files, readable with
# callgrind_annotate) and OUTDIR/timing. Nothing is written to SRC.
#
# Environment: MEASURE_REPS (default 3) repetitions of every callgrind run
# and every timing run.
set -uo pipefail

if [[ $# -ne 2 ]]; then
  echo "usage: $0 SRC OUTDIR" >&2
  exit 2
fi
SRC=$(realpath "$1") || exit 2
OUT=$(realpath -m "$2")
REPS=${MEASURE_REPS:-3}
[[ -f $SRC/CMakeLists.txt ]] || { echo "$SRC has no CMakeLists.txt" >&2; exit 2; }
case "$OUT/" in
  "$SRC"/*) echo "OUTDIR must be outside SRC" >&2; exit 2 ;;
esac

T_START=$(date +%s)
mkdir -p "$OUT"
rm -rf "$OUT/build" "$OUT/cg" "$OUT/timing" "$OUT/logs"
mkdir -p "$OUT/cg" "$OUT/timing" "$OUT/logs"
: >"$OUT/runs.tsv"
: >"$OUT/notes.txt"
note() { echo "$*" | tee -a "$OUT/notes.txt" >&2; }
phase() { echo "[$(date +%T)] $*" >&2; }

# A clean environment for every run: nothing of a caller's dynobs or
# OpenTelemetry configuration leaks in.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(DYNOBS_|OTEL_)')
unset LD_PRELOAD

# ---------------------------------------------------------------- packages
# scripts/deps.sh (of this checkout: SRC may be an older one) installs
# what is missing (as root) or names it; its apt output goes to the log.
. "$(dirname "${BASH_SOURCE[0]}")/../scripts/deps.sh"
phase "checking packages"
dynobs_install_deps build-essential cmake pkg-config valgrind python3 util-linux \
  libmicrohttpd-dev libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler \
  protobuf-compiler zlib1g-dev libpq-dev postgresql-15 libunwind-dev >"$OUT/logs/apt.log" 2>&1 ||
  note "some packages could not be installed; see $OUT/logs/apt.log"

# ---------------------------------------------------------------- build
phase "building $SRC"
T0=$(date +%s)
if ! cmake -S "$SRC" -B "$OUT/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DDYNOBS_BUILD_TESTS=OFF -DDYNOBS_BUILD_BENCH=ON >"$OUT/logs/cmake.log" 2>&1 ||
   ! cmake --build "$OUT/build" -j2 >"$OUT/logs/build.log" 2>&1; then
  echo "build failed; see $OUT/logs/cmake.log and $OUT/logs/build.log" >&2
  tail -20 "$OUT/logs/build.log" >&2
  exit 1
fi
T_BUILD=$(($(date +%s) - T0))
B=$OUT/build/bench
LIB=$(ls "$OUT"/build/libdynobs.so 2>/dev/null || find "$OUT/build" -name 'libdynobs.so*' | head -1)
nm -D --defined-only "$LIB" | awk '{print $3}' | sed 's/@.*//' | sort -u >"$OUT/exports.txt"

# ---------------------------------------------------------------- metadata
{
  echo "src=$SRC"
  echo "commit=$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)"
  echo "subject=$(git -C "$SRC" log -1 --format=%s 2>/dev/null | sed -E 's/^(.{100}).+/\1.../')"
  echo "dirty_files=$(git -C "$SRC" status --porcelain 2>/dev/null | wc -l)"
  echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
  echo "compiler=$(cc --version | head -1)"
  echo "valgrind=$(valgrind --version)"
  echo "build_type=$(sed -n 's/^CMAKE_BUILD_TYPE:STRING=//p' "$OUT/build/CMakeCache.txt")"
  echo "load_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "reps=$REPS"
  echo "build_seconds=$T_BUILD"
} >"$OUT/meta.txt"

# ---------------------------------------------------------------- callgrind
# run_cg CASE MODE LEN REP N TOGGLE [VAR=VALUE...] -- PROGRAM ARGS...
# One callgrind run with its own segment directory; records it in runs.tsv.
run_cg() {
  local case=$1 mode=$2 len=$3 rep=$4 n=$5 toggle=$6
  shift 6
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  local f=$OUT/cg/$case-$mode-$len-$rep.out shm rc
  shm=$(mktemp -d /tmp/dynobs-measure-XXXXXX)
  # A ring large enough that no record of the longest run is dropped (the
  # benches have no consumer): every operation takes the write path.
  envs=(DYNOBS_RING_BYTES=$CG_RING "${envs[@]}")
  local opts=(--tool=callgrind --separate-callers=12 --callgrind-out-file="$f")
  [[ -n $toggle ]] && opts+=(--toggle-collect="$toggle")
  env DYNOBS_SHM_DIR="$shm" "${envs[@]}" timeout 600 valgrind "${opts[@]}" "$@" \
    >"$f.stdout" 2>"$f.stderr"
  rc=$?
  rm -rf "$shm"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$mode" "$len" "$rep" "$n" "$rc" "$f" >>"$OUT/runs.tsv"
  [[ $rc -eq 0 && -s $f ]] || note "callgrind run $case/$mode/$len/$rep exited $rc (see $f.stderr)"
}

CG_RING=64M
T0=$(date +%s)
# HTTP client and server paths, non-HTTP calls: dynobs-http-bench at its two
# lengths (--quick: 50 batches; full: 300 batches), each region selected with
# --toggle-collect as in BENCHMARKS.md. Operations through our path:
#   request    (client)  40 warm-up + batches x 20
#   serve_one  (server)  2 x (40 + batches x 20): blocking and non-blocking
#   nonhttp_op (pairs)   2000 warm-up + batches x 1000
if [[ -x $B/dynobs-http-bench ]]; then
  for rep in $(seq "$REPS"); do
    phase "callgrind: dynobs-http-bench, repetition $rep"
    for len in short long; do
      arg=(); [[ $len == short ]] && arg=(--quick)
      nb=$([[ $len == short ]] && echo 50 || echo 300)
      run_cg http_client on $len $rep $((40 + nb * 20)) request -- \
        "$B/dynobs-http-bench" "${arg[@]}"
      run_cg http_server on $len $rep $((2 * (40 + nb * 20))) serve_one -- \
        "$B/dynobs-http-bench" "${arg[@]}"
      run_cg nonhttp on $len $rep $((2000 + nb * 1000)) nonhttp_op -- \
        "$B/dynobs-http-bench" "${arg[@]}"
      run_cg nonhttp off $len $rep $((2000 + nb * 1000)) nonhttp_op \
        OTEL_SDK_DISABLED=true -- "$B/dynobs-http-bench" "${arg[@]}"
    done
  done
else
  note "no dynobs-http-bench: HTTP client/server rows skipped"
fi

# libcurl: the bench's child mode (one measurement, no re-execution), the
# whole process: --quick = 50 warm-up + 30 x 20 transfers, full = 50 + 150 x 20.
if [[ -x $B/dynobs-curl-bench ]]; then
  for rep in $(seq "$REPS"); do
    phase "callgrind: dynobs-curl-bench, repetition $rep"
    for mode in on off; do
      envs=(DYNOBS_CURL_BENCH_CHILD=1)
      [[ $mode == off ]] && envs+=(OTEL_SDK_DISABLED=true)
      run_cg curl $mode short $rep 650 "" "${envs[@]}" -- "$B/dynobs-curl-bench" --quick
      run_cg curl $mode long $rep 3050 "" "${envs[@]}" -- "$B/dynobs-curl-bench"
    done
  done
else
  note "no dynobs-curl-bench (DYNOBS_BUILD_EXPORTER off or libcurl missing): libcurl row skipped"
fi

# libpq: a PostgreSQL 15 of our own (postgres user, temporary directory,
# free port, unix socket only), stopped by PID.
PGBIN=/usr/lib/postgresql/15/bin
PGTMP= PGPID= PGRUNUSER=
stop_pg() {
  if [[ -n $PGPID ]]; then
    kill -INT "$PGPID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$PGPID" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$PGPID" 2>/dev/null && kill -KILL "$PGPID" 2>/dev/null
    PGPID=
  fi
  [[ -n $PGRUNUSER ]] && { wait "$PGRUNUSER" 2>/dev/null; PGRUNUSER=; }
  [[ -n $PGTMP ]] && { rm -rf "$PGTMP"; PGTMP=; }
}
trap stop_pg EXIT
start_pg() {
  [[ -x $PGBIN/postgres ]] || { note "no $PGBIN/postgres: libpq row skipped"; return 1; }
  id postgres >/dev/null 2>&1 || { note "no postgres user: libpq row skipped"; return 1; }
  PGTMP=$(mktemp -d /tmp/dynobs-measure-pg-XXXXXX)
  chmod 755 "$PGTMP"
  mkdir "$PGTMP/pg"
  chown postgres: "$PGTMP/pg"
  PGPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  if ! runuser -u postgres -- "$PGBIN/initdb" -D "$PGTMP/pg/data" --auth=trust -U postgres \
       >"$OUT/logs/initdb.log" 2>&1; then
    note "initdb failed (see $OUT/logs/initdb.log): libpq row skipped"
    return 1
  fi
  runuser -u postgres -- "$PGBIN/postgres" -D "$PGTMP/pg/data" -k "$PGTMP/pg" -p "$PGPORT" \
    -c listen_addresses= -c fsync=off >"$OUT/logs/postgres.log" 2>&1 &
  PGRUNUSER=$!
  for _ in $(seq 150); do
    if "$PGBIN/pg_isready" -q -h "$PGTMP/pg" -p "$PGPORT"; then
      PGPID=$(head -1 "$PGTMP/pg/data/postmaster.pid")
      return 0
    fi
    kill -0 "$PGRUNUSER" 2>/dev/null || break
    sleep 0.2
  done
  note "PostgreSQL did not start (see $OUT/logs/postgres.log): libpq row skipped"
  [[ -f $PGTMP/pg/data/postmaster.pid ]] && PGPID=$(head -1 "$PGTMP/pg/data/postmaster.pid")
  return 1
}
if [[ -x $B/dynobs-pq-bench ]]; then
  phase "starting PostgreSQL"
  if start_pg; then
    CI="host=$PGTMP/pg port=$PGPORT user=postgres dbname=postgres"
    # 200 warm-up + batches x 20 PQexec("SELECT 1").
    for rep in $(seq "$REPS"); do
      phase "callgrind: dynobs-pq-bench, repetition $rep"
      for mode in on off; do
        envs=()
        [[ $mode == off ]] && envs+=(OTEL_SDK_DISABLED=true)
        run_cg pq $mode short $rep 400 "" "${envs[@]}" -- "$B/dynobs-pq-bench" "$CI" 10
        run_cg pq $mode long $rep 1400 "" "${envs[@]}" -- "$B/dynobs-pq-bench" "$CI" 60
      done
    done
  fi
  stop_pg
else
  note "no dynobs-pq-bench (libpq-dev missing at build time): libpq row skipped"
fi
T_CG=$(($(date +%s) - T0))

# ---------------------------------------------------------------- timings
# The programs' own settings when they re-execute themselves: dynobs-bench a
# 2 MiB ring, dynobs-http-bench 8 MiB; we give each run its own directory.
T0=$(date +%s)
for rep in $(seq "$REPS"); do
  phase "timing: repetition $rep"
  for prog in dynobs-bench dynobs-http-bench; do
    [[ -x $B/$prog ]] || continue
    ring=$([[ $prog == dynobs-bench ]] && echo 2M || echo 8M)
    shm=$(mktemp -d /tmp/dynobs-measure-XXXXXX)
    env DYNOBS_SHM_DIR="$shm" DYNOBS_RING_BYTES=$ring timeout 300 "$B/$prog" \
      >"$OUT/timing/$prog-$rep.txt" 2>"$OUT/timing/$prog-$rep.err" ||
      note "timing run $prog/$rep exited $? (see $OUT/timing/$prog-$rep.err)"
    rm -rf "$shm"
  done
done
T_TIMING=$(($(date +%s) - T0))

{
  echo "load_end=$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "callgrind_seconds=$T_CG"
  echo "timing_seconds=$T_TIMING"
  echo "total_seconds=$(($(date +%s) - T_START))"
} >>"$OUT/meta.txt"

# ---------------------------------------------------------------- report
cat >"$OUT/analyze.py" <<'PY'
"""Writes report.md from runs.tsv, the callgrind files and the timing outputs."""
import collections
import os
import re
import statistics
import sys

OUT = sys.argv[1]
DYN = re.compile(r"(^|/)libdynobs\.so")
IO = {"read", "write", "readv", "writev", "send", "sendto", "sendmsg", "recv", "recvfrom",
      "recvmsg", "__read_chk", "__recv_chk", "__recvfrom_chk", "sendfile", "sendfile64"}


def is_dyn(ob):
    return ob is not None and bool(DYN.search(ob))


def short_ob(ob):
    return os.path.basename(ob or "?").split(".so")[0]


def norm(name):
    n = re.sub(r"@.*$", "", name)
    for p in ("__GI___libc_", "__GI_", "__libc_"):
        if n.startswith(p):
            return n[len(p):]
    return n


def frames(ctxname):
    return [p for p in ctxname.split("'") if p and not p.isdigit()]


def parse(path):
    """Self cost per (object, context name) and inclusive cost per call edge."""
    names = {"ob": {}, "fn": {}, "fl": {}}
    selfc = collections.Counter()
    edges = collections.Counter()
    ob = fn = cob = None
    pending = None

    def name(kind, v):
        m = re.match(r"\((\d+)\)(?:\s+(.*))?$", v)
        if not m:
            return v
        if m.group(2) is not None:
            names[kind][m.group(1)] = m.group(2)
        return names[kind].get(m.group(1), v)

    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line[0] == "#":
                continue
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                ir = int(parts[1]) if len(parts) > 1 else 0
                if pending is not None:
                    edges[pending] += ir
                    pending = None
                else:
                    selfc[(ob, fn)] += ir
                continue
            key, _, val = line.partition("=")
            if key == "ob":
                ob = name("ob", val)
            elif key in ("fl", "fi", "fe", "cfi", "cfl"):
                name("fl", val)
            elif key == "fn":
                fn = name("fn", val)
                cob = None
            elif key == "cob":
                cob = name("ob", val)
            elif key == "cfn":
                cfn = name("fn", val)
            elif key == "calls":
                pending = ((ob, fn), (cob if cob is not None else ob, cfn))
                cob = None
    return selfc, edges


def analyse(path, exports):
    selfc, edges = parse(path)
    # object of every context name and of each of its prefixes, to find
    # which frames of a caller chain are ours
    where = {}
    for (ob, fn) in list(selfc) + [k for e in edges for k in e]:
        fr = frames(fn or "")
        for i in range(1, len(fr) + 1):
            where.setdefault("'".join(fr[:i]), set()).add(ob)
    res = {"total": sum(selfc.values()), "self": 0, "helpers": 0, "forwarded": 0,
           "fn": collections.Counter(), "fwd_fn": collections.Counter()}
    for (ob, fn), v in selfc.items():
        if is_dyn(ob):
            res["self"] += v
            res["fn"][frames(fn)[0] if fn else "?"] += v
    for ((ob, fn), (cob, cfn)), v in edges.items():
        if not is_dyn(ob) or is_dyn(cob):
            continue
        callee = frames(cfn)[0]
        fr = frames(fn)
        entry = fr[0]
        for i in range(1, len(fr)):
            obs = where.get("'".join(fr[i:]), set())
            if any(is_dyn(o) for o in obs):
                entry = fr[i]
            else:
                break
        a, b = norm(callee), norm(entry)
        forwarded = a in exports and (a == b or (a in IO and b in IO))
        label = "%s:%s" % (short_ob(cob), re.sub(r"@.*$", "", callee))
        if forwarded:
            res["forwarded"] += v
            res["fwd_fn"][label + " (from " + b + ")"] += v
        else:
            res["helpers"] += v
            res["fn"]["-> " + label] += v
    res["ours"] = res["self"] + res["helpers"]
    return res


def read_kv(path):
    d = {}
    if os.path.exists(path):
        for line in open(path):
            k, _, v = line.rstrip("\n").partition("=")
            d[k] = v
    return d


meta = read_kv(os.path.join(OUT, "meta.txt"))
exports = set(open(os.path.join(OUT, "exports.txt")).read().split())
exports = {norm(e) for e in exports}

runs = collections.defaultdict(list)  # (case, mode, len) -> [(n, result)]
failed = []
for line in open(os.path.join(OUT, "runs.tsv")):
    case, mode, ln, rep, n, rc, f = line.rstrip("\n").split("\t")
    if rc != "0" or not os.path.exists(f) or os.path.getsize(f) == 0:
        failed.append("%s/%s/%s/%s (exit %s)" % (case, mode, ln, rep, rc))
        continue
    runs[(case, mode, ln)].append((int(n), int(rep), analyse(f, exports)))


def fit(case, mode, key):
    """Per-operation slope between the short and long runs (medians over the
    repetitions), the per-repetition slopes, and the intercept."""
    s, l = runs.get((case, mode, "short")), runs.get((case, mode, "long"))
    if not s or not l:
        return None
    ns, nl = s[0][0], l[0][0]
    get = (lambda r: r[key]) if isinstance(key, str) else key
    ms = statistics.median(get(r) for _, _, r in s)
    ml = statistics.median(get(r) for _, _, r in l)
    slope = (ml - ms) / (nl - ns)
    reps = {}
    for _, rep, r in s:
        reps.setdefault(rep, [None, None])[0] = get(r)
    for _, rep, r in l:
        reps.setdefault(rep, [None, None])[1] = get(r)
    each = [(b - a) / (nl - ns) for a, b in reps.values() if a is not None and b is not None]
    return {"per_op": slope, "each": each, "fixed": ms - slope * ns, "n": (ns, nl),
            "short_avg": ms / ns}


def fmt(x, nd=0):
    if x is None:
        return "n/a"
    return "{:,.{}f}".format(x, nd)


def spread(each, nd=0):
    if not each:
        return "n/a"
    return "%s to %s" % (fmt(min(each), nd), fmt(max(each), nd))


ROWS = [
    ("http_client", "on", 1, "HTTP/1.1 client request, plain socket (`dynobs-http-bench`, region `request`)",
     "per request"),
    ("http_server", "on", 1, "HTTP/1.1 request served (`dynobs-http-bench`, region `serve_one`, "
     "blocking + non-blocking)", "per served request"),
    ("curl", "on", 1, "libcurl transfer (`DYNOBS_CURL_BENCH_CHILD=1 dynobs-curl-bench`, whole process)",
     "per transfer"),
    ("pq", "on", 1, "libpq `PQexec(\"SELECT 1\")` (`dynobs-pq-bench`, whole process)", "per PQexec"),
    ("nonhttp", "on", 2, "non-HTTP write or read, enabled (region `nonhttp_op`)", "per call"),
    ("nonhttp", "off", 2, "non-HTTP write or read, `OTEL_SDK_DISABLED=true` (region `nonhttp_op`)",
     "per call"),
]

L = []
w = L.append
w("# dynobs: shim cost, callgrind and timings")
w("")
w("Tree: `%s` at `%s`%s  " % (meta.get("src"), meta.get("commit", "?")[:12],
                              " (%s uncommitted files)" % meta["dirty_files"]
                              if meta.get("dirty_files", "0") not in ("0", "") else ""))
w("Commit subject: %s  " % meta.get("subject", "?"))
w("Measured %s on %s; %s; %s; build type %s.  " % (meta.get("date"), meta.get("cpu"),
  meta.get("compiler"), meta.get("valgrind"), meta.get("build_type")))
w("Load average at start / end: %s / %s. Times: build %s s, callgrind %s s, timings %s s, "
  "total %s s." % (meta.get("load_start"), meta.get("load_end"), meta.get("build_seconds"),
                   meta.get("callgrind_seconds"), meta.get("timing_seconds"),
                   meta.get("total_seconds")))
w("")
w("## a. Instructions of ours per operation (callgrind, the figures to compare)")
w("")
w("| path | ops in short / long run | **ours per op** | in libdynobs.so | in what it calls "
  "(libc, libcurl, libpq) | spread of the %s repetitions | fixed per run (init, per connection) "
  "| BENCHMARKS.md-style average over the short run |" % meta.get("reps", "?"))
w("| --- | --- | --- | --- | --- | --- | --- | --- |")
for case, mode, div, label, unit in ROWS:
    f = fit(case, mode, "ours")
    if f is None:
        w("| %s | not measured | n/a | | | | | |" % label)
        continue
    fs, fh = fit(case, mode, "self"), fit(case, mode, "helpers")
    w("| %s | %s / %s | **%s** %s | %s | %s | %s | %s | %s |" % (
        label, fmt(f["n"][0] * div), fmt(f["n"][1] * div), fmt(f["per_op"] / div), unit,
        fmt(fs["per_op"] / div), fmt(fh["per_op"] / div),
        spread([e / div for e in f["each"]]), fmt(f["fixed"]), fmt(f["short_avg"] / div)))
w("")
w("Context (whole process, same runs; the enabled-minus-disabled difference is the other method "
  "BENCHMARKS.md mentions):")
w("")
w("| path | whole process per op, enabled | whole process per op, `OTEL_SDK_DISABLED=true` | "
  "difference | spread of the difference |")
w("| --- | --- | --- | --- | --- |")
for case, label in (("curl", "libcurl transfer"), ("pq", "libpq PQexec")):
    on, off = fit(case, "on", "total"), fit(case, "off", "total")
    if on is None or off is None:
        w("| %s | n/a | n/a | n/a | |" % label)
        continue
    diffs = [a - b for a in on["each"] for b in off["each"]]
    w("| %s | %s | %s | %s | %s |" % (label, fmt(on["per_op"]), fmt(off["per_op"]),
                                      fmt(on["per_op"] - off["per_op"]), spread(diffs)))
w("")
w("""How these are counted:

- Every figure comes from `valgrind --tool=callgrind --separate-callers=12`, each program run at
  two lengths (its `--quick` run and its full run; for `dynobs-pq-bench` 10 and 60 batches);
  **per op = (long - short) / (ops_long - ops_short)**, from the median over the repetitions at
  each length. This removes what does not scale with the operation count (library
  initialisation, segment creation, a connection's first classification), which is given
  separately as *fixed per run*. The callgrind runs use a 64 MiB ring (`DYNOBS_RING_BYTES=64M`)
  so that no record is dropped in the long runs (the benches have no consumer; with the 8 MiB
  ring of `dynobs-http-bench` the long run's server phase fills it and later spans take the
  cheaper dropped path). The *BENCHMARKS.md-style* column is the short run's count
  divided by its operations, as BENCHMARKS.md computes it (fixed costs included). A slightly
  negative fixed cost means a per-op cost that is a little higher later in the run (for
  example libc's memchr, whose cost depends on the alignment of what it scans).
- *Ours* follows BENCHMARKS.md's serve_one method (instructions in libdynobs.so plus those in
  the libc helpers it calls), i.e. the inclusive cost of our functions: every instruction
  executed in libdynobs.so, plus the inclusive cost of every call it makes into other libraries
  (memcpy, memchr, strlen, clock_gettime, curl_easy_getinfo, curl_slist_append, PQntuples...),
  except the **forwarded real call**: a call to a function that libdynobs.so itself interposes,
  made from inside our interposer of that same function (or, for socket I/O, of another I/O
  function: `write` sent as `sendmsg` with the traceparent spliced in). What that real call does
  is the application's own cost, not ours, except where it comes back into libdynobs.so (libcurl
  calling `send` or `sigaction`, libpq calling `PQsendQuery`): those nested entries are ours and
  counted. The forwarded calls found are listed below, per case, for checking.
- The HTTP rows are restricted with `--toggle-collect` to the bench's `request`, `serve_one` and
  `nonhttp_op` functions as in BENCHMARKS.md; inside them the libc-only comparison batches run too,
  but they execute nothing in libdynobs.so, so the attribution above leaves them out. The libcurl
  and libpq rows are whole-process runs (their loops are inlined into `main`). The non-HTTP rows
  are per call (a write+read pair is two calls).
- Callgrind counts user-space instructions only: the kernel's side of a system call is not in
  them. They are repeatable to a few instructions per op for the HTTP and libpq rows; the
  libcurl row moves by tens of instructions between runs because libcurl's number of
  poll/recv/sigaction rounds per transfer depends on thread scheduling (see the spread).
""")
w("### Where it goes (per op, long minus short run; top functions of ours)")
w("")
for case, mode, div, label, unit in ROWS:
    if fit(case, mode, "ours") is None:
        continue
    keys = set()
    for ln in ("short", "long"):
        for _, _, r in runs[(case, mode, ln)]:
            keys.update(r["fn"])
    per = []
    for k in keys:
        f = fit(case, mode, lambda r, k=k: r["fn"].get(k, 0))
        per.append((f["per_op"] / div, f["fixed"], k))
    per.sort(reverse=True)
    per = [p for p in per if abs(p[0]) >= 0.05 or abs(p[1]) >= 50]
    fkeys = set()
    for ln in ("short", "long"):
        for _, _, r in runs[(case, mode, ln)]:
            fkeys.update(r["fwd_fn"])
    fwd = []
    for k in fkeys:
        f = fit(case, mode, lambda r, k=k: r["fwd_fn"].get(k, 0))
        if abs(f["per_op"]) >= 0.5:
            fwd.append((f["per_op"] / div, k))
    fwd.sort(reverse=True)
    w("**%s** (%s; `->` = a call out of libdynobs.so, inclusive):" % (label, unit))
    w("")
    w("| instructions %s | fixed per run | function |" % unit)
    w("| --- | --- | --- |")
    top = [p for p in per if abs(p[0]) >= 0.05][:15]
    for v, fx, k in top:
        w("| %s | %s | `%s` |" % (fmt(v, 1), fmt(fx), k))
    rest = [p for p in per if p not in top]
    w("| %s | %s | (%d others) |" % (fmt(sum(p[0] for p in rest), 1), fmt(sum(p[1] for p in rest)),
                                    len(rest)))
    big = sorted(per, key=lambda p: -p[1])[:5]
    w("")
    w("Largest fixed costs (instructions per run, not per op): %s" % (", ".join(
        "`%s` %s" % (k, fmt(fx)) for _, fx, k in big if fx >= 50) or "none"))
    w("")
    w("Forwarded real calls, not counted as ours (%s): %s" % (unit, ", ".join(
        "`%s` %s" % (k, fmt(v, 1)) for v, k in fwd) or "none"))
    w("")

# ---------------------------------------------------------------- timings
NUM = re.compile(r"^-?\d+(?:\.\d+)?$")
RATE = re.compile(r"^(.*?)\s+(-?\d+(?:\.\d+)?) M/s(.*)$")


def table(prog):
    """[(column names, {label: [values]})] for each run of prog."""
    out = []
    for rep in range(1, int(meta.get("reps", "3")) + 1):
        p = os.path.join(OUT, "timing", "%s-%d.txt" % (prog, rep))
        if not os.path.exists(p) or os.path.getsize(p) == 0:
            continue
        lines = open(p).read().splitlines()
        cols = re.split(r"\s{2,}", lines[0].strip())[1:]
        rows = collections.OrderedDict()
        for line in lines[1:]:
            m = RATE.match(line)
            if m:
                vals = [float(m.group(2))]
                d = re.search(r"(-?\d+(?:\.\d+)?)% dropped", m.group(3))
                if d:
                    vals.append(float(d.group(1)))
                rows[m.group(1).strip()] = vals
                continue
            toks = line.split()
            if len(toks) <= len(cols) or not any(NUM.match(t) for t in toks[-len(cols):]):
                continue
            rows[" ".join(toks[:-len(cols)])] = [float(t) if NUM.match(t) else None
                                                 for t in toks[-len(cols):]]
        out.append((cols, rows))
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


w("## b. Timings (in-process benchmarks, %s runs, median of the runs)" % meta.get("reps", "?"))
w("")
w("Noisy shared 2-vCPU VM: compare ratios and the callgrind figures above rather than these.")
w("")
for prog, keyname in (("dynobs-bench", "median ns"), ("dynobs-http-bench", "added")):
    t = table(prog)
    w("### %s" % prog)
    w("")
    if not t:
        w("not run")
        w("")
        continue
    cols = t[0][0]
    keycol = cols.index(keyname) if keyname in cols else 0
    labels = []
    for _, rows in t:
        for k in rows:
            if k not in labels:
                labels.append(k)
    w("| operation | %s | %s, each run |" % (" | ".join(cols), cols[keycol]))
    w("| --- | %s | --- |" % " | ".join("---" for _ in cols))
    for k in labels:
        vals = [rows[k] for _, rows in t if k in rows]
        if k.startswith("ring:"):
            cells = [fmt(med(v[0] for v in vals), 2) + " M/s"] + ["" for _ in cols[1:]]
            if len(vals[0]) > 1 and len(cols) > 1:
                cells[1] = "%s%% dropped" % fmt(med(v[1] for v in vals if len(v) > 1), 1)
            each = ", ".join(fmt(v[0], 2) for v in vals)
        else:
            cells = []
            for i in range(len(cols)):
                m = med(v[i] for v in vals if len(v) > i)
                cells.append(fmt(m, 1) if m is not None else "-")
            each = ", ".join(fmt(v[keycol], 1) if len(v) > keycol and v[keycol] is not None
                             else "-" for v in vals)
        w("| %s | %s | %s |" % (k, " | ".join(cells), each))
    w("")
w("Timing runs: `DYNOBS_SHM_DIR=$(mktemp -d) DYNOBS_RING_BYTES=2M build/bench/dynobs-bench` and "
  "`DYNOBS_SHM_DIR=$(mktemp -d) DYNOBS_RING_BYTES=8M build/bench/dynobs-http-bench` (the ring "
  "sizes the programs pick for themselves), full length; `target ns` is the program's own target "
  "column. `dynobs-http-bench` has no consumer: in its full run the 8 MiB ring fills during the "
  "server rows, so part of those spans take the (cheaper) dropped path, as in BENCHMARKS.md's "
  "runs of the same command.")
w("")
notes = open(os.path.join(OUT, "notes.txt")).read().strip()
if failed or notes:
    w("## Problems during the run")
    w("")
    for f in failed:
        w("- failed: %s" % f)
    for n in notes.splitlines():
        w("- %s" % n)
    w("")
open(os.path.join(OUT, "report.md"), "w").write("\n".join(L) + "\n")
PY
phase "writing $OUT/report.md"
python3 "$OUT/analyze.py" "$OUT" || { echo "analysis failed" >&2; exit 1; }
phase "done in $(($(date +%s) - T_START)) s: $OUT/report.md"
