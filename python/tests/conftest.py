"""pytest set-up of the package's tests.

A run in which every test was skipped (no CPython >= 3.9 was found, for
example) exits with status 77, which CTest reports as a skip
(SKIP_RETURN_CODE): it must never read as a pass. A run with some skips
and some passes keeps pytest's status; `-rs` (see tests/CMakeLists.txt)
prints each skip with its reason."""

SKIP_EXIT = 77


def pytest_sessionfinish(session, exitstatus):
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if exitstatus != 0 or reporter is None:
        return
    if reporter.stats.get("skipped") and not reporter.stats.get("passed"):
        session.exitstatus = SKIP_EXIT
