#!/usr/bin/env bash
# What each part of a served request costs nginx under wrk, found by
# leaving it out (BENCHMARKS.md, "Seventh round"): for each part, a copy
# of the tree (git archive HEAD) with that part's call removed is built,
# and bench/nginx_wrk.sh compares nginx under the copy's library with
# nginx under the whole one in the same run (VERSUS=). A ratio of the
# worker's CPU per request below 1 is what the part costs.
#
#   bash bench/nginx_ablation.sh [BUILD_DIR] [PART...]     (default: build, every part)
#
# The copies are for measuring only: each drops something a user needs.
# Parts:
#   http     the HTTP/1 server's reading of requests (no span, no metric:
#            what is left is the interposition and the connection layer)
#   record   the span's record in the ring (the span is still made)
#   metric   http.server.request.duration (labels, histogram, window)
#   window   the histogram's window slices alone (metric_window.h)
#   context  binding the request as the thread's context (context.c)
# Environment: ROUNDS (12 pairs per part; the noise of one pair is a few
# per cent on this VM, so a part under 1% is not told from none), and
# what bench/nginx_wrk.sh takes.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BUILD=$(realpath "${1:-build}") || exit 2
shift $(($# > 0 ? 1 : 0))
PARTS=("$@")
[[ ${#PARTS[@]} -gt 0 ]] || PARTS=(http record metric window context)
[[ -f $BUILD/libdynobs.so ]] || { echo "missing: $BUILD/libdynobs.so (build first)" >&2; exit 77; }
export ROUNDS=${ROUNDS:-12}

WORK=$(mktemp -d /tmp/dynobs-ablation-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

# cut_part PART DIR: removes the part's call from the tree in DIR. Each edit
# names the text it replaces exactly, so a change of the code that moves
# it stops the script instead of measuring something else.
cut_part() {
  /usr/bin/python3 - "$1" "$2" <<'PY'
import sys
part, d = sys.argv[1], sys.argv[2]
edits = {
    "http": [("preload/h1server.c",
              "void dynobs__h1s_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)\n{\n",
              "void dynobs__h1s_in(struct dynobs_conn *c, const struct iovec *iov, int iovcnt, size_t n)\n{\n"
              "    if (c)\n        return;\n")],
    "record": [("preload/span.c", "        rc = emit(s, self, rf, t);", "        (void)rf;\n        (void)t;")],
    "metric": [("preload/h1server.c", "    if (seg) {\n        now = dynobs__clock_now(&t->clk);",
                "    if (seg && !seg) {\n        now = dynobs__clock_now(&t->clk);")],
    "window": [("common/metrics.h", "    if (w)\n        dynobs__window_add(w, 0, v);", "    (void)w;")],
    "context": [("preload/h1server.c", "    dynobs__serving_begin(t, s, c->blocking, &carry, &x->serving);",
                 "    (void)carry;"),
                ("preload/h1server.c", "    dynobs__serving_end(&x->serving, t);\n", "")],
}
if part not in edits:
    sys.exit("unknown part: %s (http, record, metric, window, context)" % part)
for path, old, new in edits[part]:
    p = d + "/" + path
    s = open(p).read()
    if s.count(old) != 1:
        sys.exit("%s: the text to cut for '%s' is not found once; update this script" % (path, part))
    open(p, "w").write(s.replace(old, new))
PY
}

echo "ablation of $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo ?), against $BUILD/libdynobs.so," \
  "$ROUNDS pairs of rounds per part"
RESULTS=()
for part in "${PARTS[@]}"; do
  d=$WORK/$part
  mkdir -p "$d"
  git -C "$ROOT" archive HEAD | tar -x -C "$d" || exit 1
  cut_part "$part" "$d" || exit 1
  if ! { cmake -S "$d" -B "$d/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$d/cmake.log" 2>&1 &&
         cmake --build "$d/build" -j2 --target dynobs >>"$d/cmake.log" 2>&1; }; then
    echo "$part: the copy does not build; see below" >&2
    tail -20 "$d/cmake.log" >&2
    exit 1
  fi
  out=$(VERSUS=$BUILD/libdynobs.so EXPORTER=$BUILD/exporter/dynobs-exporter \
    bash "$HERE/nginx_wrk.sh" "$d/build") || { echo "$out" >&2; exit 1; }
  rps=$(awk '/^median req\/s ratio/ { print $7, "(" $9 ")" }' <<<"$out" | tr -d ';')
  cpu=$(awk '/^median worker CPU per request ratio/ { print $7, "(" $9 ")" }' <<<"$out" | tr -d ';')
  RESULTS+=("$(printf '%-8s %-24s %-24s' "$part" "$rps" "$cpu")")
  echo "$part done: req/s $rps, worker CPU per request $cpu"
done
echo
printf '%-8s %-24s %-24s\n' part "req/s ratio (quartiles)" "CPU/request (quartiles)"
printf '%s\n' "${RESULTS[@]}"
echo "(ratios: without the part / whole; a CPU ratio of 0.97 means the part costs 3% of the worker's time)"
