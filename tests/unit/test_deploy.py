"""The deploy artefacts are usable as they are: the systemd units verify, the Dockerfile
passes hadolint, the compose file is valid against the Compose specification's schema."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("api", "provisioner", "verifier", "notifier")
#: The Compose specification's JSON schema (compose-spec/compose-spec, schema/compose-spec.json,
#: Apache-2.0), kept as data: no container engine or network is needed to check the file.
COMPOSE_SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
INSTALLED = "/opt/domainflow/bin/domainflow"


def _verify(unit_dir: Path, instance: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(unit_dir / instance)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _render(service: str, into: Path, executable: str) -> None:
    """The unit as installed, its ExecStart pointing at `executable` (verify checks it exists)."""
    unit = (DEPLOY / "systemd" / f"domainflow-{service}@.service").read_text()
    assert INSTALLED in unit
    (into / f"domainflow-{service}@.service").write_text(unit.replace(INSTALLED, executable))


needs_systemd = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here"
)


@needs_systemd
@pytest.mark.parametrize("service", SERVICES)
def test_each_unit_template_verifies_as_two_replicas(service: str, tmp_path: Path) -> None:
    _render(service, tmp_path, str(Path(sys.executable).parent / "domainflow"))
    for instance in ("8100", "8110"):
        done = _verify(tmp_path, f"domainflow-{service}@{instance}.service")
        # verify exits 0 on a unit it only warns about: a warning is a failure here.
        assert (done.returncode, done.stderr) == (0, "")


@needs_systemd
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    _render("api", tmp_path, "/nonexistent/domainflow")
    done = _verify(tmp_path, "domainflow-api@8000.service")
    assert done.returncode != 0
    assert "not executable" in done.stderr


def test_each_unit_runs_its_own_service_on_the_instance_port() -> None:
    for service in SERVICES:
        unit = (DEPLOY / "systemd" / f"domainflow-{service}@.service").read_text()
        assert f"ExecStart={INSTALLED} serve {service}\n" in unit
        port = "API_PORT" if service == "api" else f"{service.upper()}_HEALTH_PORT"
        assert f"Environment=DOMAINFLOW_{port}=%i\n" in unit
    # The api's /metrics on an operator port of each replica's own (18000 for 8000).
    api = (DEPLOY / "systemd" / "domainflow-api@.service").read_text()
    assert "Environment=DOMAINFLOW_API_METRICS_PORT=1%i\n" in api


def _hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    return subprocess.run(
        [hadolint, "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_dockerfile_passes_hadolint() -> None:
    done = _hadolint(DEPLOY / "container" / "Dockerfile")
    assert (done.returncode, done.stdout) == (0, "")


def test_hadolint_catches_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN pip install domainflow\n")
    done = _hadolint(careless)
    assert done.returncode != 0
    assert "DL3006" in done.stdout  # an untagged base image


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "container" / "compose.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _compose_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(COMPOSE_SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert _compose_errors(_compose()) == []


def test_the_schema_catches_a_wrong_compose_file() -> None:
    broken = copy.deepcopy(_compose())
    broken["services"]["verifier"]["depends_on"] = 5
    broken["services"]["api"]["restart_policy"] = "always"
    assert len(_compose_errors(broken)) == 2


def test_the_compose_file_runs_every_service_on_the_shared_servers() -> None:
    services = _compose()["services"]
    for service in SERVICES:
        assert services[service]["command"] == ["serve", service]
        environment = services[service]["environment"]
        assert environment["DOMAINFLOW_AMQP_URL"].startswith("amqp://")
        assert "@postgres:5432/" in environment[f"DOMAINFLOW_{service.upper()}_DATABASE_URL"]
    assert {"postgres", "rabbitmq"} <= services.keys()
    assert services["moto"]["profiles"] == ["sandbox"]
