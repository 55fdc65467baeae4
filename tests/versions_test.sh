#!/usr/bin/env bash
# What the loader checks of the library at every process start, whether
# the process ever records or not (BENCHMARKS.md, process start): the
# libraries it needs and the symbol versions it needs of them. Where the
# build binds to glibc's base versions (common/glibc_symver.h: x86-64
# glibc, no sanitizer; CMake's DYNOBS_SYMVER), that is libc alone, at
# GLIBC_2.2.5, GLIBC_2.3.2 (__register_atfork), GLIBC_2.14 (memcpy) and
# GLIBC_2.16 (getauxval), where it was ld.so and libc at twelve versions.
#
#   bash tests/versions_test.sh LIBDYNOBS
#
# Fails on another needed library or another version: a libc function
# newer than its base version called directly (common/glibc_symver.h
# says the ways around it), or a thread-local variable reached through
# __tls_get_addr (give it DYNOBS_TLS).
set -euo pipefail
lib=$1
command -v readelf >/dev/null || { echo "SKIP: no binutils (readelf)"; exit 77; }
bad=0
needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort | tr '\n' ' ')
echo "needed: $needed"
for n in $needed; do
  if [[ $n != libc.so.6 ]]; then
    echo "FAIL: the library needs $n (allowed: libc.so.6)"
    bad=1
  fi
done
# readelf -V, "Version needs": "000000: Version: 1  File: libc.so.6 ..."
# lines, each followed by "0x0010:   Name: GLIBC_2.16 ..." lines
versions=$(readelf -V "$lib" | awk '/Version needs section/ {v = 1} v && /File:/ {f = $5}
  v && /Name:/ {print f ":" $3}' | sort | tr '\n' ' ')
echo "versions: $versions"
[[ -n $versions ]] || { echo "FAIL: no version needs read from $lib"; bad=1; }
for v in $versions; do
  case $v in
    libc.so.6:GLIBC_2.2.5 | libc.so.6:GLIBC_2.3.2 | libc.so.6:GLIBC_2.14 | libc.so.6:GLIBC_2.16) ;;
    *)
      echo "FAIL: the library needs $v; the symbols at ${v#*:} (of any library):"
      readelf --dyn-syms -W "$lib" | awk -v v="${v#*:}" '$7 == "UND" && index($8, "@" v) && substr($8, length($8) - length(v)) == "@" v'
      bad=1
      ;;
  esac
done
exit $bad
