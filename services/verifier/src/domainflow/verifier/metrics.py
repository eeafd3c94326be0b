"""The verifier's gauges: whether the re-verification cycle keeps up (see kit/metrics.py)."""

from domainflow.kit.metrics import Gauge

GAUGES = (
    Gauge(
        "domainflow_reverify_scheduled",
        "Domains the cycle re-checks (pending and verified).",
        "SELECT count(*) AS value FROM schedule WHERE next_check_at IS NOT NULL",
    ),
    Gauge(
        "domainflow_reverify_due",
        "Scheduled re-checks whose time has come and that no replica has finished yet.",
        "SELECT count(*) AS value FROM schedule WHERE next_check_at <= now()",
    ),
    Gauge(
        "domainflow_reverify_lag_seconds",
        "How long the most overdue re-check has waited; it grows when the cycle falls behind.",
        "SELECT coalesce(extract(epoch FROM now() - min(next_check_at)), 0) AS value"
        " FROM schedule WHERE next_check_at <= now()",
    ),
)
