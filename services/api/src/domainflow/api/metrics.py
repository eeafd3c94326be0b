"""The api's gauges: how many domains stand in each state (see kit/metrics.py)."""

from domainflow.kit.metrics import Gauge

GAUGES = (
    Gauge(
        "domainflow_domains",
        "Domains in each state (deleted ones are not counted).",
        "SELECT s.status, count(d.id) AS value"
        " FROM (VALUES ('provisioning'), ('pending'), ('verified'), ('failed'), ('deleting'))"
        " AS s (status) LEFT JOIN domains d ON d.status = s.status GROUP BY s.status",
        ("status",),
    ),
    Gauge(
        "domainflow_verifications_waiting_seconds",
        "Age of the oldest verify request still unanswered; it grows while the verifier lags.",
        "SELECT coalesce(extract(epoch FROM now() - min(verify_requested_at)), 0) AS value"
        " FROM domains WHERE verify_event_id IS NOT NULL",
    ),
)
