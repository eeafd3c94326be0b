"""Each event's JSON schema, and what of a released one a new build would break.

The schemas of the last release are committed under `docs/schemas/` (one file per event
type and version). A build may add fields, optional or not read by anyone yet; it may not
remove or rename a field the released schema required, anywhere in the event, because a
reader of that release would then refuse the event (or read it wrongly).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from domainflow.contracts import EVENT_TYPES, SUPERSEDED


def event_schemas() -> dict[str, dict[str, Any]]:
    """`{"domain.status_changed.v2": schema, ...}` for every event this build writes,
    older versions still published beside their successor included."""
    return {
        f"{cls.TYPE}.v{cls.VERSION}": cls.model_json_schema(mode="serialization")
        for cls in sorted((*EVENT_TYPES.values(), *SUPERSEDED), key=lambda c: (c.TYPE, c.VERSION))
    }


def _objects(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The schema's object definitions by where they sit: the event itself and each `$defs`."""
    found = {"(event)": schema}
    found.update({f"$defs/{name}": d for name, d in schema.get("$defs", {}).items()})
    return found


def broken_fields(released: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Fields `released` required that `current` no longer has, or no longer requires."""
    problems: list[str] = []
    now = _objects(current)
    for where, old in _objects(released).items():
        new = now.get(where)
        for name in old.get("required", []):
            if new is None or name not in new.get("properties", {}):
                problems.append(f"{where}: required field {name!r} was removed or renamed")
            elif name not in new.get("required", []):
                problems.append(f"{where}: field {name!r} is no longer required")
    return problems


def write_snapshots(directory: Path) -> None:
    """Commit this build's schemas as the released ones (run when cutting a release)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, schema in event_schemas().items():
        text = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        (directory / f"{name}.json").write_text(text, encoding="utf-8")
