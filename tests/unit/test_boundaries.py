"""Services import only the contracts and the kit, never each other (STYLE.md, Boundaries)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("api", "provisioner", "verifier", "notifier")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service(service: str) -> None:
    others = {f"domainflow.{s}" for s in SERVICES if s != service} | {"domainflow.cli"}
    sources = list((ROOT / "services" / service / "src").rglob("*.py"))
    assert sources, f"no sources found for {service}"
    offending = {
        f"{path.relative_to(ROOT)} imports {module}"
        for path in sources
        for module in imported_modules(path)
        if any(module == o or module.startswith(o + ".") for o in others)
    }
    assert not offending, sorted(offending)


def test_the_shared_libraries_import_no_service() -> None:
    services = {f"domainflow.{s}" for s in SERVICES}
    for path in (ROOT / "libs").rglob("*.py"):
        for module in imported_modules(path):
            assert not any(module == s or module.startswith(s + ".") for s in services), (
                f"{path.relative_to(ROOT)} imports {module}"
            )
