#!/usr/bin/env bash
# What loading libdynobs.so adds to the start of a process that never
# records anything: /bin/true, started N times in a tight posix_spawn +
# waitpid loop (a small C driver, so that a shell's own fork and exec
# costs do not drown the figure), under four preloads run alternately,
# round after round:
#   none      no LD_PRELOAD
#   empty     a library with nothing in it (the baseline: what any preload
#             costs the loader)
#   enabled   libdynobs.so
#   disabled  libdynobs.so with OTEL_SDK_DISABLED=true
# It prints the median time per process of each and what enabled and
# disabled add to the empty library, then callgrind's instruction counts
# of one run of /bin/true under each (repeatable where timings on a
# shared VM are not).
#
#   bash bench/start_cost.sh [LIBDYNOBS] [EMPTY_LIB]
#
# LIBDYNOBS defaults to build/libdynobs.so; EMPTY_LIB is built into a
# temporary directory when not given. Environment: N (processes per
# measurement, default 1000), ROUNDS (default 7), PROG (default /bin/true),
# CALLGRIND=0 to skip the instruction counts.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB=$(realpath "${1:-$HERE/../build/libdynobs.so}")
N=${N:-1000}
ROUNDS=${ROUNDS:-7}
PROG=${PROG:-/bin/true}
[[ -f $LIB ]] || { echo "no $LIB (build first)" >&2; exit 2; }

TMP=$(mktemp -d /tmp/dynobs-start-XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# A clean environment: nothing of the caller's dynobs or OpenTelemetry
# settings leaks in; records (there should be none) go to our directory.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(DYNOBS_|OTEL_)')
unset LD_PRELOAD
export DYNOBS_SHM_DIR=$TMP/shm

if [[ -n ${2:-} ]]; then
  EMPTY=$(realpath "$2")
else
  EMPTY=$TMP/libempty.so
  : >"$TMP/empty.c"
  cc -shared -fPIC -O2 -o "$EMPTY" "$TMP/empty.c"
fi

cat >"$TMP/spawn_loop.c" <<'C'
/* Starts argv[2...] argv[1] times, one after the other, and prints the
 * mean wall-clock nanoseconds per process. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv)
{
    if (argc < 3)
        return 2;
    long n = atol(argv[1]);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (long i = 0; i < n; i++) {
        pid_t pid;
        int st;
        if (posix_spawn(&pid, argv[2], NULL, NULL, argv + 2, environ) != 0 ||
            waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "run %ld of %s failed\n", i, argv[2]);
            return 1;
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.0f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    return 0;
}
C
cc -O2 -o "$TMP/spawn_loop" "$TMP/spawn_loop.c"

MODES=(none empty enabled disabled)
mode_env() {
  case $1 in
    none) ;;
    empty) echo "LD_PRELOAD=$EMPTY" ;;
    enabled) echo "LD_PRELOAD=$LIB" ;;
    disabled) echo "LD_PRELOAD=$LIB OTEL_SDK_DISABLED=true" ;;
  esac
}

echo "libdynobs: $LIB"
echo "program: $PROG, $N processes per measurement, $ROUNDS rounds, modes alternating"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs"
# One warm-up of each (page cache, the driver itself).
for m in "${MODES[@]}"; do
  env $(mode_env "$m") "$TMP/spawn_loop" 50 "$PROG" >/dev/null
done
for r in $(seq "$ROUNDS"); do
  for m in "${MODES[@]}"; do
    ns=$(env $(mode_env "$m") "$TMP/spawn_loop" "$N" "$PROG")
    echo "$m $ns" >>"$TMP/times"
  done
done
[[ -z $(ls -A "$TMP/shm" 2>/dev/null) ]] || echo "warning: a segment was created in $TMP/shm"

python3 - "$TMP/times" <<'PY'
import collections, statistics, sys
t = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m, ns = line.split()
    t[m].append(int(ns) / 1000)
med = {m: statistics.median(v) for m, v in t.items()}
print()
print("Added = the median over the rounds of (mode - empty) in the same round: the rounds "
      "alternate, so a busy moment of the machine weighs on both sides of each difference.")
print()
print("| preload | µs per process, median | each round | added to the empty library |")
print("| --- | --- | --- | --- |")
for m in ("none", "empty", "enabled", "disabled"):
    d = [a - b for a, b in zip(t[m], t["empty"])]
    add = "" if m in ("none", "empty") else "%+.1f µs" % statistics.median(d)
    if m == "empty":
        add = "(baseline; %+.1f µs against none)" % -statistics.median(
            [a - b for a, b in zip(t["none"], t["empty"])])
    print("| %s | %.1f | %s | %s |" % (m, med[m], ", ".join("%.0f" % x for x in t[m]), add))
PY

[[ ${CALLGRIND:-1} == 0 ]] && exit 0
command -v valgrind >/dev/null || { echo "no valgrind: instruction counts skipped"; exit 0; }
echo
echo "| preload | instructions, whole process (callgrind) | added to the empty library | of which in libdynobs.so's constructor |"
echo "| --- | --- | --- | --- |"
declare -A IR
for m in "${MODES[@]}"; do
  f=$TMP/cg-$m.out
  env $(mode_env "$m") valgrind --tool=callgrind --callgrind-out-file="$f" "$PROG" \
    >/dev/null 2>"$TMP/cg-$m.err"
  IR[$m]=$(sed -n 's/^summary: *//p;s/^totals: *//p' "$f" | head -1)
  ctor=$(callgrind_annotate --inclusive=yes "$f" 2>/dev/null |
           awk '/dynobs_constructor/ && !x {gsub(",", "", $1); print $1; x = 1}' || true)
  add=
  [[ $m == enabled || $m == disabled ]] && add=$(printf '%+d' $((IR[$m] - IR[empty])))
  echo "| $m | ${IR[$m]} | $add | ${ctor:-} |"
done
