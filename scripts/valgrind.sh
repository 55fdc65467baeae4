#!/usr/bin/env bash
# valgrind memcheck on dynobs-exporter: the exporter integration tests
# that exercise its main paths (OTLP delivery with retries, Prometheus,
# reaping of killed processes, garbage and truncated segments, logs) run
# with the exporter under memcheck; any error, and any definitely lost
# block at its exit, fails. Uses the default build (build/).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
. scripts/deps.sh
dynobs_install_deps valgrind
logs=$(mktemp -d /tmp/dynobs-valgrind-XXXXXX)
trap 'rm -rf "$logs"' EXIT
export DYNOBS_EXPORTER_WRAPPER="valgrind --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite --track-origins=yes --log-file=$logs/vg.%p"
python3 tests/integration/test_exporter.py build . \
  test_spans_and_metrics_reach_the_receiver test_retry_after_503_delivers_everything_once \
  test_400_is_dropped_and_counted test_sigkilled_process_spans_arrive_and_segment_is_reaped \
  test_garbage_segment_is_skipped_and_counted test_segment_truncated_while_mapped_is_dropped_not_fatal \
  test_logs_carry_their_span test_gzip_headers_and_signal_endpoint
n=$(ls "$logs" | wc -l)
if [[ $n -eq 0 ]]; then
  echo "valgrind wrote no logs"
  exit 1
fi
bad=0
for f in "$logs"/vg.*; do
  # Every run must have reached its exit (the summary is written then)
  # with no error; definite leaks count as errors.
  if ! grep -q "ERROR SUMMARY: 0 errors" "$f"; then
    echo "== $f"
    cat "$f"
    bad=1
  fi
done
((bad == 0)) && echo "valgrind memcheck: $n exporter runs, no errors, no definite leaks"
exit $bad
