"""`domainflow sandbox dns place|remove <domain>`: put a domain's records in the sandbox resolver.

Places exactly the records the API returns for the domain, so the quickstart can go from
"add a domain" to "verified" on one machine.
"""

from __future__ import annotations

import sys

from domainflow.cli.stack import state_dir


async def dns(action: str, domain: str) -> int:
    from domainflow.api.domain.events import records_for
    from domainflow.api.domain.names import DomainNameInvalid, normalize_domain
    from domainflow.api.settings import ApiSettings
    from domainflow.api.unit_of_work import PostgresUnitOfWork
    from domainflow.kit.database import Database
    from domainflow.sandbox.dns import DnsSandbox, SandboxError

    try:
        name = normalize_domain(domain)
    except DomainNameInvalid as bad:
        print(f"error: {bad.message}", file=sys.stderr)
        return 2
    state = state_dir() / "sandbox" / "dns"
    try:
        sandbox = DnsSandbox.attach(state)
    except SandboxError as missing:
        print(f"error: {missing}; start the stack with `make up` first", file=sys.stderr)
        return 1
    if action == "remove":
        sandbox.remove_domain(name)
        print(f"removed every record of {name} from the sandbox resolver")
        return 0
    settings = ApiSettings()
    db = await Database.connect(settings.database.url, size=1)
    try:
        async with PostgresUnitOfWork(db).read() as work:
            row = await work.domains.holding(name)
    finally:
        await db.close()
    if row is None:
        print(
            f"error: {name} has not been added; POST it to /api/v1/domains first", file=sys.stderr
        )
        return 1
    records = records_for(row, settings.records.rules)
    sandbox.place(records)
    print(f"placed the records of {name}: MX, SPF, DMARC, ownership TXT, {len(records.dkim)} DKIM")
    return 0
