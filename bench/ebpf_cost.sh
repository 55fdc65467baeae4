#!/usr/bin/env bash
# What a traced call costs through eBPF (dynobs-exporter --ebpf --pid)
# next to the preload path (LD_PRELOAD=libdynobs.so), for the same calls
# (BENCHMARKS.md, "eBPF: what a traced call costs", issue 17).
#
#   bash bench/ebpf_cost.sh BUILD_DIR      (as root; about 70 seconds)
#
# Starts a throw-away PostgreSQL 15 (as the postgres user, unix socket
# only), then, ROUNDS times (default 7), runs build/bench/dynobs-ebpf-bench
# (PQexec("SELECT 1"), an HTTP/1 exchange over loopback TCP and the same
# through OpenSSL, see bench/ebpf_bench.c) in four configurations, in an
# order that rotates from round to round:
#   plain     no shim, no exporter;
#   preload   under LD_PRELOAD, with a (non-eBPF) exporter draining its
#             segment;
#   ebpf      plain, traced by an exporter started with --ebpf --pid (once
#             its libpq and libssl have their uprobes);
#   untraced  plain, not traced, while that --ebpf exporter still runs
#             (its system-call tracepoints run for every process).
# Exporters run with OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none
# and a segment directory of their own. Prints medians over the rounds,
# differences against plain, and the exporter's CPU per traced call (from
# /proc/PID/task/*/schedstat, measured by the driver around its batches).
# Then two passes that explain the figures: unless UPROBE_CAL=0, what a
# bare uprobe hit costs here (tracefs uprobes, no BPF, on two empty
# functions of the driver); unless BPF_STATS=0, one more traced run per
# workload with the kernel's BPF run-time statistics on (BPF_ENABLE_STATS,
# held only for that run), giving how many times each of the exporter's
# BPF programs ran and how long it took, from `bpftool prog show`.
#
# The driver and PostgreSQL (its backends) run on one CPU (CPU, default
# 0): a statement's round trip is then two switches on that CPU, where
# otherwise it is 17 or 55 us from one run to the next here, depending on
# whether the scheduler put the two on one vCPU or woke the other one.
# The exporters run where the scheduler puts them.
#
# Environment: ROUNDS (default 7), SCALE (default 1: batches per run),
# BPF_STATS (default 1), KEEP=1 keeps the work directory (logs),
# EXPORTER (default BUILD_DIR/exporter/dynobs-exporter: another build's,
# to compare two versions of ebpf/ with the same driver), EXPORTER_B
# (another exporter: adds an "ebpf-b" configuration, traced by it, to
# every round).
set -uo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
B=$(realpath "$1") || exit 2
DRV=$B/bench/dynobs-ebpf-bench
EXP=${EXPORTER:-$B/exporter/dynobs-exporter}
LIB=$B/libdynobs.so
ROUNDS=${ROUNDS:-7}
SCALE=${SCALE:-1}
CPU=${CPU:-0}
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

die() { echo "ebpf_cost.sh: $*" >&2; exit 1; }
skip() { echo "ebpf_cost.sh: skipped: $*" >&2; exit 77; }
[[ $(id -u) -eq 0 ]] || skip "not root: eBPF needs root, or CAP_BPF and CAP_PERFMON"
[[ -e /sys/kernel/btf/vmlinux ]] || skip "the kernel has no BTF"
[[ -e $B/ebpf/proc.skel.h ]] || skip "$EXP was built without eBPF (DYNOBS_WITH_EBPF)"
[[ -x $DRV && -x $EXP && -e $LIB ]] || die "build $B first (dynobs-ebpf-bench needs libpq-dev and libssl-dev)"
[[ -x $PGBIN/postgres ]] || skip "PostgreSQL is missing (Debian: postgresql-15)"
command -v bpftool >/dev/null || BPF_STATS=0

# Nothing of a caller's dynobs or OpenTelemetry configuration leaks in.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(DYNOBS_|OTEL_)')
unset LD_PRELOAD

W=$(mktemp -d /tmp/dynobs-ebpfcost-XXXXXX)
chmod 755 "$W"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [[ -f $W/pg/data/postmaster.pid ]] && kill -INT "$(head -1 "$W/pg/data/postmaster.pid")" 2>/dev/null
  sleep 0.5
  [[ ${KEEP:-0} == 1 ]] && echo "work directory kept: $W" >&2 || rm -rf "$W"
}
trap cleanup EXIT
phase() { echo "[$(date +%T)] $*" >&2; }
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ---------------------------------------------------------------- PostgreSQL
phase "starting PostgreSQL"
mkdir -p "$W/pg" && chown postgres: "$W/pg"
runuser -u postgres -- "$PGBIN/initdb" -D "$W/pg/data" --auth=trust -U postgres >"$W/initdb.log" 2>&1 ||
  die "initdb failed: $(tail -3 "$W/initdb.log")"
PGPORT=$(free_port)
taskset -c "$CPU" runuser -u postgres -- "$PGBIN/postgres" -D "$W/pg/data" -k "$W/pg" -p "$PGPORT" \
  -c listen_addresses= -c fsync=off >"$W/pg.log" 2>&1 &
for _ in $(seq 100); do
  "$PGBIN/pg_isready" -q -h "$W/pg" -p "$PGPORT" && break
  sleep 0.2
done
"$PGBIN/pg_isready" -q -h "$W/pg" -p "$PGPORT" || die "PostgreSQL did not start: $(tail -3 "$W/pg.log")"
CONN="host=$W/pg port=$PGPORT user=postgres dbname=postgres"

# ---------------------------------------------------------------- helpers
# start_exporter NAME [ARGS...]: an exporter with its own segment
# directory, log and Prometheus port; sets EXP_PID and EXP_PORT.
start_exporter() {
  local name=$1; shift
  EXP_PORT=$(free_port)
  mkdir -p "$W/shm-$name"
  env DYNOBS_SHM_DIR="$W/shm-$name" OTEL_TRACES_EXPORTER=none OTEL_METRICS_EXPORTER=none \
    OTEL_EXPORTER_PROMETHEUS_PORT="$EXP_PORT" OTEL_LOG_LEVEL=info \
    "${EXP_BIN:-$EXP}" "$@" >>"$W/exporter-$name.log" 2>&1 &
  EXP_PID=$!
  PIDS+=("$EXP_PID")
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$EXP_PORT/metrics" >/dev/null && return 0
    sleep 0.1
  done
  die "the exporter did not start: $(tail -3 "$W/exporter-$name.log")"
}

stop_exporter() {
  curl -sf "http://127.0.0.1:$EXP_PORT/metrics" >"$W/metrics-$1.txt" 2>/dev/null
  kill -TERM "$EXP_PID" 2>/dev/null
  wait "$EXP_PID" 2>/dev/null
}

# wait_log NAME REGEX: until the exporter's log has a line matching it.
wait_log() {
  for _ in $(seq 200); do
    grep -Eq "$2" "$W/exporter-$1.log" && return 0
    sleep 0.1
  done
  die "no '$2' in $W/exporter-$1.log"
}

# run_driver ROUND CONFIG WATCH_SETUP [ENV...]: runs the driver with ENV,
# talking to it through two FIFOs; once it is connected, calls the
# function named WATCH_SETUP with its pid (which sets WATCH, the process
# whose CPU the driver measures), then appends its results to results.tsv.
run_driver() {
  local round=$1 config=$2 setup=$3; shift 3
  rm -f "$W/to-driver" "$W/from-driver"
  mkfifo "$W/to-driver" "$W/from-driver"
  env "$@" taskset -c "$CPU" "$DRV" "$CONN" "$SCALE" "$LIST" <"$W/to-driver" >"$W/from-driver" 2>>"$W/driver.err" &
  local pid=$! in out line
  PIDS+=("$pid")
  exec {in}>"$W/to-driver" {out}<"$W/from-driver"
  read -r -t 30 -u "$out" line && [[ $line == ready ]] || die "the driver did not start: $(tail -3 "$W/driver.err")"
  WATCH=
  "$setup" "$pid"
  echo "go $WATCH" >&"$in"
  while read -r -t 300 -u "$out" name ns calls n watched all; do
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$config" "$name" "$ns" "$calls" "$n" "$watched" "$all" >>"$W/results.tsv"
  done
  exec {in}>&- {out}<&-
  wait "$pid" || die "the driver failed ($config): $(tail -3 "$W/driver.err")"
}

no_setup() { :; }
watch_exporter() { WATCH=$EXP_PID; }
attach_ebpf() {
  start_exporter "ebpf" --ebpf --pid "$1"
  [[ $LIST == *pq* ]] && wait_log ebpf "pid $1: [0-9]+ probes on \S*libpq\.so"
  [[ $LIST == *tls* ]] && wait_log ebpf "pid $1: [0-9]+ probes on \S*libssl\.so"
  WATCH=$EXP_PID
}

config_plain() { run_driver "$1" plain no_setup; }
config_preload() {
  start_exporter "preload"
  run_driver "$1" preload watch_exporter LD_PRELOAD="$LIB" DYNOBS_SHM_DIR="$W/shm-preload" \
    DYNOBS_RING_BYTES=8M OTEL_SERVICE_NAME=bench-preload
  stop_exporter "preload-$1"
}
# ebpf, then untraced while the same exporter runs
config_ebpf() {
  run_driver "$1" ebpf attach_ebpf OTEL_SERVICE_NAME=bench-ebpf
  run_driver "$1" untraced watch_exporter OTEL_SERVICE_NAME=bench-untraced
  stop_exporter "ebpf-$1"
}

# the same as ebpf, with the exporter EXPORTER_B
config_ebpfb() {
  EXP_BIN=$EXPORTER_B run_driver "$1" ebpf-b attach_ebpf OTEL_SERVICE_NAME=bench-ebpf
  stop_exporter "ebpfb-$1"
}

# Whatever else runs eBPF programs on the system-call tracepoints (other
# --ebpf exporters) is paid in every configuration: named in the report.
others() {
  pgrep -a -f 'dynobs-exporter.*--ebpf' | grep -v -E "^($(IFS='|'; echo "${PIDS[*]:-0}")) " |
    sed 's/^/  /'
}

# ---------------------------------------------------------------- rounds
LIST=pq,http,tls
: >"$W/results.tsv"
CONFIGS=(plain preload ebpf)
[[ -n ${EXPORTER_B:-} ]] && CONFIGS+=(ebpfb)
T0=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
OTHERS0=$(others)
for r in $(seq "$ROUNDS"); do
  phase "round $r of $ROUNDS"
  for i in "${!CONFIGS[@]}"; do
    c=${CONFIGS[$(((i + r) % ${#CONFIGS[@]}))]}
    "config_$c" "$r"
  done
done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- bare uprobes
# What a uprobe hit costs on this machine without any BPF program: tracefs
# uprobes on the driver's two empty functions (one whose first
# instruction the kernel single-steps, one whose push it emulates), on
# entry, then on return, with a filter that records nothing, against the
# same calls without them; three rounds.
TR=/sys/kernel/tracing
sym_offset() { # the file offset of the driver's symbol $1
  local addr off va fsz
  addr=$((16#$(nm "$DRV" | awk -v s="$1" '$3 == s { print $1 }')))
  while read -r _ off va _ fsz; do
    if ((addr >= va && addr < va + fsz)); then printf '0x%x\n' $((addr - va + off)); return; fi
  done < <(readelf -lW "$DRV" | awk '$1 == "LOAD" { print $1, $2, $3, $4, $5 }')
}
probes_off() {
  for e in noop push; do
    for k in "" ret; do
      [[ -e $TR/events/dynobs_bench/$e$k/enable ]] && echo 0 >"$TR/events/dynobs_bench/$e$k/enable"
      grep -q "dynobs_bench/$e$k " "$TR/uprobe_events" 2>/dev/null && echo "-:dynobs_bench/$e$k" >>"$TR/uprobe_events"
    done
  done
}
probes_add() {
  for e in noop push; do
    echo "p:dynobs_bench/$e $DRV:${OFFS[$e]}" >>"$TR/uprobe_events" &&
      echo "r:dynobs_bench/${e}ret $DRV:${OFFS[$e]}" >>"$TR/uprobe_events" || return 1
  done
}
probes_on() { # probes_on SUFFIX: "" on entry, "ret" on return
  for e in noop push; do
    echo 'common_pid == 0' >"$TR/events/dynobs_bench/$e$1/filter" &&
      echo 1 >"$TR/events/dynobs_bench/$e$1/enable" || return 1
  done
}
entry_probes() { probes_on ""; }
return_probes() { probes_on ret; }
declare -A OFFS
OFFS[noop]=$(sym_offset dynobs_bench_noop 2>/dev/null)
OFFS[push]=$(sym_offset dynobs_bench_push 2>/dev/null)
if [[ ${UPROBE_CAL:-1} == 1 && -w $TR/uprobe_events && -n ${OFFS[noop]} && -n ${OFFS[push]} ]]; then
  phase "bare uprobes on dynobs_bench_noop and dynobs_bench_push"
  trap 'probes_off; cleanup' EXIT
  probes_off
  LIST=noop,push
  for r in 1 2 3; do
    run_driver "$r" plain no_setup
    probes_add || { echo "cannot add uprobes" >&2; break; }
    run_driver "$r" uprobe entry_probes
    probes_off
    probes_add
    run_driver "$r" uretprobe return_probes
    probes_off
  done
  probes_off
fi

# ---------------------------------------------------------------- BPF stats
# Per program of our --ebpf exporter (those loaded after the ids in
# $W/ids-before: bpftool here cannot name a program's owner): its runs
# and its time, from before "go" to the driver's end.
prog_stats() {
  bpftool -j prog show 2>/dev/null | /usr/bin/python3 -c '
import json, sys
old = set(open(sys.argv[1]).read().split())
for p in json.load(sys.stdin):
    if str(p["id"]) not in old:
        print(p["id"], p.get("name", "?"), p.get("type", "?"), p.get("run_cnt", 0),
              p.get("run_time_ns", 0))' "$W/ids-before"
}
stats_setup() {
  bpftool -j prog show 2>/dev/null | /usr/bin/python3 -c '
import json, sys
print(" ".join(str(p["id"]) for p in json.load(sys.stdin)))' >"$W/ids-before"
  attach_ebpf "$1"
  prog_stats >"$W/stats-before"
}
# Holds BPF_ENABLE_STATS (BPF_STATS_RUN_TIME) while it lives: the kernel
# turns the statistics off again when the descriptor closes, whatever
# happens to this script.
hold_stats() {
  /usr/bin/python3 -c '
import ctypes, os, sys, time
nr = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine)
attr = ctypes.c_uint32(0)
fd = ctypes.CDLL(None, use_errno=True).syscall(nr, 32, ctypes.byref(attr), 4) if nr else -1
print("on" if fd >= 0 else "off", flush=True)
time.sleep(600)' >"$W/hold.out" 2>&1 &
  HOLD_PID=$!
  PIDS+=("$HOLD_PID")
  for _ in $(seq 50); do [[ -s $W/hold.out ]] && break; sleep 0.1; done
  grep -q '^on' "$W/hold.out"
}
: >"$W/stats.tsv"
if [[ ${BPF_STATS:-1} == 1 ]]; then
  phase "BPF run-time statistics, one traced run per workload"
  for LIST in pq http tls; do
    hold_stats || { echo "BPF_ENABLE_STATS refused: no statistics" >&2; kill "$HOLD_PID"; break; }
    run_driver stats "stats-$LIST" stats_setup OTEL_SERVICE_NAME=bench-ebpf
    prog_stats >"$W/stats-after"
    kill "$HOLD_PID"
    stop_exporter "stats-$LIST"
    all=$(awk -v w="$LIST" '$2 == "stats-" w { print $8 * $5 }' "$W/results.tsv")
    join <(sort "$W/stats-before") <(sort "$W/stats-after") |
      awk -v w="$LIST" -v calls="$all" '$8 > $4 { printf "%s\t%s\t%s\t%d\t%d\t%d\n", w, $2, $3, $8 - $4, $9 - $5, calls }' >>"$W/stats.tsv"
  done
fi

# ---------------------------------------------------------------- report
T1=$(date +%s)
/usr/bin/python3 - "$W/results.tsv" "$ROUNDS" "$LOAD0" "$LOAD1" "$((T1 - T0))" "$W/stats.tsv" <<'EOF'
import statistics, sys
from collections import defaultdict
path, rounds, load0, load1, secs, stats = sys.argv[1:]
rows = [l.rstrip("\n").split("\t") for l in open(path) if l.strip()]
by = defaultdict(list)
calls, cpu = {}, defaultdict(list)
for rnd, config, name, ns, per, n, watched, _ in rows:
    if rnd == "stats":
        continue
    by[(name, config)].append(float(ns))
    calls[name] = int(per)
    if config in ("preload", "ebpf", "untraced", "ebpf-b"):
        cpu[(name, config)].append(float(watched) / int(n) / int(per))
what = {"noop": "an empty function (1 call)", "push": "an empty function (1 call)",
        "pq": "PQexec('SELECT 1'), unix socket (1 call)",
        "http": "HTTP/1 100 B exchange, loopback TCP (4 socket calls)",
        "tls": "same through OpenSSL TLS 1.3 (4 SSL calls)"}
med = lambda v: statistics.median(v) if v else float("nan")
print("medians of %s rounds, %s s; load average before %s, after %s" % (rounds, secs, load0, load1))
print()
print("| exchange | plain us | preload us | eBPF us | preload adds per call | eBPF adds per call | eBPF/preload |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for name in ("pq", "http", "tls"):
    if (name, "plain") not in by:
        continue
    p, s, e = (med(by[(name, c)]) for c in ("plain", "preload", "ebpf"))
    k = calls[name]
    ds, de = (s - p) / k, (e - p) / k
    print("| %s | %.2f | %.2f | %.2f | %.0f ns | %.0f ns | %.1fx |" %
          (what[name], p / 1000, s / 1000, e / 1000, ds, de, de / ds if ds > 0 else float("nan")))
print()
print("| exchange | untraced, no exporter us | untraced, --ebpf exporter running us | difference per call |")
print("| --- | --- | --- | --- |")
for name in ("pq", "http", "tls"):
    if (name, "untraced") not in by:
        continue
    p, u = med(by[(name, "plain")]), med(by[(name, "untraced")])
    print("| %s | %.2f | %.2f | %.0f ns |" % (what[name], p / 1000, u / 1000, (u - p) / calls[name]))
print()
print("| exchange | exporter CPU per call, preload (drain) | exporter CPU per call, eBPF | while an untraced process runs |")
print("| --- | --- | --- | --- |")
for name in ("pq", "http", "tls"):
    if (name, "ebpf") not in cpu:
        continue
    print("| %s | %.0f ns | %.0f ns | %.0f ns |" % (what[name], med(cpu[(name, "preload")]),
                                                   med(cpu[(name, "ebpf")]),
                                                   med(cpu[(name, "untraced")])))
print()
if ("http", "ebpf-b") in by:
    print("| exchange | eBPF us | eBPF, EXPORTER_B us | eBPF adds per call | EXPORTER_B adds per call | exporter CPU per call | EXPORTER_B's |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in ("pq", "http", "tls"):
        if (name, "ebpf-b") not in by:
            continue
        p, e, f = (med(by[(name, c)]) for c in ("plain", "ebpf", "ebpf-b"))
        k = calls[name]
        print("| %s | %.2f | %.2f | %.0f ns | %.0f ns | %.0f ns | %.0f ns |" %
              (what[name], e / 1000, f / 1000, (e - p) / k, (f - p) / k,
               med(cpu[(name, "ebpf")]), med(cpu[(name, "ebpf-b")])))
    print()
if ("noop", "uprobe") in by:
    print("| a bare uprobe (tracefs, no BPF) on an empty function | plain | entry probe | added | return probe | added |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, first in (("noop", "sub $8,%rsp: stepped out of line"), ("push", "push %rbp: emulated")):
        p, u, r = (med(by[(name, c)]) for c in ("plain", "uprobe", "uretprobe"))
        print("| first instruction %s | %.0f ns | %.0f ns | %.0f ns | %.0f ns | %.0f ns |" %
              (first, p, u, u - p, r, r - p))
    print()
srows = [l.rstrip("\n").split("\t") for l in open(stats) if l.strip()]
if srows:
    print("BPF programs of the --ebpf exporter during one traced run (BPF_ENABLE_STATS; the")
    print("tracepoints also run for every other process's system calls in that time):")
    print()
    print("| workload | program | type | runs | runs per traced call | ns per run |")
    print("| --- | --- | --- | --- | --- | --- |")
    total, probes = defaultdict(float), defaultdict(float)
    for w, name, typ, runs, ns, n in srows:
        runs, ns, n = int(runs), int(ns), int(n)
        total[w] += ns / n
        if typ == "kprobe":
            probes[w] += runs / n
        print("| %s | %s | %s | %d | %.2f | %.0f |" % (w, name, typ, runs, runs / n, ns / runs))
    print()
    for w in total:
        print("%s: BPF programs %.0f ns per traced call, %.2f uprobe hits per call" %
              (w, total[w], probes[w]))
    print()
print("per round (us per exchange):")
for name in ("pq", "http", "tls", "noop", "push"):
    for c in ("plain", "preload", "ebpf", "untraced", "ebpf-b", "uprobe", "uretprobe"):
        if (name, c) in by:
            print("  %-5s %-9s %s" % (name, c, " ".join("%.2f" % (x / 1000) for x in by[(name, c)])))
EOF
echo
echo "other --ebpf exporters running during the rounds (their tracepoints run in every configuration):"
[[ -n $OTHERS0 ]] && echo "$OTHERS0" || echo "  none"
echo
echo "what the exporters counted in round 1 (every exchange is one span, two for http and tls):"
for f in "$W/metrics-preload-1.txt" "$W/metrics-ebpf-1.txt"; do
  [[ -f $f ]] || continue
  echo "  $(basename "$f" -1.txt | sed 's/metrics-//'): $(grep -E '^dynobs_exporter_(ring_records_(written|dropped)_total|ebpf_(spans|events|events_lost|calls_lost|attach_failures)_total) ' "$f" |
    sort -u | sed 's/^dynobs_exporter_//' | tr '\n' ' ')"
done
