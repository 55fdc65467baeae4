#!/usr/bin/env bash
# The cache lines one served request touches in nginx, by who touches them
# (the shim's code or the rest) and where they are (BENCHMARKS.md, "Fifth
# round"): repeatable, as it counts addresses rather than time.
#
#   bash bench/nginx_lines.sh [BUILD_DIR]      (default: build)
#
# nginx (master_process off) runs under valgrind's lackey, which prints
# every load and store, with BUILD_DIR/libdynobs.so preloaded; a Python
# client sends 150 keep-alive requests on one connection. A request is
# the span from one call of the shim's recv() to the next; for request
# 120 the distinct 64-byte lines (and the 4 KiB pages they are on) are
# counted per mapping of the process (/proc/PID/maps), apart for the
# accesses made by libdynobs.so's code and the others. Then the accesses from request 110 to 140 go through a
# simulated 32 KiB first-level data cache, 8-way (this machine's) and
# 64-way (as large, without conflicts), warmed by everything before: its
# misses per request, and which of them the shim's code made.
# OFFSETS=1: also the offsets of the bytes the shim's code accessed in
# request 120 within each anonymous mapping it touched over 15 lines of
# (the connection's state: BENCHMARKS.md, "Twenty-third round").
set -uo pipefail
BUILD=$(realpath "${1:-build}") || exit 2
LIB=$BUILD/libdynobs.so
for f in "$LIB" /usr/sbin/nginx /usr/bin/valgrind /usr/bin/python3; do
  [[ -e $f ]] || { echo "missing: $f" >&2; exit 77; }
done
while read -r v; do unset "$v"; done < <(compgen -e | grep -E '^(DYNOBS_|OTEL_)')
unset LD_PRELOAD
D=$(mktemp -d /tmp/dynobs-nginx-lines-XXXXXX)
chmod 755 "$D"
VP=
trap '[[ -n $VP ]] && kill "$VP" 2>/dev/null; rm -rf "$D"' EXIT
# shellcheck source=bench/nginx_site.sh
. "$(dirname "$0")/nginx_site.sh"
mkdir -p "$D/shm"
PORT=$(free_port)
nginx_site "$D" "$PORT" single
env LD_PRELOAD="$LIB" DYNOBS_SHM_DIR="$D/shm" DYNOBS_RING_BYTES=64M \
  valgrind --tool=lackey --trace-mem=yes --log-file="$D/trace.txt" \
  /usr/sbin/nginx -c "$D/nginx.conf" -p "$D" >/dev/null 2>&1 &
VP=$!
for _ in $(seq 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  sleep 0.1
done
/usr/bin/python3 - "$PORT" <<'PY' || exit 1
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
for i in range(150):
    c.request("GET", "/index.html", headers={"User-Agent": "bench"})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
cat "/proc/$VP/maps" >"$D/maps.txt"
kill "$VP"
wait "$VP" 2>/dev/null
VP=
/usr/bin/python3 - "$D" "$(realpath "$LIB")" <<'PY'
import bisect, collections, subprocess, sys
d, lib = sys.argv[1], sys.argv[2]
maps = []
for line in open(d + "/maps.txt"):
    p = line.split()
    lo, hi = (int(x, 16) for x in p[0].split("-"))
    name = p[5].split("/")[-1] if len(p) > 5 else ""
    maps.append((lo, hi, name, p[1]))
maps.sort()
starts = [m[0] for m in maps]
def where(a):
    i = bisect.bisect_right(starts, a) - 1
    if i < 0 or a >= maps[i][1]:
        return "?"
    lo, hi, name, perm = maps[i]
    if name.startswith("["):
        return name
    if name.endswith(".seg"):
        return "the segment"
    return name or "anonymous %x" % lo
base = min(m[0] for m in maps if m[2] and lib.endswith(m[2]))
text = [m for m in maps if m[2] and lib.endswith(m[2]) and "x" in m[3]][0]
recv = next(int(l.split()[0], 16) for l in subprocess.run(["nm", "-D", lib], capture_output=True,
            text=True).stdout.splitlines() if l.split()[-1] == "recv" and l.split()[1] == "T")
RECV = base + recv
def accesses():
    n, shim = 0, False
    for line in open(d + "/trace.txt"):
        if line[0] == "I":
            pc = int(line[3:].split(",")[0], 16)
            if pc == RECV:
                n += 1
            shim = text[0] <= pc < text[1]
        elif line[:2] in (" L", " S", " M"):
            yield n, shim, int(line[3:].split(",")[0], 16)
lines = {True: collections.defaultdict(set), False: collections.defaultdict(set)}
for n, shim, a in accesses():
    if n == 120:
        lines[shim][where(a)].add(a >> 6)
for shim, who in ((True, "libdynobs.so's code"), (False, "the rest (nginx, libc, the kernel's vDSO)")):
    total = sum(len(v) for v in lines[shim].values())
    print("request 120: %d distinct cache lines touched by %s (lines, pages, mapping)"
          % (total, who))
    for r, v in sorted(lines[shim].items(), key=lambda x: -len(x[1]))[:8]:
        print("  %4d %3d  %s" % (len(v), len({ln >> 6 for ln in v}), r))
import os
if os.environ.get("OFFSETS") == "1":
    # the bytes the shim's code read or wrote in its mappings of many lines
    # (the connection's state), as offsets from the mapping's start
    acc = collections.defaultdict(set)
    for n, shim, a in accesses():
        if n == 120 and shim:
            acc[where(a)].add(a)
    for r, v in sorted(acc.items()):
        if r.startswith("anonymous") and len({x >> 6 for x in v}) > 15:
            lo = max(m[0] for m in maps if m[0] <= min(v))
            print("offsets in %s: %s" % (r, " ".join("%x" % (x - lo) for x in sorted(v))))
for ways in (8, 64):
    sets = 32768 // 64 // ways
    cache = [collections.OrderedDict() for _ in range(sets)]
    miss = shim_miss = 0
    for n, shim, a in accesses():
        ln = a >> 6
        c = cache[ln % sets]
        if ln in c:
            c.move_to_end(ln)
            continue
        c[ln] = 1
        if len(c) > ways:
            c.popitem(last=False)
        if 110 <= n < 140:
            miss += 1
            shim_miss += shim
    print("32 KiB first-level data cache, %d-way: %.1f misses per request (%.1f by the shim's code)"
          % (ways, miss / 30, shim_miss / 30))
PY
