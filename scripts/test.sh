#!/usr/bin/env bash
# The one test command: installs what is missing (Debian 12, as root),
# then static analysis, the whole suite, the README's demo, the suite
# again under AddressSanitizer + UndefinedBehaviorSanitizer, valgrind on
# the exporter, a memory soak, ThreadSanitizer and bounded fuzzing.
# Exits non-zero on any failure.
#
#   scripts/test.sh            everything
#   scripts/test.sh --quick    static analysis, the suite and the demo
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
jobs=$(nproc 2>/dev/null || echo 2)

# Build and test dependencies, by Debian package name.
. scripts/deps.sh
dynobs_install_deps build-essential cmake pkg-config libyaml-dev libcriterion-dev \
  libmicrohttpd-dev libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler zlib1g-dev \
  protobuf-compiler prometheus python3 curl nginx-light wget wrk openssl \
  postgresql-15 libpq-dev python3-psycopg2 python3-pytest util-linux libunwind-dev \
  ruby php-cli php-curl php-fpm openjdk-17-jdk-headless libhttp-daemon-perl python3-aiohttp \
  python3-uvicorn python3-dev python3-hpack python3-h2 python3-grpcio nghttp2-server \
  nghttp2-client clang bpftool libbpf-dev golang-go python3-yaml lintian file chromium chromium-driver python3-selenium

# CTest reports a test that exited with 77 (its SKIP_RETURN_CODE) as
# "Skipped" but counts it among the passed in its summary, and a test that
# passed may have skipped a part of itself: the integration tests and the
# preload tests print "SKIP: what (why)" lines, pytest -rs "SKIPPED" lines.
# Both are counted and listed after each run, so that nobody reads a skip
# as a pass.
report_skips() { # name, ctest's output, build dir
  local log=$3/Testing/Temporary/LastTest.log whole parts
  whole=$(grep -c '\*\*\*Skipped' "$2" || true)
  parts=$(grep -E '^(SKIP: |SKIPPED )' "$log" | grep -vc '^SKIP: all of ' || true)
  echo "=== $1: $whole test(s) skipped, $parts part(s) of tests skipped"
  grep '\*\*\*Skipped' "$2" | sed 's/^/    /' || true
  grep -E '^(SKIP: |SKIPPED )' "$log" | grep -v '^SKIP: all of ' | sed 's/^/    /' || true
}

run_suite() { # name, build dir, extra cmake args...
  local name=$1 dir=$2
  shift 2
  echo "=== $name: configure and build ($dir)"
  cmake -S . -B "$dir" -DDYNOBS_WERROR=ON -DDYNOBS_BUILD_TESTS=ON "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== $name: tests"
  (cd "$dir" && ctest --output-on-failure -j "$jobs") | tee "$dir/ctest-output.txt"
  report_skips "$name" "$dir/ctest-output.txt" "$dir"
}

echo "=== static analysis (scripts/static-analysis.sh)"
bash scripts/static-analysis.sh
run_suite "default build" build -DDYNOBS_BUILD_BENCH=ON
echo "=== the README's demo (scripts/demo.sh), output checked"
bash tests/demo_check.sh
if [[ ${1:-} != --quick ]]; then
  run_suite "ASan+UBSan build" build-asan -DCMAKE_BUILD_TYPE=Debug \
    -DDYNOBS_SANITIZE=address,undefined -DDYNOBS_BUILD_BENCH=OFF
  echo "=== valgrind memcheck on the exporter (scripts/valgrind.sh)"
  bash scripts/valgrind.sh
  echo "=== exporter memory soak, shortened to 60 s (scripts/soak.py)"
  python3 scripts/soak.py build 60
  echo "=== ThreadSanitizer (scripts/tsan.sh)"
  bash scripts/tsan.sh
  echo "=== bounded fuzzing (scripts/fuzz.sh)"
  bash scripts/fuzz.sh 20
fi
echo "=== all test suites passed"
