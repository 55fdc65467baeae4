"""Host-wide mode (preload/hostwide.c): with libdynobs.so in the host's
preload list, only the executables the selection file includes (and does
not exclude) are traced, a "service" line or the systemd unit names them,
and with no selection file nothing is. The real /etc/ld.so.preload is
never written: DYNOBS_HOSTWIDE_PRELOAD_FILE stands for it (the library
itself comes through LD_PRELOAD), DYNOBS_HOSTWIDE_CONF for
/etc/dynobs/hostwide.conf and DYNOBS_HOSTWIDE_CGROUP_FILE for
/proc/self/cgroup. Each case checks the segments the processes made
(dynobs-dump) and the spans they hold.

usage: test_hostwide.py BUILD_DIR SOURCE_DIR [TEST_NAME ...]
"""

import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_exporter as tx  # noqa: E402
from recorder import RecordingServer  # noqa: E402

BUILD = tx.BUILD
DUMP = os.path.join(BUILD, "dynobs-dump")
check = tx.check


def server():
    """A plain server outside the shim; its url() ends with "/"."""
    srv = RecordingServer(lambda h: h.path, lambda h: b"ok")
    srv.root = srv.url() + "/"
    return srv


def host(env, conf=None, cgroup=None):
    """The environment of a process on a host whose preload list names
    the library, with the selection file conf (None: none)."""
    d = os.path.join(env.dir, "host")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "ld.so.preload"), "w") as f:
        f.write("# the host's preload list\n%s\n" % tx.LIB)
    e = env.app_env({"DYNOBS_HOSTWIDE_PRELOAD_FILE": os.path.join(d, "ld.so.preload"),
                     "DYNOBS_HOSTWIDE_CONF": os.path.join(d, "hostwide.conf")})
    e.pop("OTEL_SERVICE_NAME", None)
    conf_path = os.path.join(d, "hostwide.conf")
    if conf is None:
        if os.path.exists(conf_path):
            os.unlink(conf_path)
    else:
        with open(conf_path, "w") as f:
            f.write(conf)
    if cgroup:
        cg = os.path.join(d, "cgroup")
        with open(cg, "w") as f:
            f.write(cgroup)
        e["DYNOBS_HOSTWIDE_CGROUP_FILE"] = cg
    return e


def segments(env):
    """service name -> spans (lines), from every segment made."""
    out = {}
    for name in env.segments():
        r = subprocess.run([DUMP, os.path.join(env.shm, name)], capture_output=True, text=True,
                           timeout=30)
        svc = None
        for line in r.stdout.splitlines():
            if line.startswith("service.name="):
                svc = line.split()[0].split("=", 1)[1]
                out.setdefault(svc, [])
            elif line.startswith("span ") and svc:
                out[svc].append(line)
    return out


def fetch(env, e, url, tool="curl"):
    argv = {"curl": ["curl", "-s", "-o", "/dev/null", url],
            "wget": ["wget", "-q", "-O", "/dev/null", url]}[tool]
    r = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "%s: %s" % (tool, r.stderr))


@tx.with_env
def test_nothing_is_traced_until_configured(env):
    tx.require_third_party("curl")
    srv = server()
    try:
        fetch(env, host(env, None), srv.root)
        check(segments(env) == {}, "no selection file: no segment, %r" % segments(env))
        fetch(env, host(env, "# nothing included yet\nexclude /usr/bin/curl\n"), srv.root)
        check(segments(env) == {}, "nothing included: no segment")
    finally:
        srv.stop()


@tx.with_env
def test_only_selected_executables_are_traced(env):
    tx.require_third_party("curl and wget")
    if not shutil.which("wget"):
        raise tx.Skipped("wget is missing")
    srv = server()
    try:
        curl = os.path.realpath(shutil.which("curl"))
        conf = ("# curl is traced, under a name of ours; wget is not\n"
                "include /usr/bin/*\n"
                "exclude */wget\n"
                "service %s fetcher\n" % curl)
        e = host(env, conf)
        fetch(env, e, srv.root, "curl")
        fetch(env, e, srv.root, "wget")
        got = segments(env)
        check(list(got) == ["fetcher"], "only curl, as fetcher: %r" % got)
        check(len(got["fetcher"]) == 1 and "kind=CLIENT" in got["fetcher"][0],
              "curl's client span: %r" % got["fetcher"])
    finally:
        srv.stop()


@tx.with_env
def test_the_systemd_unit_names_the_service(env):
    tx.require_third_party("curl")
    srv = server()
    try:
        e = host(env, "include */curl\n", cgroup="0::/system.slice/shop-api.service\n")
        fetch(env, e, srv.root)
        got = segments(env)
        check(list(got) == ["shop-api"], "the unit's name: %r" % got)
        # OTEL_SERVICE_NAME still wins over the unit
        for name in env.segments():
            os.unlink(os.path.join(env.shm, name))
        e["OTEL_SERVICE_NAME"] = "mine"
        fetch(env, e, srv.root)
        check(list(segments(env)) == ["mine"], "OTEL_SERVICE_NAME first: %r" % segments(env))
    finally:
        srv.stop()


@tx.with_env
def test_an_explicit_preload_is_not_host_wide(env):
    """dynobs-run's LD_PRELOAD, on a host whose real preload list does not
    name the library: traced whatever a selection file would say."""
    tx.require_third_party("curl")
    srv = server()
    try:
        e = env.app_env({"OTEL_SERVICE_NAME": "explicit",
                         "DYNOBS_HOSTWIDE_CONF": os.path.join(env.dir, "excludes-all.conf")})
        with open(e["DYNOBS_HOSTWIDE_CONF"], "w") as f:
            f.write("exclude *\n")
        fetch(env, e, srv.root)
        check(list(segments(env)) == ["explicit"], "traced: %r" % segments(env))
    finally:
        srv.stop()


def main():
    if not shutil.which("curl"):
        return tx.skip_file("curl is missing")
    return tx.run_tests(globals())


if __name__ == "__main__":
    sys.exit(main())
