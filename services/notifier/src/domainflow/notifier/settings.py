"""The notifier's settings: its database, health port, sender, region, and what it writes about."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from domainflow.kit.settings import (
    DEFAULT_POSTGRES,
    DatabaseSettings,
    RetentionSettings,
    ServiceSettings,
    SettingsGroup,
)


class NotifierDatabaseSettings(DatabaseSettings):
    url: str = Field(
        default=f"{DEFAULT_POSTGRES}/domainflow_notifier",
        validation_alias="DOMAINFLOW_NOTIFIER_DATABASE_URL",
    )


class NotifierHealthSettings(SettingsGroup):
    """Where `/healthz`, `/readyz` and `/metrics` are served."""

    host: str = Field(default="127.0.0.1", validation_alias="DOMAINFLOW_NOTIFIER_HEALTH_HOST")
    port: int = Field(default=8003, validation_alias="DOMAINFLOW_NOTIFIER_HEALTH_PORT")


class NotifySettings(SettingsGroup):
    """What owners are mailed, from whom, and through which SES region."""

    # An empty `AWS_REGION` counts as unset, so that `AWS_DEFAULT_REGION` is read after it.
    model_config = SettingsConfigDict(env_ignore_empty=True)

    #: The From address of every notification. SES sends only from an identity the operator
    #: has verified in `region` (the address itself or its domain); until then every send is
    #: rejected and the event ends in the DLQ. The default suits the local sandbox
    #: (`*.localhost` never reaches a real inbox); set it in production.
    sender: str = Field(
        default="domainflow <notifications@domainflow.localhost>",
        validation_alias="DOMAINFLOW_NOTIFY_FROM",
    )
    #: Whether owners also hear that a domain became verified.
    on_verified: bool = Field(default=True, validation_alias="DOMAINFLOW_NOTIFY_ON_VERIFIED")
    #: The SES region notifications are sent through; by default the AWS SDK's own region
    #: variables, so one `AWS_DEFAULT_REGION` configures the whole stack, else us-east-1.
    region: str = Field(
        default="us-east-1",
        validation_alias=AliasChoices(
            "DOMAINFLOW_NOTIFY_REGION", "AWS_REGION", "AWS_DEFAULT_REGION"
        ),
    )
    #: Optional link in every mail to where owners can see the domain, e.g.
    #: `https://app.example.com/domains`.
    dashboard_url: str | None = Field(
        default=None, validation_alias="DOMAINFLOW_NOTIFY_DASHBOARD_URL"
    )

    @field_validator("dashboard_url")
    @classmethod
    def _http_only(cls, value: str | None) -> str | None:
        # The URL becomes an href: anything but http(s) (javascript:, data:) is refused here.
        if not value:
            return None
        if not value.startswith(("https://", "http://")):
            raise ValueError("DOMAINFLOW_NOTIFY_DASHBOARD_URL must be an http(s) URL")
        return value


class NotifierRetentionSettings(RetentionSettings):
    #: Days a settled notification (`sent` or `rejected`) is kept in the log. A redelivered
    #: transition that old cannot arrive (inboxes keep a week), so only the audit trail is
    #: lost; `sending` and `unconfirmed` rows are never trimmed: each waits for an operator.
    notification_days: float = Field(
        default=365.0, gt=0, validation_alias="DOMAINFLOW_NOTIFICATION_RETENTION_DAYS"
    )


class NotifierSettings(ServiceSettings):
    database: NotifierDatabaseSettings = Field(default_factory=NotifierDatabaseSettings)
    health: NotifierHealthSettings = Field(default_factory=NotifierHealthSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    retention: NotifierRetentionSettings = Field(default_factory=NotifierRetentionSettings)
