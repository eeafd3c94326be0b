"""Create and migrate each service's own database (each service also does so as it starts)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.resources import files

from domainflow.kit.database import Database, migration_files
from domainflow.kit.runtime import kit_migrations

#: service -> (settings class, database URL field)
DATABASES: dict[str, tuple[str, str]] = {
    "api": ("domainflow.api.settings:ApiSettings", "api_database_url"),
    "provisioner": (
        "domainflow.provisioner.settings:ProvisionerSettings",
        "provisioner_database_url",
    ),
    "verifier": ("domainflow.verifier.settings:VerifierSettings", "verifier_database_url"),
    "notifier": ("domainflow.notifier.settings:NotifierSettings", "notifier_database_url"),
}


def database_url(service: str) -> str:
    dotted, field = DATABASES[service]
    module, _, name = dotted.partition(":")
    settings = getattr(importlib.import_module(module), name)()
    return str(getattr(settings, field))


def service_migrations(service: str) -> list[tuple[str, str]]:
    """(version, sql) of every migration a service's database gets: the kit's, then its own."""
    return [*kit_migrations(), *migration_files(files(f"domainflow.{service}") / "migrations")]


async def migrate_services(services: Iterable[str]) -> None:
    wanted = list(services)
    for service in wanted:
        db = await Database.prepare(database_url(service), service_migrations(service), size=1)
        await db.close()
        print(f"{service}: migrated {database_url(service)}")
    if set(wanted) & {"provisioner", "verifier", "notifier"}:  # the services that call SES
        from domainflow.kit.ses_budget import open_budget_database
        from domainflow.kit.settings import ServiceSettings

        url = ServiceSettings().ses_budget_database_url
        budget = await open_budget_database(url, size=1)
        await budget.close()
        print(f"ses budget: migrated {url}")
