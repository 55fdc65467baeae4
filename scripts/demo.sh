#!/usr/bin/env bash
# A first run: builds dynobs, runs the example service with and without
# the shim, and prints what the shim recorded in shared memory.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
. scripts/deps.sh
dynobs_install_deps build-essential cmake pkg-config \
  libmicrohttpd-dev libcurl4-openssl-dev libprotobuf-c-dev protobuf-c-compiler zlib1g-dev curl

echo "=== building"
cmake -S . -B build -DDYNOBS_BUILD_TESTS=OFF -DDYNOBS_BUILD_BENCH=OFF >/dev/null
cmake --build build -j "$(nproc 2>/dev/null || echo 2)" >/dev/null

shm=$(mktemp -d /tmp/dynobs-demo-XXXXXX)
trap 'rm -rf "$shm"' EXIT

echo "=== the example without dynobs: the API calls are no-ops"
./build/dynobs-hello

echo
echo "=== the same binary with LD_PRELOAD=libdynobs.so"
DYNOBS_SHM_DIR=$shm OTEL_SERVICE_NAME=checkout \
  OTEL_RESOURCE_ATTRIBUTES=deployment.environment=demo \
  LD_PRELOAD="$here/build/libdynobs.so" ./build/dynobs-hello

echo
echo "=== what it left in its shared-memory segment ($shm)"
./build/dynobs-dump "$shm"
