"""The version is set once, in project(VERSION ...) of the top-level
CMakeLists.txt, and every place that shows it must agree with it: the
generated public header, the library's dynobs_version(), the pkg-config
files, the Python wheel built by python/dynobs_build.py (its name, its
metadata and the dynobs/_version.py it carries) and the Python package run
from the source tree.

    python3 tests/version_test.py CMAKE-VERSION BUILD-DIR SOURCE-DIR
"""

import ctypes
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import zipfile


def main():
    want, build, src = sys.argv[1], sys.argv[2], sys.argv[3]
    seen = {}

    with open(os.path.join(build, "include", "dynobs", "version.h")) as f:
        m = re.search(r'#define DYNOBS_VERSION_STRING "([^"]*)"', f.read())
    seen["generated dynobs/version.h"] = m.group(1) if m else None

    # What the compiled library returns, not only what the header says.
    for lib in ("libdynobs.so", "libdynobs-noop.so"):
        so = ctypes.CDLL(os.path.join(build, lib))
        so.dynobs_version.restype = ctypes.c_char_p
        seen[lib + " dynobs_version()"] = so.dynobs_version().decode()

    for pc in ("dynobs.pc", "dynobs-noop.pc"):
        with open(os.path.join(build, pc)) as f:
            m = re.search(r"^Version: (.*)$", f.read(), re.M)
        seen[pc] = m.group(1) if m else None

    # The wheel, built by the package's own backend as pip would call it.
    spec = importlib.util.spec_from_file_location(
        "dynobs_build", os.path.join(src, "python", "dynobs_build.py"))
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    with tempfile.TemporaryDirectory() as tmp:
        name = backend.build_wheel(tmp)
        m = re.match(r"dynobs-([^-]+)-", name)
        seen["wheel file name"] = m.group(1) if m else name
        with zipfile.ZipFile(os.path.join(tmp, name)) as z:
            meta = z.read("dynobs-%s.dist-info/METADATA" % seen["wheel file name"]).decode()
            m = re.search(r"^Version: (.*)$", meta, re.M)
            seen["wheel METADATA"] = m.group(1) if m else None
            m = re.search(r'__version__ = "([^"]*)"', z.read("dynobs/_version.py").decode())
            seen["wheel dynobs/_version.py"] = m.group(1) if m else None

    # The package as the tests import it, from the source tree (it must not
    # load the library just to say its version).
    r = subprocess.run([sys.executable, "-c", "import dynobs; print(dynobs.__version__)"],
                       cwd=os.path.join(src, "python"), capture_output=True, text=True,
                       env=dict(os.environ, PYTHONDONTWRITEBYTECODE="1"))
    seen["python/dynobs from the source tree"] = r.stdout.strip() or r.stderr.strip()

    # pyproject.toml must not carry a second copy of the version.
    with open(os.path.join(src, "python", "pyproject.toml")) as f:
        if re.search(r"^version\s*=", f.read(), re.M):
            seen["python/pyproject.toml"] = "has its own version line"

    bad = 0
    for where, got in seen.items():
        ok = got == want
        bad += not ok
        print("%-40s %s%s" % (where, got, "" if ok else "   <-- expected %s" % want))
    if bad:
        print("%d place(s) disagree with project(VERSION %s)" % (bad, want))
        return 1
    print("all %d places say %s" % (len(seen), want))
    return 0


if __name__ == "__main__":
    sys.exit(main())
