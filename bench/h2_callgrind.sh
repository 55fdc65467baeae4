#!/usr/bin/env bash
# What the shim costs an HTTP/2 server and an HTTP/2 client per request,
# counted by callgrind (repeatable where timings on a shared VM are not).
#
#   bash bench/h2_callgrind.sh [BUILD_DIR]
#
# Server: nghttpd (clear text) under callgrind, plain and under the shim,
# answers h2load's requests for a small file on one connection, first
# FEW then MANY of them (one at a time: -m 1); per request = (instructions
# with MANY - with FEW) / (MANY - FEW), so start-up and connection set-up
# cancel out. Client: h2load itself under callgrind, plain and under the
# shim, against a plain nghttpd, the same way. Added by dynobs = shim -
# plain. Needs nghttp2-server and nghttp2-client (h2load), and valgrind.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUILD=$(realpath "${1:-$HERE/../build}")
LIB=$BUILD/libdynobs.so
FEW=${FEW:-200}
MANY=${MANY:-1200}
for tool in nghttpd h2load valgrind; do
  command -v "$tool" >/dev/null || { echo "$tool is missing"; exit 1; }
done

work=$(mktemp -d /tmp/dynobs-h2cg-XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir -p "$work/htdocs" "$work/shm"
head -c 680 /dev/zero | tr '\0' 'x' > "$work/htdocs/index.html"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The total instructions callgrind counted in an output file.
total() { awk '/^summary:/ {print $2}' "$1"; }

wait_port() {
  for _ in $(seq 100); do
    python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return
    sleep 0.1
  done
  echo "nothing listens on $1"; exit 1
}

# server MODE N: nghttpd under callgrind answering N requests.
server() {
  local mode=$1 n=$2 port out=$work/server-$1-$2.cg env=()
  port=$(free_port)
  [[ $mode == shim ]] && env=(LD_PRELOAD="$LIB" DYNOBS_SHM_DIR="$work/shm")
  env "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
    nghttpd -d "$work/htdocs" --address=127.0.0.1 --no-tls "$port" >/dev/null 2>&1 &
  local pid=$!
  wait_port "$port"
  h2load -n "$n" -c 1 -m 1 "http://127.0.0.1:$port/index.html" >/dev/null
  kill -TERM $pid; wait $pid 2>/dev/null || true
  total "$out"
}

# client MODE N: h2load under callgrind sending N requests to a plain nghttpd.
client() {
  local mode=$1 n=$2 port out=$work/client-$1-$2.cg env=()
  port=$(free_port)
  nghttpd -d "$work/htdocs" --address=127.0.0.1 --no-tls "$port" >/dev/null 2>&1 &
  local pid=$!
  wait_port "$port"
  [[ $mode == shim ]] && env=(LD_PRELOAD="$LIB" DYNOBS_SHM_DIR="$work/shm")
  env "${env[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" \
    h2load -n "$n" -c 1 -m 1 "http://127.0.0.1:$port/index.html" >/dev/null 2>&1
  kill $pid; wait $pid 2>/dev/null || true
  total "$out"
}

per_request() { echo $(( ($2 - $1) / (MANY - FEW) )); }

echo "| side | plain, instructions per request | under the shim | added by dynobs |"
echo "| --- | --- | --- | --- |"
for side in server client; do
  p=$(per_request "$($side plain "$FEW")" "$($side plain "$MANY")")
  s=$(per_request "$($side shim "$FEW")" "$($side shim "$MANY")")
  echo "| $side ($( [[ $side == server ]] && echo nghttpd || echo h2load )) | $p | $s | $((s - p)) |"
done
