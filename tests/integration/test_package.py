"""The Debian package (scripts/package.sh): it builds from this build tree,
lintian finds nothing but what deploy/debian/lintian-overrides says why,
its Depends come from the binaries, its systemd unit verifies, and a
service traced from the unpacked tree (dpkg -x, never installed on this
machine) reaches a test OTLP receiver through the unpacked exporter.

usage: test_package.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import glob
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
from otlp_receiver import Receiver  # noqa: E402
from recorder import RecordingServer  # noqa: E402

BUILD, SOURCE = tx.BUILD, tx.SOURCE
check, wait_for, attrs, spans_of, one = tx.check, tx.wait_for, tx.attrs, tx.spans_of, tx.one


def build_package(env):
    out = os.path.join(env.dir, "out")
    r = subprocess.run(["bash", os.path.join(SOURCE, "scripts", "package.sh"), BUILD, out],
                       capture_output=True, text=True, timeout=300)
    check(r.returncode == 0, "package.sh: %s" % r.stderr[-800:])
    deb = r.stdout.strip().splitlines()[-1]
    check(os.path.isfile(deb) and deb.endswith(".deb"), "a .deb: %r" % deb)
    return deb


def field(deb, name):
    return subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True, text=True,
                          check=True).stdout.strip()


@tx.with_env
def test_package_lintian_and_unpacked_tree(env):
    tx.require_third_party("the packaged library")  # an ASan build cannot be preloaded into curl
    deb = build_package(env)
    depends = field(deb, "Depends")
    for lib in ("libc6", "libcurl4", "libmicrohttpd12", "libprotobuf-c1"):
        check(lib in depends, "Depends names %s: %r" % (lib, depends))
    listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                             check=True).stdout
    multiarch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True,
                               text=True).stdout.strip() or "x86_64-linux-gnu"
    for path in ("./usr/lib/%s/libdynobs.so" % multiarch, "./usr/lib/%s/libdynobs-noop.so" % multiarch,
                 "./usr/bin/dynobs-exporter", "./usr/bin/dynobs-run", "./usr/bin/dynobs-dump",
                 "./usr/include/dynobs/dynobs.h", "./usr/lib/%s/pkgconfig/dynobs.pc" % multiarch,
                 "./usr/lib/python3/dist-packages/dynobs/__init__.py",
                 "./usr/share/dynobs/default.yaml", "./lib/systemd/system/dynobs-exporter.service",
                 "./etc/default/dynobs", "./usr/share/doc/dynobs/copyright"):
        check(path in listing, "the package holds %s" % path)
    if shutil.which("lintian"):
        r = subprocess.run(["lintian", "--fail-on", "error,warning", deb], capture_output=True,
                           text=True, timeout=600)
        check(r.returncode == 0, "lintian: %s%s" % (r.stdout, r.stderr))
    else:
        tx.skip_part("lintian", "lintian is not installed")

    root = os.path.join(env.dir, "root")
    subprocess.run(["dpkg", "-x", deb, root], check=True)
    unit = os.path.join(root, "lib", "systemd", "system", "dynobs-exporter.service")
    if shutil.which("systemd-analyze"):
        # verified as a copy naming the unpacked exporter (verify checks that
        # ExecStart's program exists); any complaint at all fails
        with open(unit) as f:
            text = f.read()
        check("ExecStart=/usr/bin/dynobs-exporter " in text, "the unit starts the exporter")
        copy = os.path.join(env.dir, "dynobs-exporter.service")
        with open(copy, "w") as f:
            f.write(text.replace("/usr/bin/dynobs-exporter",
                                 os.path.join(root, "usr", "bin", "dynobs-exporter")))
        r = subprocess.run(["systemd-analyze", "verify", copy], capture_output=True, text=True,
                           timeout=60)
        complaints = (r.stdout + r.stderr).strip()
        check(r.returncode == 0 and not complaints, "systemd-analyze verify: %s" % complaints)
    else:
        tx.skip_part("systemd-analyze verify", "systemd-analyze is missing")
    check(os.path.isfile(unit), "the unit")

    # A server and a client traced from the unpacked tree, drained by its exporter.
    rx = Receiver()
    try:
        exporter = os.path.join(root, "usr", "bin", "dynobs-exporter")
        env_x = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
        env_x.update({"DYNOBS_SHM_DIR": env.shm, "OTEL_EXPORTER_OTLP_ENDPOINT": rx.url(),
                      "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_METRICS_EXPORTER": "none",
                      "OTEL_EXPORTER_PROMETHEUS_PORT": "0", "DYNOBS_DRAIN_INTERVAL": "20"})
        xp = subprocess.Popen([exporter], env=env_x, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        env.procs.append(xp)

        srv = RecordingServer(lambda h: h.path, lambda h: b"ok")
        url = srv.url() + "/from-the-package"
        run = os.path.join(root, "usr", "bin", "dynobs-run")
        env_c = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "DYNOBS_LIBRARY")}
        env_c.update({"DYNOBS_SHM_DIR": env.shm})
        r = subprocess.run([run, "--no-exporter", "--service-name", "pkg-client", "--", "curl",
                            "-s", url], env=env_c, capture_output=True, text=True, timeout=60)
        check(r.returncode == 0 and r.stdout == "ok", "curl under the unpacked dynobs-run: %r %r"
              % (r.stdout, r.stderr))

        def spans():
            return [s for res, s in spans_of(rx.accepted("/v1/traces"))
                    if res.get("service.name") == "pkg-client"]
        wait_for(lambda: spans(), 20, "the client span from the unpacked tree")
        s = spans()[0]
        check(attrs(s).get("url.full") == url and one(s, "kind") == "SPAN_KIND_CLIENT",
              "client span %r" % attrs(s))
        srv.stop()
    finally:
        rx.stop()
    # The Python package where Debian's python3 finds it, on the packaged library.
    if os.path.exists("/usr/bin/python3"):
        lib = glob.glob(os.path.join(root, "usr", "lib", "*", "libdynobs.so"))[0]
        r = subprocess.run(["/usr/bin/python3", "-c",
                            "import dynobs; print(dynobs.enabled(), dynobs.__file__)"],
                           env=dict(env_c, PYTHONPATH=os.path.join(root, "usr", "lib", "python3",
                                                                   "dist-packages"),
                                    DYNOBS_LIBRARY=lib),
                           capture_output=True, text=True, timeout=60, cwd=env.dir)
        check(r.returncode == 0 and r.stdout.startswith("True " + root),
              "the packaged Python package: %r %r" % (r.stdout, r.stderr))


def main():
    for t in ("dpkg-deb", "dpkg-shlibdeps", "file", "strip", "curl"):
        if not shutil.which(t):
            return tx.skip_file("%s is missing (Debian: dpkg-dev, file, binutils, curl)" % t)
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
