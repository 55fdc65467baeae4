"""A minimal PEP 517 build backend (standard library only) for the dynobs
package: a pure-Python wheel of dynobs/, so that `pip install ./python`
needs no download of setuptools."""

import base64
import hashlib
import os
import zipfile

NAME, VERSION = "dynobs", "0.1.0"
HERE = os.path.dirname(os.path.abspath(__file__))
TAG = "py3-none-any"


def _metadata():
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\nRequires-Python: >=3.9\n"
            "Summary: Custom spans, metrics and logs for processes traced by dynobs\n"
            % (NAME, VERSION))


def _digest(data):
    h = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "sha256=" + h


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = "%s-%s-%s.whl" % (NAME, VERSION, TAG)
    info = "%s-%s.dist-info" % (NAME, VERSION)
    files = []
    pkg = os.path.join(HERE, NAME)
    for fn in sorted(os.listdir(pkg)):
        if fn.endswith(".py"):
            with open(os.path.join(pkg, fn), "rb") as f:
                files.append(("%s/%s" % (NAME, fn), f.read()))
    files.append((info + "/METADATA", _metadata().encode()))
    files.append((info + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: dynobs_build\n"
                                    "Root-Is-Purelib: true\nTag: %s\n" % TAG).encode()))
    record = "".join("%s,%s,%d\n" % (p, _digest(d), len(d)) for p, d in files)
    record += info + "/RECORD,,\n"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for p, d in files:
            z.writestr(p, d)
        z.writestr(info + "/RECORD", record)
    return name


def build_sdist(sdist_directory, config_settings=None):
    import tarfile
    base = "%s-%s" % (NAME, VERSION)
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz") as t:
        for fn in ("pyproject.toml", "dynobs_build.py", "README.md", NAME):
            t.add(os.path.join(HERE, fn), arcname=base + "/" + fn,
                  filter=lambda ti: None if "__pycache__" in ti.name else ti)
        pkg_info = os.path.join(sdist_directory, "PKG-INFO.tmp")
        with open(pkg_info, "w") as f:
            f.write(_metadata())
        t.add(pkg_info, arcname=base + "/PKG-INFO")
        os.unlink(pkg_info)
    return name
