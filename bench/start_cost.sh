#!/usr/bin/env bash
# What loading libdynobs.so adds to the start of a process that never
# records anything: /bin/true, started N times in a tight posix_spawn +
# wait4 loop (a small C driver, so that a shell's own fork and exec
# costs do not drown the figure), under four preloads taking turns
# process by process, in several rounds:
#   none      no LD_PRELOAD
#   empty     a library with nothing in it (the baseline: what any preload
#             costs the loader)
#   enabled   libdynobs.so
#   disabled  libdynobs.so with OTEL_SDK_DISABLED=true
#   nocrash   libdynobs.so with DYNOBS_CRASH_REPORTS=0 (what the crash
#             handlers' five sigaction calls cost)
#   hostwide  libdynobs.so in the host's preload list (host-wide mode,
#             preload/hostwide.c) with a selection file that does not
#             select the program: what every other process of such a host pays
# It prints the median wall-clock and CPU time per process of each and
# what enabled and disabled add to the empty library, then callgrind's instruction counts
# of one run of /bin/true under each (repeatable where timings on a
# shared VM are not).
#
#   bash bench/start_cost.sh [LIBDYNOBS] [EMPTY_LIB]
#
# LIBDYNOBS defaults to build/libdynobs.so; EMPTY_LIB is built into a
# temporary directory when not given. Environment: N (processes per
# mode and round, default 1000), ROUNDS (default 5), PROG (default /bin/true),
# CALLGRIND=0 to skip the instruction counts, BEFORE (another
# libdynobs.so, an earlier build: two more modes, before-enabled and
# before-disabled, take their turns with the others, and the median over
# the rounds of LIBDYNOBS - BEFORE in the same round is printed; copy both
# files at the same moment, as the page cache's state of a file weighs on
# these figures). PADDED=1: one more mode, padded, an empty library whose code,
# constants and initialised data are as large as LIBDYNOBS's (its loadable
# segments', none of it run): what the library's size alone costs a start.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LIB=$(realpath "${1:-$HERE/../build/libdynobs.so}")
N=${N:-1000}
ROUNDS=${ROUNDS:-5}
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
/* spawn_loop N PROG MODE... : starts PROG N times under each MODE (a
 * space-separated list of VAR=VALUE added to the environment, "" for
 * none), the modes taking turns process by process, so that whatever
 * else the machine does weighs on all of them alike. Prints, per mode,
 * the median over its N processes of the wall-clock time from spawn to
 * reaped and of the CPU time (user + system, from wait4) the process
 * used, in microseconds, and the mean of its minor page faults. */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, long n)
{
    qsort(v, n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return 2;
    long n = atol(argv[1]);
    int nmodes = argc - 3;
    char **envs[16];
    double *wall[16], *cpu[16], *flt[16];
    size_t base = 0;
    while (environ[base])
        base++;
    for (int m = 0; m < nmodes && m < 16; m++) {
        envs[m] = calloc(base + 16, sizeof(char *));
        memcpy(envs[m], environ, base * sizeof(char *));
        size_t k = base;
        char *list = strdup(argv[3 + m]);
        for (char *t = strtok(list, " "); t && k < base + 15; t = strtok(NULL, " "))
            envs[m][k++] = t;
        wall[m] = calloc(n, sizeof(double));
        cpu[m] = calloc(n, sizeof(double));
        flt[m] = calloc(n, sizeof(double));
    }
    char *args[] = {argv[2], NULL};
    for (long i = 0; i < n; i++) {
        for (int m = 0; m < nmodes; m++) {
            struct timespec a, b;
            struct rusage ru;
            pid_t pid;
            int st;
            clock_gettime(CLOCK_MONOTONIC, &a);
            if (posix_spawn(&pid, argv[2], NULL, NULL, args, envs[m]) != 0 ||
                wait4(pid, &st, 0, &ru) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                fprintf(stderr, "run %ld of %s under \"%s\" failed\n", i, argv[2], argv[3 + m]);
                return 1;
            }
            clock_gettime(CLOCK_MONOTONIC, &b);
            wall[m][i] = ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e3;
            cpu[m][i] = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec +
                        ru.ru_stime.tv_usec;
            flt[m][i] = (double)ru.ru_minflt;
        }
    }
    for (int m = 0; m < nmodes; m++) {
        double faults = 0; /* (the mean: a page fault taken in some runs shows) */
        for (long i = 0; i < n; i++)
            faults += flt[m][i];
        printf("%.1f %.1f %.2f\n", median(wall[m], n), median(cpu[m], n), faults / n);
    }
    return 0;
}
C
cc -O2 -o "$TMP/spawn_loop" "$TMP/spawn_loop.c"

if [[ ${PADDED:-0} == 1 ]]; then
  # (the sizes of the executable, read-only and writable loadable segments)
  read -r TEXT_B RO_B RW_B < <(readelf -lW "$LIB" | python3 -c '
import sys
text = ro = rw = 0
for line in sys.stdin:
    f = line.split()
    if not f or f[0] != "LOAD":
        continue
    size, flags = int(f[4], 16), "".join(f[6:-1])
    if "E" in flags:
        text = size
    elif "W" in flags:
        rw = size
    elif text:
        ro = size
print(text, ro, rw)')
  cat >"$TMP/padded.c" <<C
__asm__(".text\n.fill $TEXT_B, 1, 0x90\n");
__attribute__((used)) const char padded_constants[$RO_B] = {1};
__attribute__((used)) char padded_data[$RW_B] = {1};
C
  cc -shared -fPIC -O2 -o "$TMP/libpadded.so" "$TMP/padded.c"
fi

printf '%s\n' "$LIB" >"$TMP/ld.so.preload"
printf 'include /opt/not-this-one/*\nexclude */true\n' >"$TMP/hostwide.conf"
MODES=(none empty enabled disabled nocrash hostwide)
if [[ -n ${BEFORE:-} ]]; then
  BEFORE=$(realpath "$BEFORE") || exit 2
  MODES+=(before-enabled before-disabled)
fi
[[ ${PADDED:-0} == 1 ]] && MODES+=(padded)
mode_env() {
  case $1 in
    none) ;;
    empty) echo "LD_PRELOAD=$EMPTY" ;;
    enabled) echo "LD_PRELOAD=$LIB" ;;
    disabled) echo "LD_PRELOAD=$LIB OTEL_SDK_DISABLED=true" ;;
    nocrash) echo "LD_PRELOAD=$LIB DYNOBS_CRASH_REPORTS=0" ;;
    hostwide) echo "LD_PRELOAD=$LIB DYNOBS_HOSTWIDE_PRELOAD_FILE=$TMP/ld.so.preload DYNOBS_HOSTWIDE_CONF=$TMP/hostwide.conf" ;;
    before-enabled) echo "LD_PRELOAD=$BEFORE" ;;
    before-disabled) echo "LD_PRELOAD=$BEFORE OTEL_SDK_DISABLED=true" ;;
    padded) echo "LD_PRELOAD=$TMP/libpadded.so" ;;
  esac
}
MODE_ARGS=()
for m in "${MODES[@]}"; do MODE_ARGS+=("$(mode_env "$m")"); done

echo "libdynobs: $LIB"
[[ -n ${BEFORE:-} ]] && echo "before: $BEFORE"
echo "program: $PROG, $N processes per mode and round, $ROUNDS rounds, modes taking turns process by process"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) at the start, $(nproc) CPUs"
"$TMP/spawn_loop" 50 "$PROG" "${MODE_ARGS[@]}" >/dev/null # warm-up
for r in $(seq "$ROUNDS"); do
  "$TMP/spawn_loop" "$N" "$PROG" "${MODE_ARGS[@]}" | paste -d' ' <(printf '%s\n' "${MODES[@]}") - \
    >>"$TMP/times"
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) at the end"
[[ -z $(ls -A "$TMP/shm" 2>/dev/null) ]] || echo "warning: a segment was created in $TMP/shm"

python3 - "$TMP/times" <<'PY'
import collections, statistics, sys
wall = collections.defaultdict(list)
cpu = collections.defaultdict(list)
flt = collections.defaultdict(list)
for line in open(sys.argv[1]):
    m, w, c, f = line.split()
    wall[m].append(float(w))
    cpu[m].append(float(c))
    flt[m].append(float(f))
print()
print("Per round, the median over its processes; below, the median of the rounds. Added = "
      "the median over the rounds of (mode - empty) in the same round. CPU = user + system "
      "time of the process itself (wait4), less disturbed by other load than wall-clock time.")
print()
print("| preload | wall µs per process | CPU µs per process | wall added to the empty library "
      "| CPU added | page faults (mean) | wall, each round |")
print("| --- | --- | --- | --- | --- | --- | --- |")
for m in [m for m in ("none", "empty", "enabled", "disabled", "nocrash", "hostwide",
                      "before-enabled", "before-disabled", "padded") if m in wall]:
    def added(t):
        if m == "none":
            return ""
        ref = "none" if m == "empty" else "empty"
        d = statistics.median([a - b for a, b in zip(t[m], t[ref])])
        return "%+.1f µs%s" % (d, " (against none)" if m == "empty" else "")
    print("| %s | %.1f | %.1f | %s | %s | %.2f | %s |" % (
        m, statistics.median(wall[m]), statistics.median(cpu[m]), added(wall), added(cpu),
        statistics.median(flt[m]), ", ".join("%.0f" % x for x in wall[m])))
if "before-enabled" in wall:
    print()
    for m in ("enabled", "disabled"):
        b = "before-" + m
        d = sorted(a - x for a, x in zip(wall[m], wall[b]))
        c = statistics.median([a - x for a, x in zip(cpu[m], cpu[b])])
        print("%s, this library - BEFORE: wall %+.1f µs (rounds, sorted: %s), CPU %+.1f µs" % (
            m, statistics.median(d), ", ".join("%+.1f" % x for x in d), c))
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
  [[ $m != none && $m != empty ]] && add=$(printf '%+d' $((IR[$m] - IR[empty])))
  echo "| $m | ${IR[$m]} | $add | ${ctor:-} |"
done
