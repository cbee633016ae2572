"""pytest fixtures shared by the integration tests (suite 'integration').

Run one file against a built binary:
  PYTHONDONTWRITEBYTECODE=1 python3 -m pytest -q -p no:cacheprovider \\
      tests/integration/run_test.py --quorumwatch build/src/quorumwatch
(meson test runs each file so; QW_BIN=PATH instead of --quorumwatch works too).

Fixtures:
  qw_bin              the binary under test (absolute path)
  qw                  qw(*args) runs it to its end: a harness.Result (rc, stdout, stderr)
  free_port           free_port() -> a TCP port of 127.0.0.1 free now
  logs                the log line writers (harness.LINES: cri, docker, raw, commit_msg, ...)
  scenario            scenario(name, pods=..., pre=..., **cfg) -> harness.Scenario: a cluster
                      of CRI files written by a thread and `quorumwatch run` tailing them
  class_scenario      the same, kept for the steps (test methods) of one class
  qw_process          qw_process(name, config_text) -> harness.QwProcess (`quorumwatch run`)
  alertmanager        alertmanager(name) -> a started harness.Alertmanager (module scope)
  diagnostics         diagnostics(node, title, fn): fn()'s text is added to the report of
                      every failed test under node (a process's stderr, a server's log)
tmp_path and tmp_path_factory (pytest's own) give the temporary folders.
Everything started is stopped (killed if need be) at the fixture's teardown,
also on failure.
"""

import os

import pytest

import harness


def pytest_addoption(parser):
    g = parser.getgroup("quorumwatch")
    g.addoption("--quorumwatch", metavar="PATH", default=None,
                help="the quorumwatch binary under test (default: $QW_BIN)")
    g.addoption("--kafka-mock", metavar="PATH", default=None,
                help="kafka_test.py: tests/tools/kafka_mock as built (default: $QW_KAFKA_MOCK)")
    g.addoption("--reallogs", metavar="DIR", default=None,
                help="the real-log corpus of reallogs_test.py (default: tests/reallogs)")
    g.addoption("--reallogs-patterns", metavar="DIR", default=None,
                help="reallogs_test.py: replay with --patterns DIR instead of the built-in packs")


def pytest_report_header(config):
    b = config.getoption("--quorumwatch") or os.environ.get("QW_BIN")
    return "quorumwatch: %s" % (os.path.abspath(b) if b else "(none: pass --quorumwatch PATH)")


# --------------------------------------------------------------------------
# Diagnostics on failure: text added to a failed test's report


_DIAG = pytest.StashKey[list]()


def _add_diagnostic(node, title, fn):
    node.stash.setdefault(_DIAG, []).append((title, fn))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for node in item.listchain():
        for title, fn in node.stash.get(_DIAG, []):
            try:
                text = fn()
            except Exception as e:  # a report never breaks on its diagnostics
                text = "(unavailable: %r)" % e
            if text:
                rep.sections.append((title, text))


@pytest.fixture(scope="session")
def diagnostics():
    return _add_diagnostic


# --------------------------------------------------------------------------
# The binary


@pytest.fixture(scope="session")
def qw_bin(request):
    path = request.config.getoption("--quorumwatch") or os.environ.get("QW_BIN")
    if not path:
        pytest.fail("no binary: pass --quorumwatch PATH (or set QW_BIN)", pytrace=False)
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.fail("not an executable: %s" % path, pytrace=False)
    return path


@pytest.fixture(scope="session")
def qw(qw_bin):
    return harness.Command(qw_bin)


@pytest.fixture(scope="session")
def free_port():
    return harness.free_port


@pytest.fixture(scope="session")
def logs():
    return harness.LINES


# --------------------------------------------------------------------------
# quorumwatch run


def _scenarios(qw_bin, root, node):
    made = []

    def make(name, **kw):
        s = harness.Scenario(qw_bin, os.path.join(root, name), **kw)
        made.append(s)
        _add_diagnostic(node, "quorumwatch stderr (%s)" % name, lambda: s.p.stderr()[-3000:])
        return s
    return make, made


@pytest.fixture
def scenario(qw_bin, tmp_path, request):
    """scenario(name, pods=("val-a",), pre=None, deadline=25.0, **cfg): a
    harness.Scenario in tmp_path/name, not started yet; closed (writer
    stopped, process killed) at the end of the test."""
    make, made = _scenarios(qw_bin, str(tmp_path), request.node)
    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="class")
def class_scenario(qw_bin, tmp_path_factory, request):
    """As scenario, for the steps of one scenario written as the test
    methods of a class (in order): closed after the class's last test."""
    make, made = _scenarios(qw_bin, str(tmp_path_factory.mktemp("scenario")), request.node)
    yield make
    for s in made:
        s.close()


@pytest.fixture
def qw_process(qw_bin, tmp_path, request):
    """qw_process(name, config_text, deadline=30.0): a harness.QwProcess in
    tmp_path/name, not started yet; killed at the end of the test if it
    still runs."""
    made = []

    def make(name, config_text, deadline=30.0):
        p = harness.QwProcess(qw_bin, str(tmp_path / name), config_text, deadline=deadline)
        made.append(p)
        _add_diagnostic(request.node, "quorumwatch stderr (%s)" % name,
                        lambda: p.stderr()[-3000:])
        return p
    yield make
    for p in made:
        p.cleanup()


# --------------------------------------------------------------------------
# Alertmanager


@pytest.fixture(scope="session")
def alertmanager_bin():
    if not os.access(harness.AM_BIN, os.X_OK):
        pytest.fail("prometheus-alertmanager is not installed (%s missing): install Debian's "
                    "package prometheus-alertmanager (tools/setup and CI do)" % harness.AM_BIN,
                    pytrace=False)
    return harness.AM_BIN


@pytest.fixture(scope="module")
def alertmanager(alertmanager_bin, tmp_path_factory, request):
    """alertmanager(name): starts one Alertmanager on 127.0.0.1 (a free port,
    its configuration and storage in a temporary folder) and returns it once
    /-/ready answers; every one is stopped at the end of the module."""
    root = str(tmp_path_factory.mktemp("alertmanagers"))
    made = []

    def start(name):
        am = harness.Alertmanager(root, name, alertmanager_bin)
        made.append(am)
        _add_diagnostic(request.node, "%s log" % name, am.log_tail)
        am.start()
        return am
    yield start
    for am in made:
        am.stop()
