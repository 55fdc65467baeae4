#!/usr/bin/env bash
# cmake --install puts the library, the header and the pkg-config files in
# place, and a program built with them gets the real API when preloaded.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d /tmp/dynobs-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
pc=$(find "$tmp/prefix" -name dynobs.pc -printf '%h')
test -f "$tmp/prefix/include/dynobs/dynobs.h"
test -f "$tmp/prefix/include/dynobs/version.h"
test -f "$pc/dynobs-noop.pc"
export PKG_CONFIG_PATH=$pc
cc -o "$tmp/hello" "$src/examples/hello.c" $(pkg-config --cflags --libs dynobs-noop) -pthread
libdir=$(pkg-config --variable=libdir dynobs)
out=$(LD_LIBRARY_PATH=$libdir "$tmp/hello")
grep -q "recording: no" <<<"$out" || { echo "without preload: $out"; exit 1; }
out=$(DYNOBS_SHM_DIR=$tmp/shm LD_LIBRARY_PATH=$libdir LD_PRELOAD=$libdir/libdynobs.so "$tmp/hello")
grep -q "recording: yes" <<<"$out" || { echo "with preload: $out"; exit 1; }
ls "$tmp"/shm/*.seg >/dev/null
# Linking the real library directly works too.
cc -o "$tmp/hello2" "$src/examples/hello.c" $(pkg-config --cflags --libs dynobs) -pthread
out=$(DYNOBS_SHM_DIR=$tmp/shm2 LD_LIBRARY_PATH=$libdir "$tmp/hello2")
grep -q "recording: yes" <<<"$out" || { echo "linked: $out"; exit 1; }
# Only the API and the interposed calls are exported.
extra=$(nm -D --defined-only "$libdir/libdynobs.so" | awk '{print $3}' | grep -v -E '^(dynobs_[a-z_]+|close|dup|dup2|dup3|connect|accept|accept4|sendfile|sendfile64|write|writev|send|sendto|sendmsg|read|readv|recv|recvfrom|recvmsg|dlopen|dlmopen|epoll_wait|epoll_pwait|epoll_pwait2|readlink|__readlink_chk|__read_chk|__recv_chk|__recvfrom_chk|setuid|setgid|seteuid|setegid|setreuid|setregid|setresuid|setresgid|chroot|syslog|vsyslog|__syslog_chk|__vsyslog_chk|fprintf|vfprintf|__fprintf_chk|__vfprintf_chk|fputs|fwrite|fputc|putc|perror|sigaction|signal|SSL_write|SSL_write_ex|SSL_read|SSL_read_ex|SSL_free|curl_easy_setopt|curl_easy_perform|curl_easy_cleanup|curl_multi_add_handle|curl_multi_remove_handle|curl_multi_perform|curl_multi_socket_action|curl_multi_info_read|PQ[A-Za-z]+)$' || true)
[[ -z $extra ]] || { echo "unexpected exported symbols: $extra"; exit 1; }
# The launcher, installed beside the exporter, finds the installed library.
test -x "$tmp/prefix/bin/dynobs-run" && test -x "$tmp/prefix/bin/dynobs-exporter"
out=$(DYNOBS_SHM_DIR=$tmp/shm3 LD_LIBRARY_PATH=$libdir "$tmp/prefix/bin/dynobs-run" --no-exporter -- "$tmp/hello")
grep -q "recording: yes" <<<"$out" || { echo "dynobs-run from the prefix: $out"; exit 1; }
# The Python package installs with no network (when this python3 has pip).
if python3 -m pip --version >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --target "$tmp/py" "$src/python" 2>/dev/null
  out=$(cd "$tmp" && PYTHONPATH=$tmp/py DYNOBS_LIBRARY=$libdir/libdynobs.so DYNOBS_SHM_DIR=$tmp/shm4 \
    python3 -c 'import dynobs; print(dynobs.enabled(), dynobs.__file__, dynobs.__version__)')
  # The installed package carries the version of the installed library.
  want="True $tmp/py/dynobs/__init__.py $(pkg-config --modversion dynobs)"
  [[ $out == "$want" ]] || { echo "pip-installed package: $out, expected $want"; exit 1; }
else
  echo "SKIP: pip install ./python (python3 has no pip here)"
fi
echo "install test passed"
