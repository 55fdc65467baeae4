#!/usr/bin/env python3
"""The 4 KiB pages a request served by nginx touches between two system
calls, plain and under the shim (BENCHMARKS.md, "Eighteenth round").

On a kernel with page-table isolation and no PCID (this VM: `pti=on`, no
`pcid` in /proc/cpuinfo), every system call flushes the process's TLB:
each page a process touches after a system call costs a page walk again,
however recently it was used. The count that then predicts what code and
data cost is not lines or instructions but, per request, the sum over the
stretches between two system calls of the distinct pages touched in each.

    python3 bench/nginx_pages.py [BUILD_DIR]       (default: build)

nginx (Debian's, one process, the site of bench/nginx_site.sh) runs under
valgrind's lackey (--trace-mem=yes), once plain and once with
LD_PRELOAD=BUILD_DIR/libdynobs.so; a client makes REQUESTS (default 320)
requests over CONNS (default 32) keep-alive connections in turn, as wrk
does (data_lines.py's client). A stretch ends at each `syscall`
instruction of any file mapped (libc's, the shim's raw calls); a request
is counted at each entry of libc's writev (one per response), the first
64 left out. Printed per request: system calls, page touches (code, data)
in each run and the difference, and for the shim's run the pages in each
stretch that only the shim's code touched, by mapping and by the libc
function whose system call ends the stretch. Slow (lackey): two runs of
about a minute, 1 GB of trace each in a temporary directory. Exits 77
when nginx or valgrind is missing."""
import bisect
import collections
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data_lines  # noqa: E402  (the nginx site, the client, symbol look-ups)

SKIP = 64
VDSO_CALLS = {"clock_gettime", "__clock_gettime", "gettimeofday", "__gettimeofday", "time",
              "clock_getres", "__clock_getres", "getcpu", "sched_getcpu"}


def main():
    build = os.path.realpath(sys.argv[1] if len(sys.argv) > 1 else "build")
    lib = os.path.realpath(os.path.join(build, "libdynobs.so"))
    for f in ("/usr/sbin/nginx", shutil.which("valgrind") or "/nonexistent", lib):
        if not os.path.exists(f):
            print("missing: %s" % f)
            return 77
    runs = {}
    for mode in ("plain", "shim"):
        runs[mode] = trace_run(lib if mode == "shim" else None)
        if runs[mode] is None:
            return 1
    p, s = runs["plain"], runs["shim"]
    print("requests counted: plain %d, shim %d (after the first %d)" % (p["n"], s["n"], SKIP))
    print("per request:            plain    shim   added")
    for key, label in (("sys", "system calls"), ("code", "code page touches"),
                       ("data", "data page touches")):
        a, b = p[key] / p["n"], s[key] / s["n"]
        print("  %-20s %7.1f %7.1f %+7.1f" % (label, a, b, b - a))
    a = (p["code"] + p["data"]) / p["n"]
    b = (s["code"] + s["data"]) / s["n"]
    print("  %-20s %7.1f %7.1f %+7.1f" % ("page touches in all", a, b, b - a))
    n = s["n"]
    print("pages only the shim's code touched in their stretch, per request, by mapping:")
    for name, c in s["only"].most_common():
        print("  %6.2f  %s" % (c / n, name))
    print("the same, by the libc function whose system call ends the stretch:")
    for name, c in s["only_by_end"].most_common():
        print("  %6.2f  %s" % (c / n, name))
    print("the shim's own code pages touched per request, by page (offset in libdynobs.so):")
    for off, c in sorted(s["code_pages"].items()):
        if c * 10 >= n:
            print("  %#8x  %5.2f  %s" % (off, c / n, ", ".join(sorted(s["code_syms"][off]))[:90]))
    print("the shim's own data pages only it touched in their stretch, per request (offset):")
    secs = [x for x in data_lines.sections(lib) if x[0]]
    for off, c in sorted(s["data_pages"].items()):
        names = sorted({n for a, size, n in secs if a < off + 4096 and a + size > off})
        print("  %#8x  %5.2f  %s" % (off, c / n, ", ".join(names)))
    print("anonymous and segment pages only the shim's code touched in their stretch, per"
          " request (the mapping's size, the page's index in it, the first touches: function"
          " + offset in the page):")
    for key, c in sorted(s["anon_pages"].items(), key=lambda x: -x[1]):
        if c * 20 >= n:
            print("  %-9s %7d KiB  page %3d  %5.2f  %s" % (key + (c / n, ", ".join(
                sorted(s["anon_by"][key])[:6]))))
    if os.environ.get("DETAIL"):
        print("DETAIL=1: each stretch's pages only the shim touched (the call that ends it,"
              " the mapping and the page's offset in it), per request:")
        for (end_name, where), c in sorted(s["detail"].items(), key=lambda x: (x[0][0], -x[1])):
            if c * 20 >= n:
                print("  %-12s %5.2f  %s" % (end_name, c / n, where))
    return 0


def trace_run(lib):
    requests = int(os.environ.get("REQUESTS", "320"))
    conns = int(os.environ.get("CONNS", "32"))
    return data_lines.lackey_run(lib, requests, conns,
                                 lambda maps, trace: count(lib, maps, trace))


def mappings(maps, lib):
    """(start, end, name, path, file offset) of each mapping, names as
    printed; the shim's text range."""
    regions = []
    text = (0, 0, 0)  # start, file offset, end
    for line in maps.splitlines():
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        path = f[5] if len(f) > 5 else ""
        off = int(f[2], 16)
        if lib and path.startswith("/") and os.path.realpath(path) == lib:
            name = "libdynobs.so " + ("code" if "x" in f[1] else "data")
            if "x" in f[1]:
                text = (lo, off, hi)
        elif path.endswith(".seg"):
            name = "segment (ring, metrics)"
        elif path == "[stack]" or lo >= 0x1ff0000000:  # (valgrind's client stack)
            name = "stack"
        elif path.startswith("/"):
            name = os.path.basename(path) + (" code" if "x" in f[1] else " data")
        elif path.startswith("["):
            name = path
        else:
            name = "anonymous memory"
        regions.append((lo, hi, name, path if path.startswith("/") and "x" in f[1] else "", off))
    regions.sort()
    return regions, text


def syscall_sites(regions):
    """The run-time addresses of every `syscall` instruction in the mapped
    files' code, each with the dynamic symbol it lies in."""
    sites = {}
    for lo, hi, _, path, off in regions:
        if not path:
            continue
        # The mapping's first address holds the file's byte `off`; for these
        # files (ET_DYN, text mapped at its own offset) a virtual address v
        # lies at lo - off + v.
        base = lo - off
        syms = sorted((a, n) for a, _, n in data_lines.symbols(path, dynamic=True))
        addrs = [a for a, _ in syms]
        out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True,
                             text=True).stdout
        for m in re.finditer(r"^\s*([0-9a-f]+):\s+syscall\s*$", out, re.M):
            v = int(m.group(1), 16)
            i = bisect.bisect_right(addrs, v) - 1
            name = syms[i][1] if i >= 0 else "?"
            # (natively the vDSO answers these without a system call:
            # valgrind has libc make one)
            if name not in VDSO_CALLS:
                sites[base + v] = name
    return sites


def count(lib, maps, trace):
    regions, text = mappings(maps, lib)
    starts = [r[0] for r in regions]
    sites = syscall_sites(regions)
    libc = next(r for r in regions if r[3].endswith("/libc.so.6"))
    writev_at = libc[0] - libc[4] + next(a for a, _, n in data_lines.symbols(libc[3], dynamic=True)
                                         if n == "writev")
    syms = data_lines.symbols(lib) if lib else []
    lib_base = min((r[0] - r[4] for r in regions if r[2].startswith("libdynobs.so")), default=0)

    def region(page):
        i = bisect.bisect_right(starts, page << 12) - 1
        return regions[i][2] if i >= 0 and (page << 12) < regions[i][1] else "other"

    def span_of(page):
        i = bisect.bisect_right(starts, page << 12) - 1
        return regions[i][0], regions[i][1]

    def fresh():
        return {"n": 0, "sys": 0, "code": 0, "data": 0, "only": collections.Counter(),
                "only_by_end": collections.Counter(), "code_pages": collections.Counter(),
                "code_syms": collections.defaultdict(set), "data_pages": collections.Counter(),
                "anon_pages": collections.Counter(), "anon_by": collections.defaultdict(set),
                "detail": collections.Counter()}

    st, cur = fresh(), fresh()  # totals of whole requests; the request under way
    requests = 0
    code, data = set(), {}  # this stretch's pages; data: page -> touched by others too
    shim_code = set()
    seen_by = {}  # data page -> (the shim's instruction, offset in the page) that touched it first

    def end(site_name):
        cur["sys"] += 1
        cur["code"] += len(code)
        cur["data"] += len(data)
        for pg in shim_code:
            cur["only"][region(pg)] += 1
            cur["only_by_end"][site_name] += 1
            cur["detail"][(site_name, "code %#x" % ((pg << 12) - text[0] + text[1]))] += 1
        for pg, others in data.items():
            if not others:
                r = region(pg)
                lo, hi = span_of(pg)
                cur["detail"][(site_name, "%s %#x" % (r, (pg << 12) - lo))] += 1
                cur["only"][r] += 1
                cur["only_by_end"][site_name] += 1
                if r.startswith("libdynobs.so"):
                    cur["data_pages"][(pg << 12) - lib_base] += 1
                elif r in ("anonymous memory", "segment (ring, metrics)"):
                    lo, hi = span_of(pg)
                    key = (r.split()[0], (hi - lo) >> 10, ((pg << 12) - lo) >> 12)
                    cur["anon_pages"][key] += 1
                    ip, off = seen_by.get(pg, (0, 0))
                    cur["anon_by"][key].add("%s+%#x" % (data_lines.symbol_at(
                        syms, ip - text[0] + text[1]), off))
        code.clear()
        data.clear()
        shim_code.clear()
        seen_by.clear()

    ours = False
    with open(trace) as f:
        for line in f:
            if line[0] == "I":
                ip = int(line[3:line.index(",")], 16)
                ours = text[0] <= ip < text[2]
                if ip == writev_at:
                    # a request ends where the next response starts
                    requests += 1
                    if requests > SKIP + 1:
                        st["n"] += 1
                        for k in ("sys", "code", "data"):
                            st[k] += cur[k]
                        for k in ("only", "only_by_end", "code_pages", "data_pages", "anon_pages",
                                  "detail"):
                            st[k].update(cur[k])
                        for k, v in cur["code_syms"].items():
                            st["code_syms"][k] |= v
                        for k, v in cur["anon_by"].items():
                            st["anon_by"][k] |= v
                    cur = fresh()
                pg = ip >> 12
                if ours and pg not in code:
                    shim_code.add(pg)
                    off = (pg << 12) - text[0] + text[1]
                    cur["code_pages"][off] += 1
                    cur["code_syms"][off].add(data_lines.symbol_at(syms, off + (ip & 0xfff)))
                code.add(pg)
                if ip in sites:
                    end(sites[ip])
            elif line[0] == " " and line[1] in "LSM":
                a = int(line[3:line.index(",")], 16)
                pg = a >> 12
                data[pg] = data.get(pg, False) or not ours
                if ours and pg not in seen_by:
                    seen_by[pg] = (ip, a & 0xfff)
    return st


if __name__ == "__main__":
    sys.exit(main())
