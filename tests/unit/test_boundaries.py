"""Services import only the contracts and the kit, never each other (STYLE.md, Boundaries)."""

from __future__ import annotations

import ast
import re
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


# --- the api's layers (issue: use cases speak the domain, never HTTP) ------------------------

API = ROOT / "services" / "api" / "src" / "domainflow" / "api"
CONSUMERS = "domainflow.api.handlers"
_SQL = re.compile(
    r"^\s*(SELECT\s.*\b(FROM|true|false|\d)\b|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM"
    r"|WITH\s+\w+\s+AS)",
    re.IGNORECASE | re.DOTALL,
)
_HTTP_STATUSES = {200, 201, 202, 204, 304, 400, 401, 403, 404, 409, 413, 422, 429, 500, 502, 503}
_HTTP_HEADERS = {"location", "retry-after", "etag", "if-match", "if-none-match", "idempotency-key"}


def api_modules() -> list[Path]:
    modules = sorted(API.rglob("*.py"))
    assert modules, "no api sources found"
    return modules


def strings_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]


def test_only_the_entrypoint_imports_the_consumers() -> None:
    importers = {
        str(path.relative_to(API)) for path in api_modules() if CONSUMERS in imported_modules(path)
    }
    assert importers == {"entrypoints.py"}


def test_sql_lives_only_in_repositories() -> None:
    offending = {
        f"{path.relative_to(API)}: {text.strip()[:40]!r}"
        for path in api_modules()
        if path.name != "repository.py"
        for text in strings_in(path)
        if _SQL.match(text)
    }
    assert not offending, sorted(offending)


@pytest.mark.parametrize("use_cases", sorted(API.glob("*/service.py")), ids=lambda p: p.parent.name)
def test_use_cases_know_no_http(use_cases: Path) -> None:
    modules = imported_modules(use_cases)
    assert not {m for m in modules if m.startswith(("litestar", "domainflow.api.http"))}
    tree = ast.parse(use_cases.read_text(encoding="utf-8"))
    numbers = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and type(node.value) is int
    }
    assert not numbers & _HTTP_STATUSES, "a use case names an HTTP status"
    assert not {s.lower() for s in strings_in(use_cases)} & _HTTP_HEADERS, "names an HTTP header"


def test_no_function_in_the_api_is_longer_than_sixty_lines() -> None:
    long = {
        f"{path.relative_to(API)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
        for path in api_modules()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > 60
    }
    assert not long, sorted(long)


def test_the_checks_above_would_see_a_violation(tmp_path: Path) -> None:
    """The detectors themselves: SQL, HTTP statuses and long functions are found when present."""
    sample = tmp_path / "service.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(61))
    sample.write_text(
        f'import litestar\nQ = "SELECT 1"\nS = 404\nH = "Retry-After"\ndef long():\n{body}\n',
        encoding="utf-8",
    )
    assert any(_SQL.match(s) for s in strings_in(sample))
    assert "litestar" in imported_modules(sample)
    assert "retry-after" in {s.lower() for s in strings_in(sample)}
    tree = ast.parse(sample.read_text(encoding="utf-8"))
    function = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef))
    assert function.end_lineno is not None
    assert function.end_lineno - function.lineno + 1 > 60
