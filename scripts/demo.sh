#!/usr/bin/env bash
# The first run: installs what is missing (Debian 12, as root), builds
# dynobs, starts PostgreSQL and dynobs-exporter (console output and
# Prometheus /metrics) in a temporary directory, runs two small Python
# services under dynobs-run (examples/demo/: "frontend" calls "inventory",
# which queries PostgreSQL), sends them two requests with curl (itself
# under dynobs-run), and prints the resulting traces as trees, with their
# log records and a few metric lines. Everything is stopped at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
. scripts/deps.sh
dynobs_install_deps build-essential cmake pkg-config libyaml-dev \
  libmicrohttpd-dev libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler zlib1g-dev \
  curl python3 python3-psycopg2 postgresql-15 util-linux libunwind-dev

echo "=== building dynobs (build/)"
if [[ -f build/CMakeCache.txt ]]; then
  cmake -S . -B build >/dev/null
else
  cmake -S . -B build -DDYNOBS_BUILD_TESTS=OFF -DDYNOBS_BUILD_BENCH=OFF >/dev/null
fi
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

work=$(mktemp -d /tmp/dynobs-demo-XXXXXX)
chmod 755 "$work"
shm=$work/shm
pgbin=/usr/lib/postgresql/15/bin
pids=()
as_pg() { if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  [[ -f $work/pg/data/postmaster.pid ]] &&
    as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -m fast stop >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_http() { # url, what
  for _ in $(seq 1 100); do
    curl -s -o /dev/null "$1" && return 0
    sleep 0.1
  done
  echo "demo: $2 did not come up" >&2
  exit 1
}

echo "=== starting PostgreSQL 15 in $work/pg"
pgport=$(free_port)
mkdir "$work/pg"
[[ $(id -u) -eq 0 ]] && chown postgres: "$work/pg"
as_pg "$pgbin/initdb" -D "$work/pg/data" --auth=trust -U postgres >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w \
  -o "-k $work/pg -p $pgport -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
psql -q -h 127.0.0.1 -p "$pgport" -U postgres -c \
  "CREATE TABLE stock (item text PRIMARY KEY, quantity int);
   INSERT INTO stock VALUES ('widget', 12), ('gadget', 0);"

echo "=== starting dynobs-exporter (console output, Prometheus /metrics)"
promport=$(free_port)
DYNOBS_SHM_DIR=$shm DYNOBS_RULES=$here/examples/demo/rules.yaml \
  OTEL_TRACES_EXPORTER=console OTEL_LOGS_EXPORTER=console OTEL_METRICS_EXPORTER=none OTEL_EXPORTER_PROMETHEUS_PORT=$promport \
  OTEL_BSP_SCHEDULE_DELAY=200 build/exporter/dynobs-exporter >"$work/console.txt" \
  2>"$work/exporter.log" &
pids+=($!)
wait_http "http://127.0.0.1:$promport/healthz" "dynobs-exporter"

echo "=== starting the services under dynobs-run"
export DYNOBS_SHM_DIR=$shm PYTHONPATH=$here/python
invport=$(free_port)
feport=$(free_port)
build/dynobs-run --service-name inventory -- /usr/bin/python3 examples/demo/inventory.py \
  "$invport" "host=127.0.0.1 port=$pgport user=postgres dbname=postgres" &
pids+=($!)
build/dynobs-run --service-name frontend -- /usr/bin/python3 examples/demo/frontend.py \
  "$feport" "http://127.0.0.1:$invport" &
pids+=($!)
wait_http "http://127.0.0.1:$invport/stock/none" "the inventory service"
wait_http "http://127.0.0.1:$feport/checkout?item=none" "the frontend service"
sleep 0.5 # the exporter's next batch carries the warm-up requests (not shown)
start_line=$(wc -l <"$work/console.txt")

echo "=== two requests: curl -> frontend -> inventory -> PostgreSQL"
for item in widget gadget; do
  echo "\$ curl http://127.0.0.1:$feport/checkout?item=$item"
  build/dynobs-run --service-name shopper -- \
    curl -sS -w '  (HTTP %{http_code})\n' "http://127.0.0.1:$feport/checkout?item=$item"
done

# Six spans per request: curl, frontend's server span, its "checkout"
# span and its call, inventory's server span and its query.
for _ in $(seq 1 100); do
  tail -n +$((start_line + 1)) "$work/console.txt" >"$work/new.txt"
  [[ $(grep -c '^span ' "$work/new.txt") -ge 12 ]] && break
  sleep 0.1
done

echo
echo "=== the traces, as dynobs-exporter sent them (console exporter)"
python3 examples/demo/trace_tree.py "$work/new.txt" --root-service shopper

echo
echo "=== a few of the metrics on http://127.0.0.1:$promport/metrics"
curl -s "http://127.0.0.1:$promport/metrics" | grep -E \
  '^(http_server_request_duration_seconds_count|http_client_request_duration_seconds_count|db_client_operation_duration_seconds_count|demo_orders_total)' |
  grep -v 'service_name="shopper"' | head -12

echo
echo "Prometheus scrapes dynobs-exporter at http://127.0.0.1:$promport/metrics (9464 unless"
echo "OTEL_EXPORTER_PROMETHEUS_PORT says otherwise); with OTEL_EXPORTER_OTLP_ENDPOINT it sends"
echo "OTLP to a Collector, Jaeger or Tempo instead of printing. See README.md."
if [[ -t 0 ]]; then
  read -r -p "Press Enter to stop the demo (services, exporter, PostgreSQL). " _
fi
