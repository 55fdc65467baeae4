#!/usr/bin/env bash
# The library's zero-filled variables stay small, and cost no mapping of
# their own: every process that preloads it (in host-wide mode, every
# process of the host) pays at load for an anonymous mapping of whatever
# zero-filled memory reaches past the last page of its writable segment's
# file bytes (BENCHMARKS.md, process start). A table sized for busy
# processes is mapped at its first use instead (preload/lazymap.h), and
# the rest lies in the file (preload/nobss.ld).
#
#   bash tests/bss_test.sh LIBDYNOBS [NOBSS]
#
# NOBSS: 1 when the build links with preload/nobss.ld (CMake's
# DYNOBS_LD_NOBSS). Fails on a zero-filled object (in .bss or .data.zero)
# over OBJ_MAX bytes or on more than TOTAL_MAX of them in all; and, with
# NOBSS=1, on a writable segment whose memory reaches a page past its file
# bytes (an anonymous mapping at every load); and on a .data.hot section
# (preload/path.ld) that does not lie on one page.
set -euo pipefail
lib=$1
nobss=${2:-0}
OBJ_MAX=8192
TOTAL_MAX=16384
for t in objdump readelf; do
  command -v "$t" >/dev/null || { echo "SKIP: no binutils ($t)"; exit 77; }
done
bad=0
total=0
# objdump -t: address, flags, section, size, name
while read -r size name; do
  n=$((16#$size))
  total=$((total + n))
  if ((n > OBJ_MAX)); then
    echo "FAIL: zero-filled object $name is $n bytes (over $OBJ_MAX): map it at first use (preload/lazymap.h)"
    bad=1
  fi
done < <(objdump -t "$lib" | awk '$4 == ".bss" || $4 == ".data.zero" {print $5, $6}')
if ((total > TOTAL_MAX)); then
  echo "FAIL: zero-filled objects take $total bytes (over $TOTAL_MAX)"
  bad=1
fi
echo "zero-filled objects: $total bytes"
# The writable PT_LOAD: offset, address, file size, memory size.
read -r vaddr filesz memsz < <(readelf -lW "$lib" |
  awk '$1 == "LOAD" && $7 ~ /W/ {print $3, $5, $6; exit}')
end_file=$((vaddr + filesz))
end_mem=$((vaddr + memsz))
page_end=$(((end_file + 4095) / 4096 * 4096))
echo "writable segment: file bytes to $(printf '%#x' "$end_file"), memory to $(printf '%#x' "$end_mem")"
if ((end_mem > page_end)); then
  if [[ $nobss == 1 ]]; then
    echo "FAIL: $((end_mem - page_end)) bytes of zero-filled memory past the file's last page: an anonymous mapping at every load (is preload/nobss.ld still linked?)"
    bad=1
  else
    echo "note: built without preload/nobss.ld, the loader maps $((end_mem - page_end)) bytes apart"
  fi
fi
# The hot data (preload/path.ld, common/util.h's DYNOBS_HOT_*): on one
# page, which a served request touches in each stretch between its system
# calls anyway; spilled over, it is a page touch more in each.
read -r hot_addr hot_size < <(readelf -SW "$lib" |
  sed 's/^ *\[ *[0-9]*\]//' | awk '$1 == ".data.hot" {print $3, $5; exit}') || true
if [[ -n ${hot_addr:-} ]]; then
  first=$((16#$hot_addr / 4096))
  last=$(((16#$hot_addr + 16#$hot_size - 1) / 4096))
  echo ".data.hot: $((16#$hot_size)) bytes at 0x$hot_addr"
  if ((first != last)); then
    echo "FAIL: .data.hot spans $((last - first + 1)) pages: the hot words, the configuration and the low fds' entries belong on one (preload/path.ld)"
    bad=1
  fi
fi
# The variables every start writes (preload/start.ld's .data.start) on the
# page the loader writes anyway, the one .got.plt ends on, as .data.hot:
# written elsewhere, they are a page fault more in every process start.
sec() { readelf -SW "$lib" | sed 's/^ *\[ *[0-9]*\]//' | awk -v n="$1" '$1 == n {print $3, $5; exit}'; }
read -r got_addr got_size < <(sec .got.plt) || true
read -r start_addr start_size < <(sec .data.start) || true
if [[ -n ${got_addr:-} && -n ${start_addr:-} && -n ${hot_addr:-} ]]; then
  page=$(((16#$got_addr + 16#$got_size - 1) / 4096))
  echo ".data.start: $((16#$start_size)) bytes at 0x$start_addr, .got.plt ends on page $page"
  for a in $((16#$start_addr)) $((16#$start_addr + 16#$start_size - 1)) $((16#$hot_addr)) \
    $((16#$hot_addr + 16#$hot_size - 1)); do
    if ((a / 4096 != page)); then
      echo "FAIL: .data.start and .data.hot are not all on the page .got.plt ends on (preload/start.ld, preload/path.ld)"
      bad=1
      break
    fi
  done
fi
exit $bad
