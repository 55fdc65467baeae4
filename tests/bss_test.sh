#!/usr/bin/env bash
# The library's .bss stays small: every process that preloads it (in
# host-wide mode, every process of the host) pays at load for the
# anonymous mapping of whatever .bss does not fit the last page of its
# initialised data (BENCHMARKS.md, process start). A table sized for busy
# processes is mapped at its first use instead (preload/lazymap.h).
#
#   bash tests/bss_test.sh LIBDYNOBS
#
# Fails on a .bss object over OBJ_MAX bytes or a .bss over TOTAL_MAX.
set -euo pipefail
lib=$1
OBJ_MAX=8192
TOTAL_MAX=16384
command -v nm >/dev/null && command -v size >/dev/null || { echo "SKIP: no binutils"; exit 77; }
total=$(size -A "$lib" | awk '$1 == ".bss" {print $2}')
bad=0
while read -r _ size type name; do
  n=$((16#$size))
  if ((n > OBJ_MAX)); then
    echo "FAIL: .bss object $name is $n bytes (over $OBJ_MAX): map it at first use (preload/lazymap.h)"
    bad=1
  fi
done < <(nm -S "$lib" | awk '$3 == "b" || $3 == "B"')
if ((total > TOTAL_MAX)); then
  echo "FAIL: .bss is $total bytes (over $TOTAL_MAX)"
  bad=1
fi
echo ".bss: $total bytes"
exit $bad
