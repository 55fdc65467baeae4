#!/usr/bin/env bash
# ThreadSanitizer run (Criterion cannot start under TSan, so the unit
# tests are not the vehicle here): builds everything with
# -fsanitize=thread (build-tsan/), runs tests/tsan/stress.c (the ring,
# the metric table, context stacks and the span pool under four producer
# threads and a consumer, with exact accounting) and
# tests/tsan/route_stress.c (the route trie of common/route.c under four
# threads), then the exporter's integration tests with a TSan-built
# exporter and applications. Any report fails the run.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build-tsan -DDYNOBS_SANITIZE=thread -DDYNOBS_BUILD_TESTS=ON \
  -DDYNOBS_BUILD_BENCH=OFF >/dev/null
cmake --build build-tsan -j "$jobs" >/dev/null
logs=$(mktemp -d /tmp/dynobs-tsan-logs-XXXXXX)
trap 'rm -rf "$logs"' EXIT
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 log_path=$logs/tsan"
# (a report makes a program exit 66: its log is shown before this fails)
shown() {
  echo "ThreadSanitizer reported:"
  cat "$logs"/tsan.* 2>/dev/null
  exit 1
}
for i in 1 2 3; do
  build-tsan/tests/dynobs-tsan-stress || shown
  build-tsan/tests/dynobs-route-stress || shown
done
DYNOBS_TEST_TSAN=1 python3 tests/integration/test_exporter.py build-tsan .
if compgen -G "$logs/tsan.*" >/dev/null; then
  echo "ThreadSanitizer reported:"
  cat "$logs"/tsan.*
  exit 1
fi
echo "ThreadSanitizer: no reports"
