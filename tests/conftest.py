"""Root of the test suite: the fixture plugins for the real servers, and Hypothesis's profile."""

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
