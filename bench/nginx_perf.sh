#!/usr/bin/env bash
# Where the nginx worker's time goes, by library, plain and under the shim
# (BENCHMARKS.md, "Eighth round"): perf's cpu-clock samples of the worker
# while wrk loads it, as shares of the worker's samples and as samples per
# 1000 requests.
#
#   bash bench/nginx_perf.sh [BUILD_DIR]      (default: build)
#
# The same setup as bench/nginx_wrk.sh: Debian's /usr/sbin/nginx, one
# worker, access_log off, a 680-byte index.html, keep-alive; both nginx on
# the first CPU, wrk (-t1 -c32) on the last, dynobs-exporter draining the
# segments with nothing exported. The shim's own code is the figure this
# gives steadily (its share of the worker's samples); the worker's total
# per request moves with the machine as much as the ratio runs do.
#
# Environment: REPS (2: plain then shim, that many times), SECONDS_PER_REP
# (8), FREQ (perf's sampling frequency, 10000), CONNECTIONS (wrk's, 32), VERSUS (a libdynobs.so the
# "plain" nginx runs under instead of none), KEEP (a directory the perf
# files are copied into, NAME.REP.data, for perf report --sort sym).
set -uo pipefail

REPS=${REPS:-2}
DUR=${SECONDS_PER_REP:-8}
FREQ=${FREQ:-10000}
CONNS=${CONNECTIONS:-32}

# shellcheck source=bench/nginx_site.sh
. "$(dirname "$0")/nginx_site.sh"
perf_bench_begin "${1:-build}" perf

# profile NAME PORT WORKER REP: perf of the worker over DUR seconds of wrk.
profile() {
  local name=$1 port=$2 worker=$3 rep=$4 out=$DIR/$1.$4 pp n
  "${pin_wrk[@]}" /usr/bin/wrk -t1 -c"$CONNS" -d2s "http://127.0.0.1:$port/index.html" >/dev/null
  perf record -q -e cpu-clock -F "$FREQ" -p "$worker" -o "$out.data" -- sleep "$DUR" \
    >/dev/null 2>"$out.perf-err" &
  pp=$!
  sleep 0.3
  "${pin_wrk[@]}" /usr/bin/wrk -t1 -c"$CONNS" -d"$((DUR - 1))"s "http://127.0.0.1:$port/index.html" \
    >"$out.wrk" || { echo "wrk failed" >&2; exit 1; }
  wait "$pp" || { echo "perf record failed: $(cat "$out.perf-err")" >&2; exit 1; }
  n=$(awk '/requests in/ { print $1 }' "$out.wrk")
  [[ -n ${KEEP:-} ]] && mkdir -p "$KEEP" && cp "$out.data" "$KEEP/"
  # dso -> samples, from perf's own per-dso totals
  perf report -i "$out.data" --no-children --sort dso --stdio -F sample,dso 2>/dev/null |
    awk -v n="$n" -v who="$name" -v rep="$rep" '
      /^#/ || NF < 2 { next }
      { s[$2] += $1; t += $1 }
      END {
        printf "%-5s %3s %9d %9.1f", who, rep, n, t / n * 1000
        split("[kernel.kallsyms] nginx libc.so.6 libdynobs", k, " ")
        for (i = 1; i <= 4; i++) {
          v = 0
          for (d in s) if (index(d, k[i]) == 1) v += s[d]
          printf " %7.2f%% %7.1f", t ? v / t * 100 : 0, v / n * 1000
        }
        printf "\n"
      }'
}

echo "nginx $($NGINX -v 2>&1 | sed 's/.*\///'), wrk -t1 -c$CONNS, perf cpu-clock at $FREQ Hz," \
  "$DUR s per profile, $REPS repetitions"
echo "shim: $LIB${VERSUS:+; \"plain\" runs under $VERSUS}"
printf '%-5s %3s %9s %9s %17s %17s %17s %17s\n' run rep requests "smp/1000" \
  "kernel %  /1000" "nginx %  /1000" "libc %  /1000" "libdynobs %  /1000"
for r in $(seq "$REPS"); do
  profile plain "$PORT_PLAIN" "$WORKER_PLAIN" "$r"
  profile shim "$PORT_SHIM" "$WORKER_SHIM" "$r"
done
echo "(samples of the worker per 1000 requests, and each library's share of them and per 1000"
echo " requests; perf's cpu-clock counts time on a CPU, kernel time included)"
