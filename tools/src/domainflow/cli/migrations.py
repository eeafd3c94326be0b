"""Create and migrate each service's own database (each service also does so as it starts)."""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from importlib.resources import files

from domainflow.kit.database import Database, migration_files
from domainflow.kit.runtime import kit_migrations

#: service -> its settings class, whose `database.url` is the service's database
DATABASES: dict[str, str] = {
    "api": "domainflow.api.settings:ApiSettings",
    "provisioner": "domainflow.provisioner.settings:ProvisionerSettings",
    "verifier": "domainflow.verifier.settings:VerifierSettings",
    "notifier": "domainflow.notifier.settings:NotifierSettings",
}


def database_url(service: str) -> str:
    module, _, name = DATABASES[service].partition(":")
    settings = getattr(importlib.import_module(module), name)()
    return str(settings.database.url)


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

        url = ServiceSettings().ses.budget_database_url
        budget = await open_budget_database(url, size=1)
        await budget.close()
        print(f"ses budget: migrated {url}")
