#!/usr/bin/env bash
# nginx's user-space instructions per request, plain and under the shim,
# counted with callgrind (BENCHMARKS.md, "nginx under wrk, alone").
#
#   bash bench/nginx_callgrind.sh [BUILD_DIR]      (default: build)
#
# nginx (Debian's /usr/sbin/nginx, master_process off: one process, the
# worker's loop) serves index.html (680 bytes) to Python's http.client,
# 500 and then 2500 requests over four keep-alive connections; per request
# = (instructions of the long run - the short run's) / 2000, so start-up
# and connection set-up drop out. Under the shim the ring is 64 MiB (no
# exporter: nothing is dropped in the runs).
#
# TRACEPARENT=1: each request of the Python client carries a traceparent
# of its own (a traced caller: no head repeats).
# CLIENT=wrk: the requests come from wrk instead (`wrk -t1 -c4`, its
# request: a request line and a Host header, as bench/nginx_wrk.sh sends),
# for 1 and then 3 seconds; per request = the difference / the difference
# of wrk's request counts (the last request of a run may be cut off
# and counted by neither: +-1 in thousands).
#
# CACHESIM=1: also simulate the caches (callgrind --cache-sim=yes, the
# host's cache sizes) and print the first-level data cache misses (reads +
# writes), the last-level data misses and the first-level instruction
# cache misses per request, plain and under the shim:
# repeatable, unlike timings, but user space only (the kernel's work
# between requests, which evicts more, is not simulated). CONNS=N: wrk's
# connections (default 4). I1=size,ways,line and D1=... set the simulated
# first-level caches instead of the host's: I1=32768,512,64 (fully
# associative) counts lines without the set conflicts, which move by
# +-15 misses per request with where the library's code happens to lie
# (BENCHMARKS.md, "Twelfth round").
#
# PROFILE=N (default 0): also print the N functions of libdynobs.so (and
# what they call) with the most instructions per request under the shim,
# inclusive, from the same two runs (long - short) / 2000. KEEP=DIR keeps
# the callgrind files there (plain-500.out, shim-2500.out...; with wrk
# plain-1.out, shim-3.out...). DUMP_INSTR=1 writes them per instruction
# (--dump-instr=yes, uncompressed), as bench/hot_code.py --file reads them.
set -uo pipefail
PROFILE=${PROFILE:-0}
KEEP=${KEEP:-}
CLIENT=${CLIENT:-python}
CACHESIM=${CACHESIM:-0}
CONNS=${CONNS:-4}
CG_ARGS=()
[[ ${DUMP_INSTR:-0} == 1 ]] && CG_ARGS=(--dump-instr=yes --compress-pos=no --compress-strings=no)
[[ $CACHESIM == 1 ]] && CG_ARGS+=(--cache-sim=yes ${D1:+--D1=$D1} ${I1:+--I1=$I1})

BUILD=$(realpath "${1:-build}") || exit 2
LIB=$BUILD/libdynobs.so
for f in "$LIB" /usr/sbin/nginx /usr/bin/valgrind /usr/bin/python3 $([[ $CLIENT == wrk ]] && echo /usr/bin/wrk); do
  [[ -e $f ]] || { echo "missing: $f" >&2; exit 77; }
done
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(DYNOBS_|OTEL_)')
unset LD_PRELOAD

DIR=$(mktemp -d /tmp/dynobs-nginx-cg-XXXXXX)
chmod 755 "$DIR"
trap 'rm -rf "$DIR"' EXIT
cat >"$DIR/client.py" <<'PY'
import http.client, os, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
traced = os.environ.get("TRACEPARENT") == "1"
conns = [http.client.HTTPConnection("127.0.0.1", port) for _ in range(4)]
for i in range(n):
    c = conns[i % 4]
    h = {"User-Agent": "bench"}
    if traced:  # a traced caller: every head differs
        h["traceparent"] = "00-%032x-%016x-01" % (int.from_bytes(os.urandom(16), "big"),
                                                  int.from_bytes(os.urandom(8), "big") | 1)
    c.request("GET", "/index.html", headers=h)
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY

# shellcheck source=bench/nginx_site.sh
. "$(dirname "$0")/nginx_site.sh"

# run PRELOAD N: prints the total instruction count of one nginx run
# (with CLIENT=wrk, N seconds of wrk, and then the requests it made).
run() {
  local d port vp envs=()
  d=$(mktemp -d "$DIR/run-XXXXXX")
  chmod 755 "$d"
  mkdir -p "$d/shm"
  port=$(free_port)
  nginx_site "$d" "$port" single
  [[ $1 == 1 ]] && envs=(LD_PRELOAD="$LIB" DYNOBS_SHM_DIR="$d/shm" DYNOBS_RING_BYTES=64M)
  env "${envs[@]}" valgrind --tool=callgrind "${CG_ARGS[@]}" --callgrind-out-file="$d/cg.out" \
    /usr/sbin/nginx -c "$d/nginx.conf" -p "$d" >"$d/valgrind.log" 2>&1 &
  vp=$!
  for _ in $(seq 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
  done
  local made=$2
  if [[ $CLIENT == wrk ]]; then
    made=$(/usr/bin/wrk -t1 -c"$CONNS" -d"$2"s "http://127.0.0.1:$port/index.html" |
      awk '/requests in/ { print $1 }')
    [[ -n $made ]] || { kill "$vp"; return 1; }
  else
    /usr/bin/python3 "$DIR/client.py" "$port" "$2" || { kill "$vp"; return 1; }
  fi
  # (A SIGQUIT that lands just before nginx blocks in epoll_wait is seen
  # only at its next event, which may never come: sent again until it
  # exits.)
  kill -QUIT "$vp"
  for i in $(seq 300); do
    sleep 0.2
    kill -0 "$vp" 2>/dev/null || break
    ((i % 50)) || kill -QUIT "$vp" 2>/dev/null
  done
  wait "$vp"
  if [[ -n $KEEP ]]; then
    mkdir -p "$KEEP"
    cp "$d/cg.out" "$KEEP/$([[ $1 == 1 ]] && echo shim || echo plain)-$2.out"
  fi
  [[ ($1 == 1 && $PROFILE -gt 0) || $CACHESIM == 1 ]] &&
    cp "$d/cg.out" "$DIR/$([[ $1 == 1 ]] && echo shim || echo plain)-$2.out"
  # Ir, or with the cache simulated Ir:D1 misses:LL data misses:I1 misses.
  echo "$(callgrind_annotate "$d/cg.out" 2>/dev/null |
    awk '/PROGRAM TOTALS/ { for (i = 1; i <= NF; i++) gsub(",", "", $i);
      if (NF < 17) print $1; else print $1 ":" $9 + $11 ":" $15 + $17 ":" $7 }' |
    head -1) $made"
}

SHORT=500 LONG=2500
[[ $CLIENT == wrk ]] && SHORT=1 LONG=3
declare -A per d1 ll i1
DREQ=2000
for mode in 0 1; do
  read -r short nshort < <(run "$mode" "$SHORT") || exit 1
  read -r long nlong < <(run "$mode" "$LONG") || exit 1
  [[ -n $short && -n $long ]] || exit 1
  IFS=: read -r s_ir s_d1 s_ll s_i1 <<<"$short"
  IFS=: read -r l_ir l_d1 l_ll l_i1 <<<"$long"
  per[$mode]=$(((l_ir - s_ir) / (nlong - nshort)))
  if [[ $CACHESIM == 1 ]]; then
    d1[$mode]=$(awk -v a="$s_d1" -v b="$l_d1" -v n=$((nlong - nshort)) 'BEGIN { printf "%.1f", (b - a) / n }')
    ll[$mode]=$(awk -v a="$s_ll" -v b="$l_ll" -v n=$((nlong - nshort)) 'BEGIN { printf "%.1f", (b - a) / n }')
    i1[$mode]=$(awk -v a="$s_i1" -v b="$l_i1" -v n=$((nlong - nshort)) 'BEGIN { printf "%.1f", (b - a) / n }')
  fi
  [[ $mode == 1 ]] && DREQ=$((nlong - nshort))
  [[ $mode == 0 ]] && PREQ=$((nlong - nshort))
done
echo "nginx user-space instructions per request: plain ${per[0]}, under the shim ${per[1]}," \
  "added by the shim $((per[1] - per[0]))"
if [[ $CACHESIM == 1 ]]; then
  echo "first-level data cache misses per request: plain ${d1[0]}, under the shim ${d1[1]};" \
    "last-level data misses: plain ${ll[0]}, under the shim ${ll[1]} ($CONNS connections)"
  echo "first-level instruction cache misses per request: plain ${i1[0]}, under the shim ${i1[1]}"
  # By library: each object's own instructions and misses (what its code
  # ran and missed; a call's inclusive cost is skipped), long run - short
  # run, per request.
  echo "by library, per request: instructions / first-level instruction misses / data misses"
  for mode in 0 1; do
    m=$([[ $mode == 1 ]] && echo shim || echo plain)
    python3 "$(dirname "$0")/hot_code.py" --by-library "$DIR/$m-$SHORT.out" "$DIR/$m-$LONG.out" \
      "$([[ $mode == 1 ]] && echo "$DREQ" || echo "$PREQ")" "$m"
  done
fi

# Per function, inclusive: the long run's count minus the short run's, per
# request, for the functions of libdynobs.so (and the libc functions it
# calls, which nginx calls too: read those from the difference with the
# plain run).
if [[ $PROFILE -gt 0 ]]; then
  # (callgrind_annotate splits a function by the files its lines come
  # from when run where those files are found, inlined helpers apart: run
  # from /, each function is one line. The tree's root is taken off the
  # names, which some outputs give in full.)
  SRC=$(realpath "$(dirname "${BASH_SOURCE[0]}")/..")
  incl() {
    (cd / && callgrind_annotate --inclusive=yes --auto=no --threshold=100 "$1" 2>/dev/null) |
      awk -v src="$SRC/" '/^ *[0-9,]+ \(/ && /\[.*libdynobs/ { n = $1; gsub(",", "", n);
        sub(/^ *[0-9,]+ +\( *[0-9.]+%\) +/, ""); if (index($0, src) == 1) $0 = substr($0, length(src) + 1);
        print $0 "\t" n }' | sort -t $'\t' -k1,1
  }
  echo "libdynobs.so under nginx, inclusive instructions per request (callgrind_annotate --inclusive=yes):"
  join -t $'\t' <(incl "$DIR/shim-$SHORT.out") <(incl "$DIR/shim-$LONG.out") |
    awk -F '\t' -v n="$DREQ" '{ d = ($3 - $2) / n; if (d >= 1) printf "%8.0f  %s\n", d, $1 }' |
    sort -rn | head -n "$PROFILE"
fi
