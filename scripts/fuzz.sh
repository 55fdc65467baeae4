#!/usr/bin/env bash
# Bounded fuzzing of the code that reads untrusted bytes (trace context
# headers, HTTP/1 streams of clients and servers, records in segments, SQL
# text, the OTLP exporter's header parsers): builds the libFuzzer targets
# of tests/fuzz/ with clang under AddressSanitizer+UBSan (build-fuzz/),
# then runs each for SECONDS
# (default 20), starting from the committed corpus tests/fuzz/corpus/<target>/
# (which holds a regression input for every problem found so far; new
# inputs go to a temporary directory). Exits non-zero when any target
# finds a crash, a hang, a leak or a violated property; the input is then
# copied to build-fuzz/artifacts/.
#
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
secs=${1:-20}
. scripts/deps.sh
dynobs_install_deps clang libclang-rt-14-dev cmake

CC=clang cmake -S . -B build-fuzz -DDYNOBS_FUZZ=ON -DDYNOBS_BUILD_TESTS=OFF \
  -DDYNOBS_BUILD_BENCH=OFF -DDYNOBS_BUILD_EXPORTER=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
work=$(mktemp -d /tmp/dynobs-fuzz-XXXXXX)
trap 'rm -rf "$work"' EXIT
fail=0
for t in tracecontext http1 records sql segment otlp_headers retry_after; do
  mkdir -p "$work/$t"
  if build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
      -artifact_prefix="$work/$t-" "$work/$t" "tests/fuzz/corpus/$t" >"$work/$t.log" 2>&1; then
    echo "fuzz_$t: $(grep -o 'Done [0-9]* runs' "$work/$t.log" | tail -1) in ${secs}s, nothing found"
  else
    fail=1
    echo "fuzz_$t FOUND A PROBLEM:"
    tail -40 "$work/$t.log"
    mkdir -p build-fuzz/artifacts
    cp "$work/$t"-* build-fuzz/artifacts/ 2>/dev/null || true
    echo "(input kept in build-fuzz/artifacts/; fix it, then add it to tests/fuzz/corpus/$t/)"
  fi
done
exit $fail
