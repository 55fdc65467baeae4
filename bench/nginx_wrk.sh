#!/usr/bin/env bash
# nginx serving a small static file, plain and under the shim, measured with
# wrk in the same run: the requests/s and p99 ratios of issue 15.
#
#   bash bench/nginx_wrk.sh [BUILD_DIR]      (default: build)
#
# Two nginx instances run side by side (Debian's /usr/sbin/nginx, one worker,
# access_log off, a 680-byte index.html, keep-alive): one plain, one with
# LD_PRELOAD=BUILD_DIR/libdynobs.so at the default settings (100% sampling),
# while dynobs-exporter drains the segments (OTEL_TRACES_EXPORTER and
# OTEL_METRICS_EXPORTER=none: records are read and discarded, no network).
# The ratio must measure the shim, not the neighbours on a shared machine:
# both nginx run on the same CPU and wrk on another, and the comparison is
# made of many short rounds, each a pair (plain then shim, or shim then
# plain: the order alternates, so neither always runs first), so that both
# members of a pair see nearly the same machine. Printed: per pair req/s,
# p99 and the nginx worker's CPU time per request of both and their
# ratios, then the median of the per-pair ratios with their quartiles and
# the interval the median itself is known to (bootstrap, 95%), and
# the share of the servers' CPU the hypervisor gave to other guests
# (steal) during each side's rounds.
# Throughput and p99 move with whatever else runs on the machine; the
# worker's CPU time per request much less.
#
# Environment: ROUNDS (20 pairs), SECONDS_PER_ROUND (2), CONNECTIONS (32),
# WARMUP (2 s per server before the first round), PIN (1: wrk on the last
# CPU, both nginx on the first, the exporter left to the scheduler; 0: no
# pinning), EXPORTER (the dynobs-exporter to drain with; default
# BUILD_DIR's), VERSUS (a libdynobs.so that the "plain" nginx runs under
# instead of none: two builds of the shim compared the same way, the
# ratios then being BUILD_DIR's / VERSUS's).
set -uo pipefail

BUILD=$(realpath "${1:-build}") || exit 2
ROUNDS=${ROUNDS:-20}
DUR=${SECONDS_PER_ROUND:-2}
CONNS=${CONNECTIONS:-32}
WARMUP=${WARMUP:-2}
PIN=${PIN:-1}
VERSUS=${VERSUS:-}
LIB=$BUILD/libdynobs.so
EXPORTER=${EXPORTER:-$BUILD/exporter/dynobs-exporter}
NGINX=/usr/sbin/nginx

if [[ -n $VERSUS ]]; then
  VERSUS=$(realpath "$VERSUS") || exit 2
fi
for f in "$LIB" "$EXPORTER" "$NGINX" /usr/bin/wrk ${VERSUS:+"$VERSUS"}; do
  [[ -x $f || -f $f ]] || { echo "missing: $f (build first; Debian: nginx-light, wrk)" >&2; exit 77; }
done

# A clean environment: nothing of a caller's dynobs or OpenTelemetry
# configuration leaks into either nginx or the exporter.
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(DYNOBS_|OTEL_)')
unset LD_PRELOAD

NCPU=$(nproc)
if [[ $PIN == 1 && $NCPU -ge 2 ]]; then
  SRV_CPU=0
  WRK_CPU=$((NCPU - 1))
  pin_srv=(taskset -c "$SRV_CPU")
  pin_wrk=(taskset -c "$WRK_CPU")
else
  pin_srv=()
  pin_wrk=()
fi

# shellcheck source=bench/nginx_site.sh
. "$(dirname "$0")/nginx_site.sh"
site_begin wrk

# (the worker processes' CPU time per request is the figure least moved
# by whatever else runs on the machine)
start_pair "$VERSUS" "$LIB"

# cpu_ns PID: the time a process has run on a CPU, in ns
# (/proc/PID/schedstat: exact, where /proc/PID/stat counts 10 ms ticks,
# too coarse for rounds of a few seconds); from stat when it is missing.
cpu_ns() {
  if [[ -r /proc/$1/schedstat ]]; then
    awk '{ print $1 }' "/proc/$1/schedstat"
  else
    sed 's/.*) //' "/proc/$1/stat" | awk -v hz="$(getconf CLK_TCK)" '{ printf "%.0f\n", ($12 + $13) / hz * 1e9 }'
  fi
}

# stolen: the servers' CPU's (all CPUs' without pinning) stolen and total
# time so far, in ticks (/proc/stat: steal is the time the hypervisor ran
# something else while this VM wanted the CPU).
SRV_STAT=cpu${SRV_CPU:-}
stolen() { awk -v c="$SRV_STAT" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print $9, t }' /proc/stat; }

# run_wrk URL SECONDS WORKER: prints "req/s p99_ms worker_us_per_request
# requests stolen_ticks total_ticks", or fails on errors.
run_wrk() {
  local out rps p99 n c0 c1 s0 t0 s1 t1
  read -r s0 t0 < <(stolen)
  c0=$(cpu_ns "$3")
  out=$("${pin_wrk[@]}" /usr/bin/wrk -t1 -c"$CONNS" -d"$2"s --latency "$1") || return 1
  c1=$(cpu_ns "$3")
  read -r s1 t1 < <(stolen)
  if grep -qE 'Non-2xx|Socket errors' <<<"$out"; then
    echo "wrk reported errors: $out" >&2
    return 1
  fi
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  # wrk prints latencies as 812.00us, 1.23ms or 1.01s.
  p99=$(awk -v t="$p99" 'BEGIN {
    if (t ~ /us$/) v = substr(t, 1, length(t) - 2) / 1000;
    else if (t ~ /ms$/) v = substr(t, 1, length(t) - 2);
    else if (t ~ /s$/) v = substr(t, 1, length(t) - 1) * 1000;
    printf "%.3f", v }')
  awk -v r="$rps" -v p="$p99" -v t=$((c1 - c0)) -v n="$n" -v st=$((s1 - s0)) -v tt=$((t1 - t0)) \
    'BEGIN { printf "%s %s %.3f %d %d %d\n", r, p, n ? t / 1e3 / n : 0, n, st, tt }'
}

# ticks PID: the process's user and system time so far, in clock ticks
# (/proc/PID/stat; over all rounds together, thousands of ticks a side).
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12, $13 }'; }

echo "nginx $($NGINX -v 2>&1 | sed 's/.*\///'), wrk -t1 -c$CONNS -d${DUR}s --latency, $ROUNDS pairs of rounds," \
  "access_log off, 1 worker, $(stat -c %s "$DIR/nginx-plain/html/index.html")-byte file, keep-alive"
if [[ ${#pin_srv[@]} -gt 0 ]]; then
  echo "$NCPU CPUs, shared by everything: nginx (both) pinned to CPU $SRV_CPU," \
    "wrk to CPU $WRK_CPU, the exporter unpinned"
else
  echo "$NCPU CPUs, shared, no pinning"
fi
HERE_COMMIT=$(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo ?)
echo "shim: $LIB (built $(date -u -r "$LIB" "+%F %T UTC"); this script at commit $HERE_COMMIT)"
[[ -n $VERSUS ]] && echo "\"plain\" is not plain: it runs under $VERSUS (built $(date -u -r "$VERSUS" "+%F %T UTC"))"

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
run_wrk "$URL_PLAIN" "$WARMUP" "$WORKER_PLAIN" >/dev/null || exit 1
run_wrk "$URL_SHIM" "$WARMUP" "$WORKER_SHIM" >/dev/null || exit 1

printf '%-5s %11s %11s %6s %11s %11s %6s %9s %9s %6s\n' round "req/s plain" "req/s shim" ratio \
  "p99 plain" "p99 shim" ratio "cpu plain" "cpu shim" ratio
RATIOS=()
P99R=()
CPUR=()
NP=0
NS=0
STP=0 TTP=0 STS=0 TTS=0
read -r UP0 SP0 < <(ticks "$WORKER_PLAIN")
read -r US0 SS0 < <(ticks "$WORKER_SHIM")
for r in $(seq "$ROUNDS"); do
  if ((r % 2)); then
    a=$(run_wrk "$URL_PLAIN" "$DUR" "$WORKER_PLAIN") || exit 1
    b=$(run_wrk "$URL_SHIM" "$DUR" "$WORKER_SHIM") || exit 1
  else
    b=$(run_wrk "$URL_SHIM" "$DUR" "$WORKER_SHIM") || exit 1
    a=$(run_wrk "$URL_PLAIN" "$DUR" "$WORKER_PLAIN") || exit 1
  fi
  read -r rp pp cp np stp ttp <<<"$a"
  read -r rs ps cs ns sts tts <<<"$b"
  NP=$((NP + np))
  NS=$((NS + ns))
  STP=$((STP + stp)) TTP=$((TTP + ttp)) STS=$((STS + sts)) TTS=$((TTS + tts))
  rr=$(awk -v a="$rs" -v b="$rp" 'BEGIN { printf "%.3f", a / b }')
  pr=$(awk -v a="$ps" -v b="$pp" 'BEGIN { printf "%.3f", a / b }')
  cr=$(awk -v a="$cs" -v b="$cp" 'BEGIN { printf "%.3f", b ? a / b : 0 }')
  RATIOS+=("$rr")
  P99R+=("$pr")
  CPUR+=("$cr")
  printf '%-5s %11.0f %11.0f %6s %9.2fms %9.2fms %6s %7.2fus %7.2fus %6s\n' "$r" "$rp" "$rs" "$rr" \
    "$pp" "$ps" "$pr" "$cp" "$cs" "$cr"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# quartiles VALUES...: "q1-q3" (nearest rank), the spread of the pairs.
quartiles() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
  a = int((NR + 3) / 4); b = int((3 * NR + 3) / 4); printf "%s-%s\n", v[a], v[b] }'; }
# median_interval VALUES...: "lo-hi", where the median of pairs like these
# lies 95 times in 100 (the bootstrap: the median of 2000 draws of as many
# pairs, with replacement, from these; a fixed seed, so that the same
# values give the same interval). What one run can resolve: a goal inside
# the interval is neither met nor missed by the run.
median_interval() {
  printf '%s\n' "$@" | awk 'BEGIN { srand(1) } { v[NR] = $1 } END {
    n = NR
    for (b = 0; b < 2000; b++) {
      for (i = 1; i <= n; i++) r[i] = v[int(rand() * n) + 1]
      for (i = 2; i <= n; i++) {
        x = r[i]
        for (j = i - 1; j > 0 && r[j] > x; j--) r[j + 1] = r[j]
        r[j + 1] = x
      }
      print (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
    } }' | sort -g | awk '{ m[NR] = $1 } END { printf "%.3f-%.3f\n", m[51], m[1950] }'
}
read -r _ _ _ _ _ _ _ _ _ _ _ utime stime _ < <(sed 's/.*) //' "/proc/$EXP_PID/stat")
echo "median req/s ratio (shim / plain):   $(median "${RATIOS[@]}")   (quartiles $(quartiles "${RATIOS[@]}");" \
  "95% interval of the median $(median_interval "${RATIOS[@]}"); goal >= 0.97)"
echo "median p99 ratio (shim / plain):     $(median "${P99R[@]}")   (quartiles $(quartiles "${P99R[@]}");" \
  "95% interval of the median $(median_interval "${P99R[@]}"); goal <= 1.05)"
echo "median worker CPU per request ratio: $(median "${CPUR[@]}")   (quartiles $(quartiles "${CPUR[@]}");" \
  "95% interval of the median $(median_interval "${CPUR[@]}"); cpu: the nginx worker's time on a CPU" \
  "over the round / requests, from /proc/PID/schedstat)"
# Where the worker's time per request goes, user or kernel: the ticks of
# all rounds together, per request, and their ratios.
read -r UP1 SP1 < <(ticks "$WORKER_PLAIN")
read -r US1 SS1 < <(ticks "$WORKER_SHIM")
awk -v hz="$(getconf CLK_TCK)" -v np="$NP" -v ns="$NS" -v up=$((UP1 - UP0)) -v sp=$((SP1 - SP0)) \
  -v us=$((US1 - US0)) -v ss=$((SS1 - SS0)) 'BEGIN {
  f = 1e6 / hz; upr = up * f / np; spr = sp * f / np; usr = us * f / ns; ssr = ss * f / ns
  printf "worker CPU per request over all rounds, user / system: plain %.2f / %.2f us, shim %.2f / %.2f us," \
    " ratios %.3f / %.3f (/proc/PID/stat ticks: %d / %d plain, %d / %d shim)\n",
    upr, spr, usr, ssr, upr ? usr / upr : 0, spr ? ssr / spr : 0, up, sp, us, ss }'
awk -v a="$STP" -v b="$TTP" -v c="$STS" -v d="$TTS" -v cpu="$SRV_STAT" 'BEGIN {
  printf "time stolen from %s by the hypervisor during the rounds: plain %.1f%%, shim %.1f%%" \
    " (/proc/stat steal; a round with more of it serves fewer requests)\n",
    cpu, b ? 100 * a / b : 0, d ? 100 * c / d : 0 }'
echo "load average at the start: $LOAD_START, at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "exporter CPU over the run: $(awk -v u="$utime" -v s="$stime" -v hz="$(getconf CLK_TCK)" \
  'BEGIN { printf "%.1f s", (u + s) / hz }'), segments drained: $(find "$SHM" -type f | wc -l)"
