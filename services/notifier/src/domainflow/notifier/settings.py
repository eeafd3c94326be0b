"""The notifier's settings: its database, health port, sender, region, and what it writes about."""

from __future__ import annotations

import os

from pydantic import Field, field_validator

from domainflow.kit.settings import DEFAULT_POSTGRES, ServiceSettings


def _default_region() -> str:
    # The standard AWS variable first, so one `AWS_DEFAULT_REGION` configures the whole stack.
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


class NotifierSettings(ServiceSettings):
    notifier_database_url: str = f"{DEFAULT_POSTGRES}/domainflow_notifier"
    notifier_health_host: str = "127.0.0.1"
    notifier_health_port: int = 8003
    #: The From address of every notification (`DOMAINFLOW_NOTIFY_FROM`). SES sends only from
    #: an identity the operator has verified in `notify_region` (the address itself or its
    #: domain); until then every send is rejected and the event ends in the DLQ. The default
    #: suits the local sandbox (`*.localhost` never reaches a real inbox); set it in production.
    notify_from: str = "domainflow <notifications@domainflow.localhost>"
    #: Whether owners also hear that a domain became verified (`DOMAINFLOW_NOTIFY_ON_VERIFIED`).
    notify_on_verified: bool = True
    #: The SES region notifications are sent through (`DOMAINFLOW_NOTIFY_REGION`); by default
    #: the AWS SDK's own region variable, else us-east-1.
    notify_region: str = Field(default_factory=_default_region)
    #: Optional link in every mail to where owners can see the domain, e.g.
    #: `https://app.example.com/domains` (`DOMAINFLOW_NOTIFY_DASHBOARD_URL`).
    notify_dashboard_url: str | None = None
    #: Days a settled notification (`sent` or `rejected`) is kept in the log
    #: (`DOMAINFLOW_NOTIFICATION_RETENTION_DAYS`). A redelivered transition that old cannot
    #: arrive (inboxes keep a week), so only the audit trail is lost; `sending` and
    #: `unconfirmed` rows are never trimmed: each waits for an operator.
    notification_retention_days: float = Field(default=365.0, gt=0)

    @field_validator("notify_dashboard_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        # The URL becomes an href: anything but http(s) (javascript:, data:) is refused here.
        if not value:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("notify_dashboard_url must be an http(s) URL")
        return value
