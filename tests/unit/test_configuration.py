"""Every setting a service reads is in the README's configuration table, by its full name."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings

from domainflow.api.settings import ApiSettings
from domainflow.notifier.settings import NotifierSettings
from domainflow.provisioner.settings import ProvisionerSettings
from domainflow.verifier.settings import VerifierSettings

README = Path(__file__).resolve().parents[2] / "README.md"


def _documented() -> set[str]:
    text = README.read_text(encoding="utf-8")
    table = text.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(DOMAINFLOW_[A-Z0-9_]+)`", table))


@pytest.mark.parametrize(
    "settings", [ApiSettings, ProvisionerSettings, VerifierSettings, NotifierSettings]
)
def test_each_setting_is_in_the_readme_table(settings: type[BaseSettings]) -> None:
    prefix = settings.model_config.get("env_prefix", "")
    variables = {f"{prefix}{name}".upper() for name in settings.model_fields}
    assert variables - _documented() == set()


def test_the_table_names_no_setting_that_does_not_exist() -> None:
    read = {
        f"DOMAINFLOW_{name}".upper()
        for settings in (ApiSettings, ProvisionerSettings, VerifierSettings, NotifierSettings)
        for name in settings.model_fields
    }
    # The local stack's own variables are read by the CLI, not by a service.
    cli_only = {
        "DOMAINFLOW_STATE_DIR",
        "DOMAINFLOW_SANDBOX_SES_PORT",
        "DOMAINFLOW_SANDBOX_DOH_PORT",
        # deploy/rabbitmq-cluster.sh's
        "DOMAINFLOW_RABBITMQ_CLUSTER_DIR",
        "DOMAINFLOW_RABBITMQ_CLUSTER_NAME",
        "DOMAINFLOW_RABBITMQ_CLUSTER_PORTS",
        "DOMAINFLOW_RABBITMQ_CLUSTER_DIST_PORTS",
        "DOMAINFLOW_SANDBOX_SES_QUOTAS",
        "DOMAINFLOW_SANDBOX_SES_QUOTA_PORT",
    }
    assert _documented() - read - cli_only == set()
