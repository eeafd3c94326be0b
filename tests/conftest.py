"""Root of the test suite: registers the fixture plugins for the real servers."""

pytest_plugins = [
    "tests.plugins.infra",
    "tests.plugins.dns",
    "tests.plugins.ses",
    "tests.plugins.mailserver",
]
