# dynobs for Python: dynobs-run puts this file's directory first on
# PYTHONPATH, so that Python imports it at start-up (the site module
# imports "sitecustomize"). In a process that has the shim preloaded, it
# installs the dynobs package's asyncio bridge (python/dynobs/_asyncio.py)
# as soon as the program imports asyncio: each inbound request's context
# then follows the request's tasks and callbacks and becomes the parent
# of the HTTP calls made in it; and the grpcio bridge
# (python/dynobs/_grpc.py) as soon as it imports grpc: a gRPC handler on
# the server's thread pool runs in its request's context. A program that
# imports neither pays for one environment look-up; one that does, for
# importing the package.
#
# Then it runs the sitecustomize this one hides (Debian has one), as
# Python would have without it. Any Python may read this file (Python 2
# too, through an inherited PYTHONPATH): it keeps to a syntax they all
# parse, and does nothing before CPython 3.9.
import os
import sys


def _dynobs_find_package():
    """Makes "import dynobs" work: installed (pip), else the source tree
    this file comes from (the build tree's copy names it)."""
    import importlib.machinery
    if importlib.machinery.PathFinder.find_spec("dynobs", sys.path) is not None:
        return True
    here = os.path.dirname(os.path.abspath(__file__))
    for d in ("@DYNOBS_PYTHON_DIR@", os.path.join(here, "..", "..", "python")):
        if not d.startswith("@") and os.path.isfile(os.path.join(d, "dynobs", "__init__.py")):
            sys.path.append(os.path.abspath(d))
            return True
    return False


def _dynobs_bridge(module=None):
    try:
        import dynobs
        dynobs._install_bridge()
    except Exception:
        pass  # never into the application: its requests go unlinked


def _dynobs_grpc(module):
    try:
        from dynobs import _grpc
        _grpc.install(module)
    except Exception:
        pass  # never into the application: its handlers go unlinked


class _DynobsImportHook(object):
    """A finder that lets asyncio and grpc import as usual, then installs
    their bridge before anything can use them (once each: it leaves
    sys.meta_path when both are done)."""

    def __init__(self, bridges):
        self.bridges = bridges

    def find_spec(self, name, path=None, target=None):
        install = self.bridges.pop(name, None)
        if install is None:
            return None
        if not self.bridges:
            try:
                sys.meta_path.remove(self)
            except ValueError:
                pass
        try:
            import importlib.machinery
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is not None and spec.loader is not None and \
                    hasattr(spec.loader, "exec_module"):
                spec.loader = _DynobsLoader(spec.loader, install)
                return spec
        except Exception:
            pass
        return None  # the finders after this one import it, without the bridge


class _DynobsLoader(object):
    def __init__(self, real, install):
        self.real = real
        self.install = install

    def create_module(self, spec):
        return self.real.create_module(spec)

    def exec_module(self, module):
        # The module keeps its own loader, as if imported without us.
        module.__loader__ = self.real
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self.real
        self.real.exec_module(module)
        try:
            if _dynobs_find_package():
                self.install(module)
        except Exception:
            pass


def _dynobs_start():
    if sys.version_info < (3, 9) or getattr(sys, "implementation", None) is None or \
            sys.implementation.name != "cpython":
        return
    if "libdynobs" not in os.environ.get("LD_PRELOAD", "") or \
            os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return
    bridges = {}
    for name, install in (("asyncio", _dynobs_bridge), ("grpc", _dynobs_grpc)):
        if name not in sys.modules:
            bridges[name] = install
        elif _dynobs_find_package():
            install(sys.modules[name])
    if bridges:
        sys.meta_path.insert(0, _DynobsImportHook(bridges))


def _dynobs_chain():
    """Runs the next sitecustomize on sys.path, under that name."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    if sys.version_info < (3, 4):
        import imp
        try:
            found = imp.find_module("sitecustomize", rest)
        except ImportError:
            return
        del sys.modules["sitecustomize"]
        imp.load_module("sitecustomize", *found)
        return
    import importlib.machinery
    import importlib.util
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


try:
    _dynobs_start()
except Exception:
    pass
_dynobs_chain()
