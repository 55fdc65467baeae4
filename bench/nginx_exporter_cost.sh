#!/usr/bin/env bash
# What dynobs-exporter costs while it drains a busy server: nginx under
# the shim (the site of bench/nginx_wrk.sh, pinned to the first CPU)
# served by wrk -c32 for 5 s (on the last CPU), and the exporter's CPU
# time and wake-ups over those seconds, per thread, from
# /proc/PID/task/*/schedstat and status (BENCHMARKS.md, "Fifteenth round").
#
#   bash bench/nginx_exporter_cost.sh [BUILD_DIR] [EXPORTER...]
#
# Each EXPORTER given (default BUILD_DIR's) drains in turn, ROUNDS times
# (default 2), alternating, so that two builds compare in one run. The
# exporter runs as nginx_wrk.sh runs it: traces and metrics exported
# nowhere (OTEL_*_EXPORTER=none), the spans drained and dropped.
set -uo pipefail
BUILD=$(realpath "${1:-build}") || exit 2
shift || true
EXPORTERS=("$@")
((${#EXPORTERS[@]})) || EXPORTERS=("$BUILD/exporter/dynobs-exporter")
ROUNDS=${ROUNDS:-2}
LIB=$BUILD/libdynobs.so
NGINX=/usr/sbin/nginx
for f in "$LIB" "$NGINX" /usr/bin/wrk "${EXPORTERS[@]}"; do
  [[ -e $f ]] || { echo "missing: $f (build first; Debian: nginx-light, wrk)" >&2; exit 77; }
done
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(DYNOBS_|OTEL_)')
unset LD_PRELOAD
pin_srv=()
pin_wrk=()
if (($(nproc) >= 2)); then
  pin_srv=(taskset -c 0)
  pin_wrk=(taskset -c "$(($(nproc) - 1))")
fi
# shellcheck source=bench/nginx_site.sh
. "$(dirname "$0")/nginx_site.sh"

# snap PID: "tid cpu_ns voluntary nonvoluntary" per thread
snap() {
  local t
  for t in /proc/"$1"/task/*; do
    echo "${t##*/} $(awk '{ print $1 }' "$t/schedstat")" \
      "$(awk '/^voluntary_ctxt_switches/ { v = $2 } /^nonvoluntary_ctxt_switches/ { n = $2 }
              END { print v, n }' "$t/status")"
  done | sort
}

printf '%-44s %9s %12s %12s %14s\n' exporter spans "cpu ms" "us per span" "wake-ups/s"
for _ in $(seq "$ROUNDS"); do
  for EXPORTER in "${EXPORTERS[@]}"; do
    (
      site_begin exporter-cost
      start_pair "" "$LIB"
      "${pin_wrk[@]}" /usr/bin/wrk -t1 -c32 -d1s "$URL_SHIM" >/dev/null
      a=$(snap "$EXP_PID")
      n=$("${pin_wrk[@]}" /usr/bin/wrk -t1 -c32 -d5s "$URL_SHIM" | awk '/requests in/ { print $1 }')
      b=$(snap "$EXP_PID")
      join <(echo "$a") <(echo "$b") | awk -v n="$n" -v e="$EXPORTER" '
        { cpu += $5 - $2; vol += $6 - $3 }
        END { printf "%-44s %9d %12.1f %12.3f %14.0f\n", e, n, cpu / 1e6, n ? cpu / 1e3 / n : 0, vol / 5 }'
    )
  done
done
