#!/usr/bin/env bash
# Where what the shim adds to nginx goes, symbol by symbol (BENCHMARKS.md,
# "Tenth round"): the plain and the shim nginx loaded at the same time,
# so that both see the same machine, while perf samples both workers.
#
#   bash bench/nginx_symbols.sh [BUILD_DIR]      (default: build)
#
# The nginx of bench/nginx_wrk.sh (Debian's, one worker, access_log off,
# a 680-byte index.html, keep-alive), both pinned to the first CPU; two
# wrk (-t1 -c32), one per nginx, on the last CPU, for SECONDS_PER_RUN;
# dynobs-exporter drains the segments with nothing exported. perf's
# cpu-clock samples (this VM has no hardware counters) of both workers
# are then counted per 1000 requests each served: by library, and the
# symbols whose samples grew most from the plain worker to the shim's
# (a symbol of libdynobs.so grows from nothing). Samples land where the
# CPU waits: a load that misses the caches shows in the instruction
# after it, and the kernel's time with interrupts off shows in
# _raw_spin_unlock_irqrestore.
#
# Environment: SECONDS_PER_RUN (15), FREQ (perf's sampling frequency,
# 10000), TOP (symbols listed, 25), VERSUS (a libdynobs.so the "plain"
# nginx runs under instead of none).
set -uo pipefail

DUR=${SECONDS_PER_RUN:-15}
FREQ=${FREQ:-10000}
TOP=${TOP:-25}

# shellcheck source=bench/nginx_site.sh
. "$(dirname "$0")/nginx_site.sh"
perf_bench_begin "${1:-build}" symbols

# requests URL SECONDS: the requests wrk completed
requests() {
  "${pin_wrk[@]}" /usr/bin/wrk -t1 -c32 -d"$2"s "$1" | awk '/requests in/ {print $1}'
}
requests "$URL_PLAIN" 2 >/dev/null
requests "$URL_SHIM" 2 >/dev/null

perf record -q -e cpu-clock -F "$FREQ" -p "$WORKER_PLAIN,$WORKER_SHIM" -o "$DIR/perf.data" \
  -- sleep $((DUR + 1)) 2>"$DIR/perf.log" &
PERF=$!
sleep 0.5
requests "$URL_PLAIN" "$DUR" >"$DIR/n.plain" &
A=$!
requests "$URL_SHIM" "$DUR" >"$DIR/n.shim" &
B=$!
wait "$A" "$B"
wait "$PERF" || { echo "perf failed:" >&2; cat "$DIR/perf.log" >&2; exit 1; }
NP=$(cat "$DIR/n.plain")
NS=$(cat "$DIR/n.shim")
[[ $NP -gt 0 && $NS -gt 0 ]] || { echo "wrk completed no requests" >&2; exit 1; }

echo "nginx $($NGINX -v 2>&1 | sed 's/.*\///'), both loaded at once for ${DUR}s: plain (worker $WORKER_PLAIN)" \
  "$NP requests, shim (worker $WORKER_SHIM) $NS requests; perf cpu-clock at $FREQ Hz"
echo "shim: $LIB${VERSUS:+; \"plain\" runs under $VERSUS}"
# perf report -n -s pid,dso,sym: "pct samples pid:comm dso [k] symbol"
perf report -i "$DIR/perf.data" --no-children -s pid,dso,sym --stdio -n 2>/dev/null |
  awk -v wp="$WORKER_PLAIN" -v ws="$WORKER_SHIM" -v np="$NP" -v ns="$NS" -v top="$TOP" '
  /^#/ || NF < 6 { next }
  {
    split($3, pc, ":")
    sym = $6
    for (i = 7; i <= NF; i++) sym = sym " " $i
    key = $4 " " sym
    if (pc[1] == wp) { a[key] += $2; da[$4] += $2; ta += $2 }
    else if (pc[1] == ws) { b[key] += $2; db[$4] += $2; tb += $2 }
    keys[key] = 1; dsos[$4] = 1
  }
  END {
    k = 1000 / np; l = 1000 / ns
    printf "samples per 1000 requests: plain %.1f, shim %.1f (ratio %.3f; one sample is %.0f us of CPU)\n",
      ta * k, tb * l, (tb * l) / (ta * k), 1e6 / '"$FREQ"'
    printf "\n%-40s %9s %9s %9s\n", "library", "plain", "shim", "added"
    n = 0
    for (d in dsos) { order[++n] = d; g[d] = db[d] * l - da[d] * k }
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
      if (g[order[j]] > g[order[i]]) { t = order[i]; order[i] = order[j]; order[j] = t }
    for (i = 1; i <= n && i <= 8; i++)
      printf "%-40s %9.2f %9.2f %+9.2f\n", order[i], da[order[i]] * k, db[order[i]] * l, g[order[i]]
    printf "\n%-64s %8s %8s %8s\n", "symbol (library, name): most grown", "plain", "shim", "added"
    n = 0
    for (s in keys) { so[++n] = s; h[s] = b[s] * l - a[s] * k }
    for (i = 1; i <= n && i <= top; i++) {
      m = i
      for (j = i + 1; j <= n; j++) if (h[so[j]] > h[so[m]]) m = j
      t = so[i]; so[i] = so[m]; so[m] = t
      printf "%-64s %8.2f %8.2f %+8.2f\n", substr(so[i], 1, 64), a[so[i]] * k, b[so[i]] * l, h[so[i]]
    }
  }'
