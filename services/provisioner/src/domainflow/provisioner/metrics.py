"""The provisioner's gauges: sagas under way, and how long the oldest has run."""

from domainflow.kit.metrics import Gauge

GAUGES = (
    Gauge(
        "domainflow_sagas_unfinished",
        "Provisioning and deprovisioning sagas running or compensating.",
        "SELECT k.kind, count(s.id) AS value"
        " FROM (VALUES ('provision'), ('deprovision'), ('receive')) AS k (kind)"
        " LEFT JOIN sagas s ON s.kind = k.kind AND s.state IN ('running', 'compensating')"
        " GROUP BY k.kind",
        ("kind",),
    ),
    Gauge(
        "domainflow_sagas_oldest_unfinished_seconds",
        "Age of the oldest saga still under way; it grows when a step keeps failing.",
        "SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) AS value FROM sagas"
        " WHERE state IN ('running', 'compensating')",
    ),
)
