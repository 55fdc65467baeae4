#!/usr/bin/env bash
# Runs scripts/demo.sh as a new user would and checks what it prints: two
# complete traces across curl, both services and PostgreSQL, the log
# record inside the business span, and metric lines.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$(bash "$here/scripts/demo.sh" </dev/null 2>&1) || { echo "$out"; echo "demo.sh failed"; exit 1; }
echo "$out"
fail=0
expect() { # count, pattern
  local n
  n=$(grep -cE -- "$2" <<<"$out" || true)
  if [[ $n -ne $1 ]]; then
    echo "demo check: expected $1 line(s) matching '$2', found $n"
    fail=1
  fi
}
expect 2 '^trace [0-9a-f]{32} \(6 spans\)$'
expect 2 '^  shopper: client GET '
expect 2 '^    frontend: server GET .*url.path="/checkout"'
expect 2 '^      frontend: internal checkout '
expect 1 '^        log INFO: checkout of widget: 12 in stock$'
expect 2 '^        frontend: client GET .*url.full="http://127.0.0.1:[0-9]+/stock/'
expect 2 '^          inventory: server GET /stock/\{item\} '
expect 2 '^            inventory: client SELECT stock .*db.query.text="SELECT quantity FROM stock WHERE item = \?"'
expect 1 '^demo_orders_total\{service_name="frontend",item="widget",result="ok"\} 1$'
# One series for every item: the demo's rules give /stock/{item} one route.
expect 1 '^http_server_request_duration_seconds_count\{service_name="inventory",.*http_route="/stock/\{item\}"'
((fail == 0)) && echo "demo check passed"
exit $fail
