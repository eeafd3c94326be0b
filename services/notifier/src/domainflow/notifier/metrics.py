"""The notifier's gauges: owner emails by fate, `unconfirmed` being the one to look at."""

from domainflow.kit.metrics import Gauge

GAUGES = (
    Gauge(
        "domainflow_notifications",
        "Owner emails in each state; `unconfirmed` ones may not have reached the owner.",
        "SELECT s.state, count(n.recipient) AS value"
        " FROM (VALUES ('sending'), ('sent'), ('rejected'), ('unconfirmed')) AS s (state)"
        " LEFT JOIN notifications n ON n.state = s.state GROUP BY s.state",
        ("state",),
    ),
)
