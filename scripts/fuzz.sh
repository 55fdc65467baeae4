#!/usr/bin/env bash
# Bounded fuzzing of the code that reads untrusted bytes (trace context
# headers, HTTP/1 streams of clients and servers, records in segments, SQL
# text, the OTLP exporter's header parsers, rules files and compiled rules
# tables): builds the libFuzzer targets
# of tests/fuzz/ with clang under AddressSanitizer+UBSan (build-fuzz/),
# then runs each for SECONDS
# (default 20), starting from the committed corpus tests/fuzz/corpus/<target>/
# (which holds a regression input for every problem found so far; new
# inputs go to a temporary directory). Exits non-zero when any target
# finds a crash, a hang, a leak or a violated property. libFuzzer writes
# the input that did it (crash-*, leak-*, timeout-*, oom-*) into a
# temporary directory, never the working tree; the script prints its path
# and keeps that directory, which is removed only when it stays empty.
#
#   scripts/fuzz.sh [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
secs=${1:-20}
. scripts/deps.sh
dynobs_install_deps clang libclang-rt-14-dev cmake pkg-config libyaml-dev

CC=clang cmake -S . -B build-fuzz -DDYNOBS_FUZZ=ON -DDYNOBS_BUILD_TESTS=OFF \
  -DDYNOBS_BUILD_BENCH=OFF -DDYNOBS_BUILD_EXPORTER=OFF >/dev/null
cmake --build build-fuzz -j "$(nproc 2>/dev/null || echo 2)" >/dev/null
work=$(mktemp -d /tmp/dynobs-fuzz-XXXXXX)
artifacts=$(mktemp -d /tmp/dynobs-fuzz-artifacts-XXXXXX)
trap 'rm -rf "$work"; rmdir "$artifacts" 2>/dev/null || true' EXIT
fail=0
for t in tracecontext http1 h2 hpack records sql segment otlp_headers retry_after rules_compile \
    rules_table ebpf; do
  mkdir -p "$work/$t"
  if build-fuzz/tests/fuzz/fuzz_$t -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
      -artifact_prefix="$artifacts/$t-" "$work/$t" "tests/fuzz/corpus/$t" >"$work/$t.log" 2>&1; then
    echo "fuzz_$t: $(grep -o 'Done [0-9]* runs' "$work/$t.log" | tail -1) in ${secs}s, nothing found"
  else
    fail=1
    echo "fuzz_$t FOUND A PROBLEM:"
    tail -40 "$work/$t.log"
    found=0
    for f in "$artifacts/$t"-*; do
      [[ -e $f ]] || continue
      found=1
      echo "fuzz_$t: artifact written to $f"
    done
    if ((found)); then
      echo "(fix it, then add the input to tests/fuzz/corpus/$t/)"
    else
      echo "fuzz_$t: libFuzzer wrote no artifact; the log above is all there is"
    fi
  fi
done
exit $fail
