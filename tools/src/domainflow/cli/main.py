"""The `domainflow` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import Sequence

SERVICES = ("api", "provisioner", "verifier", "notifier")


def _serve(service: str) -> int:
    if service == "api":
        from domainflow.api.main import run as run_api

        run_api()
    elif service == "provisioner":
        from domainflow.provisioner.main import run as run_provisioner

        run_provisioner()
    elif service == "verifier":
        from domainflow.verifier.main import run as run_verifier

        run_verifier()
    else:
        from domainflow.notifier.main import run as run_notifier

        run_notifier()
    return 0


async def _api_db() -> object:
    from domainflow.api.app import api_migrations
    from domainflow.api.settings import ApiSettings
    from domainflow.kit.database import Database
    from domainflow.kit.runtime import kit_migrations

    settings = ApiSettings()
    return await Database.prepare(
        settings.database.url, [*kit_migrations(), *api_migrations()], size=2
    )


async def _keys(args: argparse.Namespace) -> int:
    from domainflow.api.settings import ApiSettings
    from domainflow.api.teams import service as teams
    from domainflow.api.unit_of_work import PostgresUnitOfWork
    from domainflow.kit.database import Database

    db = await _api_db()
    assert isinstance(db, Database)
    uow = PostgresUnitOfWork(db)
    try:
        if args.keys_command == "create":
            try:
                key = await teams.create_key(
                    uow,
                    team=args.team,
                    owner_email=args.owner_email,
                    role=args.role,
                    prefix=ApiSettings().keys.prefix,
                )
            except ValueError as bad:
                print(f"error: {bad}", file=sys.stderr)
                return 2
            print(key.plaintext)
            print(
                f"key {key.key_id} for team {key.team_name} ({key.team_public_id}),"
                f" role {key.role}. Shown once: store it now.",
                file=sys.stderr,
            )
        elif args.keys_command == "list":
            for row in await teams.list_keys(uow, args.team):
                print(json.dumps(dataclasses.asdict(row), default=str))
        elif args.keys_command == "revoke":
            if not await teams.revoke_key(uow, args.key_id):
                print(f"error: no active key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
    finally:
        await db.close()
    return 0


async def _members(args: argparse.Namespace) -> int:
    from domainflow.api.teams import service as teams
    from domainflow.api.unit_of_work import PostgresUnitOfWork
    from domainflow.kit.database import Database

    db = await _api_db()
    assert isinstance(db, Database)
    try:
        if not await teams.add_member(
            PostgresUnitOfWork(db), team=args.team, email=args.email, role=args.role
        ):
            print(f"error: no team named {args.team!r}", file=sys.stderr)
            return 1
    finally:
        await db.close()
    print(f"{args.email} is now {args.role} of {args.team}")
    return 0


async def _domains(args: argparse.Namespace) -> int:
    from domainflow.api.domain.errors import Refused
    from domainflow.api.domains import operators
    from domainflow.api.settings import ApiSettings
    from domainflow.api.unit_of_work import PostgresUnitOfWork
    from domainflow.cli.operators import holding_view
    from domainflow.kit.database import Database

    db = await _api_db()
    assert isinstance(db, Database)
    uow = PostgresUnitOfWork(db)
    try:
        if args.domains_command == "show":
            held = await operators.holder(uow, args.domain)
            print(json.dumps(holding_view(held), indent=2))
            return 0
        domain_id = await operators.release(uow, ApiSettings(), args.domain, reason=args.reason)
    except (operators.NameNotHeldError, ValueError) as missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    except Refused as refused:
        print(f"error: {refused.message}", file=sys.stderr)
        return 1
    finally:
        await db.close()
    print(
        f"releasing {args.domain} ({domain_id}): the provisioner removes it from SES and the "
        "mail server, then the name is free to add again"
    )
    return 0


async def _accounts() -> int:
    from dataclasses import asdict

    from domainflow.api.domains import operators
    from domainflow.api.settings import ApiSettings
    from domainflow.api.unit_of_work import PostgresUnitOfWork
    from domainflow.kit.database import Database

    db = await _api_db()
    assert isinstance(db, Database)
    try:
        usage = await operators.accounts_usage(PostgresUnitOfWork(db), ApiSettings())
    finally:
        await db.close()
    print(json.dumps([asdict(u) for u in usage], indent=2))
    return 0


async def _migrate(services: Sequence[str]) -> int:
    from domainflow.cli.migrations import migrate_services

    await migrate_services(services or SERVICES)
    return 0


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="domainflow", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run one replica of a service in the foreground")
    serve.add_argument("service", choices=SERVICES)

    migrate = sub.add_parser("migrate", help="create and migrate the services' databases")
    migrate.add_argument("services", nargs="*", metavar="SERVICE", help=", ".join(SERVICES))

    stack = sub.add_parser("stack", help="the whole local stack with its sandboxes")
    stack.add_argument("action", choices=("run", "up", "down", "status"))

    keys = sub.add_parser("keys", help="API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="issue a key (creating the team if new)")
    create.add_argument("--team", required=True)
    create.add_argument("--owner-email", help="an owner of the team, emailed when a domain breaks")
    create.add_argument("--role", default="root:full", help="root:full or root:readonly")
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--team")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by its id")
    revoke.add_argument("key_id")

    members = sub.add_parser("members", help="team members")
    members_sub = members.add_subparsers(dest="members_command", required=True)
    add = members_sub.add_parser("add", help="add or change a member")
    add.add_argument("--team", required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--role", choices=("owner", "member"), default="owner")

    sandbox = sub.add_parser("sandbox", help="the local sandboxes")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    dns = sandbox_sub.add_parser("dns", help="the sandbox DNS resolver")
    dns.add_argument("action", choices=("place", "remove"))
    dns.add_argument("domain")

    letters = sub.add_parser(
        "dead-letters", help="messages a consumer gave up on: list, show, replay after a fix"
    )
    letters.add_argument("action", choices=("list", "show", "replay"))
    letters.add_argument("queue", nargs="?", help="a consumer queue, with or without .dlq")
    letters.add_argument("--limit", type=_positive, help="at most this many messages")

    subscribers = sub.add_parser(
        "subscribers", help="platform teams reading domain events from RabbitMQ"
    )
    subscribers_sub = subscribers.add_subparsers(dest="subscribers_command", required=True)
    subscriber_add = subscribers_sub.add_parser(
        "add", help="a read-only user and a queue of its own, bound to the public events"
    )
    subscriber_add.add_argument("name", help="lower-case letters, digits, hyphens")
    subscriber_add.add_argument(
        "--max-length",
        type=_positive,
        default=100_000,
        help="events the queue holds before the oldest are dropped (default 100000)",
    )

    domains = sub.add_parser("domains", help="operators: who holds a name; take a name back")
    domains_sub = domains.add_subparsers(dest="domains_command", required=True)
    show = domains_sub.add_parser("show", help="the team holding a name, its state, its timeline")
    show.add_argument("domain")
    release = domains_sub.add_parser(
        "release", help="delete the domain holding a name, whichever team holds it"
    )
    release.add_argument("domain")
    release.add_argument("--reason", required=True, help="why: it goes on the domain's timeline")

    sub.add_parser(
        "accounts", help="operators: each SES account's identities per region, beside its cap"
    )

    doctor = sub.add_parser(
        "doctor", help="check databases, RabbitMQ, SES, the sender and DoH; say what to fix"
    )
    doctor.add_argument("--json", action="store_true", help="findings as JSON")

    sub.add_parser("asyncapi", help="print the AsyncAPI document of every event")
    sub.add_parser("openapi", help="print the api's OpenAPI document (as /schema serves it)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command not in ("serve", "stack"):
        from domainflow.kit.logging import configure_logging

        configure_logging("WARNING", "console")  # stdout is for what the command prints
    if args.command == "serve":
        return _serve(args.service)
    if args.command == "migrate":
        return asyncio.run(_migrate(args.services))
    if args.command == "keys":
        return asyncio.run(_keys(args))
    if args.command == "members":
        return asyncio.run(_members(args))
    if args.command == "stack":
        from domainflow.cli import stack

        return stack.main(args.action)
    if args.command == "sandbox":
        from domainflow.cli import sandbox

        return asyncio.run(sandbox.dns(args.action, args.domain))
    if args.command == "dead-letters":
        from domainflow.cli import dead_letters

        return asyncio.run(dead_letters.main(args.action, args.queue, args.limit))
    if args.command == "subscribers":
        from domainflow.cli import subscribers as subscribers_command

        return asyncio.run(subscribers_command.add(args.name, args.max_length))
    if args.command == "domains":
        return asyncio.run(_domains(args))
    if args.command == "accounts":
        return asyncio.run(_accounts())
    if args.command == "doctor":
        from domainflow.cli import doctor as doctor_command

        return asyncio.run(doctor_command.main(args.json))
    if args.command == "asyncapi":
        from domainflow.cli.asyncapi import document

        print(document())
        return 0
    if args.command == "openapi":
        from domainflow.cli.openapi import document as openapi_document

        print(openapi_document(), end="")
        return 0
    return 2
