"""The lock files agree with pyproject.toml: every dependency pinned, in range and hashed."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")


def pins(lock: Path) -> dict[str, Version]:
    """Each `name==version` of a pip-compile lock, by canonical name."""
    found: dict[str, Version] = {}
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            found[canonicalize_name(match[1])] = Version(match[2])
    return found


def hashed(lock: Path) -> dict[str, bool]:
    """Whether each pinned entry carries at least one `--hash`."""
    entries: dict[str, bool] = {}
    current = ""
    for line in lock.read_text().splitlines():
        match = PIN.match(line)
        if match:
            current = canonicalize_name(match[1])
            entries[current] = False
        elif current and line.strip().startswith("--hash=sha256:"):
            entries[current] = True
    return entries


def declared(extra: str | None = None) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    if extra is None:
        return [Requirement(r) for r in project["dependencies"]]
    return [Requirement(r) for r in project["optional-dependencies"][extra]]


def disagreements(requirements: list[Requirement], locked: dict[str, Version]) -> list[str]:
    problems = []
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{requirement.name} is not in the lock")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{requirement.name}=={locked[name]} is outside {requirement}")
    return problems


@pytest.mark.parametrize(
    ("lock", "extras"),
    [("requirements.txt", [None]), ("requirements-dev.txt", [None, "dev"])],
)
def test_every_pyproject_dependency_is_pinned_in_range(lock: str, extras: list[str | None]) -> None:
    locked = pins(ROOT / lock)
    wanted = [r for extra in extras for r in declared(extra)]
    assert disagreements(wanted, locked) == [], f"run `make lock`: {lock} disagrees"


@pytest.mark.parametrize("lock", ["requirements.txt", "requirements-dev.txt"])
def test_every_pin_carries_a_hash(lock: str) -> None:
    unhashed = [name for name, ok in hashed(ROOT / lock).items() if not ok]
    assert hashed(ROOT / lock)
    assert unhashed == []


def test_the_runtime_lock_pins_what_the_dev_lock_pins() -> None:
    runtime, dev = pins(ROOT / "requirements.txt"), pins(ROOT / "requirements-dev.txt")
    differ = {n: (v, dev.get(n)) for n, v in runtime.items() if dev.get(n) != v}
    assert differ == {}, "production would run other versions than the tests"


def test_moto_and_aioboto3_run_on_the_botocore_aiobotocore_accepts() -> None:
    """moto answers 404 to request shapes of a botocore newer than its own; one pinned
    botocore, inside aiobotocore's range, keeps the SES sandbox and the client in step."""
    dev = pins(ROOT / "requirements-dev.txt")
    assert {"moto", "aioboto3", "aiobotocore", "botocore"} <= dev.keys()
    wanted = [Requirement(r) for r in requires("aiobotocore") or []]
    botocore = next(r for r in wanted if canonicalize_name(r.name) == "botocore" and not r.marker)
    assert botocore.specifier.contains(dev["botocore"])


def test_a_missing_dependency_is_reported() -> None:
    locked = {"litestar": Version("2.25.0")}
    problems = disagreements([Requirement("litestar>=3"), Requirement("absent>=1")], locked)
    assert problems == ["litestar==2.25.0 is outside litestar>=3", "absent is not in the lock"]
