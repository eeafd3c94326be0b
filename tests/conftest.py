"""Root of the test suite: the fixture plugins for the real servers, Hypothesis's profile, the
parallel workers' port slices and the summaries tests ask to have printed."""

import os

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = [
    "tests.plugins.infra",
    "tests.plugins.dns",
    "tests.plugins.ses",
    "tests.plugins.mailserver",
]

# Registered and loaded here, before any test module is imported, so every @given inherits it
# (an explicit @settings(...) overrides only the values it names). Hypothesis's deadline and
# its too-slow health check are wall-clock verdicts: on a machine busy with other work they
# fail tests whose logic is fine. Here a property fails only on a counterexample.
settings.register_profile(
    "domainflow",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
# The same examples on every run, for CI logs that must compare: `--hypothesis-profile ci`.
settings.register_profile("ci", parent=settings.get_profile("domainflow"), derandomize=True)
settings.load_profile("domainflow")


def pytest_configure(config: pytest.Config) -> None:
    # `make test` runs two workers (pytest-xdist), each starting servers on ports it chooses
    # while the other does the same: each chooses from a slice of its own, so neither hands
    # a child process a port the other has just handed out.
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if worker.startswith("gw") and count:
        os.environ["DOMAINFLOW_PORT_SLICE"] = f"{int(worker.removeprefix('gw'))}/{count}"


_summaries: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # A test's `("summary", text)` user property (schemathesis' run summary, say) reaches the
    # controller from any worker; it is printed once the run is over.
    if report.when == "call":
        _summaries.extend(
            (report.nodeid, str(value))
            for name, value in report.user_properties
            if name == "summary"
        )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for nodeid, text in _summaries:
        terminalreporter.section(f"summary: {nodeid}")
        terminalreporter.write_line(text)
