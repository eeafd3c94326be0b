"""Where the local stack's replicas answer `/metrics`: operator ports, never the API's own."""

from __future__ import annotations

from domainflow.api.settings import ApiSettings
from domainflow.cli.stack import API_METRICS_PORT, health_url, metrics_port, metrics_url


def test_the_api_serves_metrics_on_its_operator_port_by_default() -> None:
    assert metrics_url("api", {}) == f"http://127.0.0.1:{API_METRICS_PORT}/metrics"
    assert ApiSettings().http.metrics_port == API_METRICS_PORT
    assert ApiSettings().http.metrics_host == "127.0.0.1"
    assert ApiSettings().http.metrics_port != ApiSettings().http.port


def test_api_replicas_take_adjacent_operator_ports_as_they_do_api_ports() -> None:
    env = {"DOMAINFLOW_API_METRICS_PORT": "9100", "DOMAINFLOW_API_METRICS_HOST": "10.0.0.5"}
    assert [metrics_port(env, replica) for replica in range(3)] == [9100, 9101, 9102]
    assert metrics_url("api", env, 1) == "http://10.0.0.5:9101/metrics"
    # A port the kernel picks stays for the kernel to pick, replica or not.
    assert metrics_port({"DOMAINFLOW_API_METRICS_PORT": "0"}, 2) == 0


def test_consumers_serve_metrics_beside_their_health_checks() -> None:
    env = {"DOMAINFLOW_VERIFIER_HEALTH_PORT": "8102"}
    assert metrics_url("verifier", env) == "http://127.0.0.1:8102/metrics"
    assert health_url("verifier", env) == "http://127.0.0.1:8102/readyz"
