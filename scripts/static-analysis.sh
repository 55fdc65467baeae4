#!/usr/bin/env bash
# Static analysis: cppcheck over every C file of the project (library,
# exporter, tools, tests, benchmarks, fuzzers, the user side of ebpf/; the
# kernel side is checked by clang and the BPF verifier). Any finding of the
# warning or portability classes fails; a deliberate one is suppressed
# inline with `// cppcheck-suppress <id>` and a comment saying why.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
. scripts/deps.sh
dynobs_install_deps cppcheck
cppcheck -q --std=c11 --enable=warning,portability --inline-suppr --error-exitcode=1 \
  -I include -I common -I bench -I ebpf -D__GNUC__ -D_GNU_SOURCE -D__x86_64__ -D__linux__ \
  -DSCENARIO_BIN=\"scenario\" -DDYNOBS_LIB=\"lib\" -DONEBYTE_BIN=\"onebyte\" \
  --suppress=missingIncludeSystem --include=tests/unit/cppcheck-criterion.h \
  common preload exporter tools noop tests/progs tests/fuzz tests/unit bench examples \
  $(ls ebpf/*.c | grep -v '\.bpf\.c$')
echo "cppcheck: no findings"
