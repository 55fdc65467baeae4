#!/usr/bin/env python3
"""The data a request served by nginx makes the shim touch (BENCHMARKS.md,
"Twelfth round"): the distinct 64-byte lines that libdynobs.so's code
reads or writes per request, by where they lie (the library's own
variables and constants, the stack, the segment, the rest), and the
library's lines one by one with the variables in them and the functions
that use them: what packing the shim's data would save.

    python3 bench/data_lines.py [BUILD_DIR]          (default: build)

nginx (Debian's, one process, the site of bench/nginx_site.sh) runs under
valgrind's lackey (--trace-mem=yes: every instruction and data access, in
order) with LD_PRELOAD=BUILD_DIR/libdynobs.so; a client makes REQUESTS
(default 320) requests over CONNS (default 32) keep-alive connections in
turn, as wrk does. A request is what the process does from one call of
the shim's recv to the next; the first 64 are left out (start-up, first
requests of each connection). Exits 77 when nginx or valgrind is missing.
Slow (lackey): about a minute, and a trace of about 1 GB in a temporary
directory."""
import bisect
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SKIP = 64


def main():
    build = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else "build")
    lib = os.path.realpath(os.path.join(build, "libdynobs.so"))
    requests = int(os.environ.get("REQUESTS", "320"))
    conns = int(os.environ.get("CONNS", "32"))
    for f in ("/usr/sbin/nginx", shutil.which("valgrind") or "/nonexistent", lib):
        if not os.path.exists(f):
            print("missing: %s" % f)
            return 77
    done = lackey_run(lib, requests, conns, lambda maps, trace: report(lib, maps, trace) or 0)
    return 1 if done is None else 0


def lackey_run(lib, requests, conns, analyse):
    """nginx (one process, the site of nginx_site.sh) under valgrind's
    lackey, with lib preloaded (None: plain), serving `requests` requests
    over `conns` connections (client()); then analyse(maps, trace) with the
    process's /proc/PID/maps and the trace's path, whose result is
    returned. None when nginx did not listen."""
    with tempfile.TemporaryDirectory(prefix="dynobs-lackey-") as d:
        os.chmod(d, 0o755)
        os.mkdir(os.path.join(d, "shm"))
        port = free_port()
        subprocess.run(["bash", "-c", '. "$1"/nginx_site.sh && nginx_site "$2" "$3" single', "_",
                        HERE, d, str(port)], check=True)
        trace = os.path.join(d, "trace.txt")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DYNOBS_", "OTEL_")) and k != "LD_PRELOAD"}
        if lib:
            env.update(LD_PRELOAD=lib, DYNOBS_SHM_DIR=os.path.join(d, "shm"),
                       DYNOBS_RING_BYTES="64M")
        vg = subprocess.Popen(["valgrind", "--tool=lackey", "--trace-mem=yes",
                               "--log-file=" + trace, "/usr/sbin/nginx", "-c",
                               os.path.join(d, "nginx.conf"), "-p", d], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not wait_port(port, vg):
                print("nginx did not listen under valgrind")
                return None
            client(port, requests, conns)
            with open("/proc/%d/maps" % vg.pid) as f:
                maps = f.read()
        finally:
            vg.send_signal(signal.SIGQUIT)
            try:
                vg.wait(30)
            except subprocess.TimeoutExpired:
                vg.kill()
                vg.wait()
        return analyse(maps, trace)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, proc):
    for _ in range(600):
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def client(port, requests, conns):
    """requests GETs of /index.html over conns keep-alive connections in
    turn, each answer read whole before the next request."""
    import http.client
    cs = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(conns)]
    for i in range(requests):
        c = cs[i % conns]
        c.request("GET", "/index.html", headers={"User-Agent": "bench"})
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
    for c in cs:
        c.close()


def report(lib, maps, trace):
    real = os.path.realpath(lib)
    regions = []  # (start, end, name)
    base = None
    text = None
    for line in maps.splitlines():
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        name = f[5] if len(f) > 5 else ""
        if name.startswith("/") and os.path.realpath(name) == real:
            base = lo if base is None else min(base, lo)
            if "x" in f[1]:
                text = (lo, hi)
            name = "libdynobs.so"
        elif name.endswith(".seg"):
            name = "segment (ring, metrics)"
        elif name == "[stack]" or lo >= 0x1ff0000000:  # (valgrind's client stack)
            name = "stack"
        elif name.startswith("/"):
            name = os.path.basename(name)
        else:
            name = "anonymous memory (connections, threads, tables)"
        regions.append((lo, hi, name))
    if base is None or text is None:
        print("libdynobs.so is not in the process's maps")
        return
    regions.sort()
    starts = [r[0] for r in regions]
    syms = symbols(lib)
    secs = sections(lib)
    recv_at = base + next(a for a, _, n in syms if n == "recv")

    per_request = []
    cur = None
    ours = False
    ip = 0
    with open(trace) as f:
        for line in f:
            if line[0] == "I":
                ip = int(line[3:line.index(",")], 16)
                ours = text[0] <= ip < text[1]
                if ip == recv_at:
                    cur = {}
                    per_request.append(cur)
            elif ours and cur is not None and line[0] == " ":
                comma = line.index(",")
                a = int(line[3:comma], 16)
                size = int(line[comma + 1:])
                for ln in range(a >> 6, ((a + size - 1) >> 6) + 1):
                    cur.setdefault(ln, set()).add((ip, max(a, ln << 6)))
    reqs = per_request[SKIP:-1]
    if not reqs:
        print("too few requests traced (%d)" % len(per_request))
        return
    n = len(reqs)
    by_region = collections.Counter()
    lib_lines = collections.Counter()
    lib_detail = collections.defaultdict(lambda: (set(), set()))
    for r in reqs:
        for ln, uses in r.items():
            i = bisect.bisect_right(starts, ln << 6) - 1
            name = regions[i][2] if i >= 0 and (ln << 6) < regions[i][1] else "other"
            by_region[name] += 1
            if name == "libdynobs.so":
                lib_lines[ln] += 1
                v, fns = lib_detail[ln]
                for ip, a in uses:
                    v.add(symbol_at(syms, a - base, secs))
                    fns.add(symbol_at(syms, ip - base, secs))
    print("requests: %d (after the first %d); data lines the shim's code touches per request: %.1f"
          % (n, SKIP, sum(by_region.values()) / n))
    for name, c in by_region.most_common():
        print("  %6.1f  %s" % (c / n, name))
    print("libdynobs.so's own lines touched on at least half of the requests "
          "(offset, share, variables, functions):")
    for ln, c in sorted(lib_lines.items()):
        if c * 2 < n:
            continue
        v, fns = lib_detail[ln]
        print("  %#8x  %.2f  %s  [%s]" % ((ln << 6) - base, c / n, ", ".join(sorted(v))[:60],
                                           ", ".join(sorted(fns))[:70]))


def symbols(lib, dynamic=False):
    """(address, size, name) of lib's defined symbols, by address; with
    dynamic, its dynamic functions only, without their versions."""
    out = subprocess.run(["nm", "-S", "-n", "--defined-only"] + (["-D"] if dynamic else []) +
                         [lib], capture_output=True, text=True).stdout
    syms = []
    for line in out.splitlines():
        f = line.split()
        if len(f) == 4 and (not dynamic or f[2] in "TtWi"):
            syms.append((int(f[0], 16), int(f[1], 16), f[3].split("@")[0] if dynamic else f[3]))
    return syms


def sections(lib):
    out = subprocess.run(["readelf", "-SW", lib], capture_output=True, text=True).stdout
    secs = []
    for line in out.splitlines():
        if "] ." in line:
            f = line.split("]", 1)[1].split()
            secs.append((int(f[2], 16), int(f[4], 16), f[0]))
    return secs


def symbol_at(syms, off, secs=None):
    """The symbol whose extent holds off; given the sections, the section's
    name when none does (a constant without a name in .rodata, a GOT
    entry)."""
    for a, size, name in syms:
        if a <= off < a + size:
            return name.split(".lto_priv")[0]
    if secs is None:
        return "?"
    return "(%s)" % next((n for a, size, n in secs if a <= off < a + size), "?")


if __name__ == "__main__":
    sys.exit(main())
