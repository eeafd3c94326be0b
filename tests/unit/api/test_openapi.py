"""The committed OpenAPI document is the one the api generates, and it says what the edge does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from domainflow.api.http import problems
from domainflow.api.http.openapi import DOMAIN_PATTERN, ERROR_CODES, OPERATIONS
from domainflow.cli.openapi import document

ROOT = Path(__file__).resolve().parents[3]


def _document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(document())
    return loaded


def test_the_committed_openapi_document_is_current() -> None:
    committed = (ROOT / "docs" / "openapi.json").read_text(encoding="utf-8")
    assert committed == document(), "run `make openapi` and commit the result"


def test_the_document_is_valid_openapi() -> None:
    validate(_document())


def test_every_operation_and_only_those_has_its_statuses() -> None:
    doc = _document()
    operations = {
        op["operationId"]: op
        for item in doc["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and "operationId" in op
    }
    assert set(operations) == set(OPERATIONS)
    for op_id, errors in OPERATIONS.items():
        documented = {int(s) for s in operations[op_id]["responses"]}
        assert set(errors) <= documented, op_id
        assert operations[op_id]["security"] == [{"bearerAuth": []}]


def test_every_public_code_the_edge_answers_is_in_the_enum() -> None:
    detail = _document()["components"]["schemas"]["ErrorDetail"]
    assert detail["properties"]["code"]["enum"] == ERROR_CODES
    answered = {problems.public_code(s, r) for s in range(400, 600) for r in ("x", "x_missing")}
    answered.add(problems.public_code(409, "idempotency_key_reused"))
    assert answered <= set(ERROR_CODES)


def test_names_are_readable_and_every_ref_resolves() -> None:
    doc = _document()
    names = set(doc["components"]["schemas"])
    assert not [n for n in names if "." in n or n.endswith("View")]
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    for ref in refs:
        _, section, name = ref.removeprefix("#/").split("/")
        assert name in doc["components"][section], ref


def test_create_domain_says_what_the_runtime_checks() -> None:
    create = _document()["components"]["schemas"]["CreateDomain"]
    assert create["properties"]["domain"]["pattern"] == DOMAIN_PATTERN
    assert create["properties"]["mode"]["enum"] == ["send_only", "send_receive"]
    assert create["required"] == ["domain"]
    assert "(?=" not in DOMAIN_PATTERN


def test_every_example_of_an_answer_is_valid_against_its_schema() -> None:
    doc = _document()
    registry: Registry[Any] = Registry().with_resource(
        "urn:doc", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    checked = 0
    for path, item in doc["paths"].items():
        for method, op in item.items():
            for status, answer in op.get("responses", {}).items():
                if "$ref" in answer:
                    continue
                for media, content in answer.get("content", {}).items():
                    if "example" not in content:
                        continue
                    pointer = "/".join(
                        p.replace("~", "~0").replace("/", "~1")
                        for p in ("paths", path, method, "responses", status, "content", media)
                    )
                    schema = {"$ref": f"urn:doc#/{pointer}/schema"}
                    Draft202012Validator(schema, registry=registry).validate(content["example"])
                    checked += 1
    for name, answer in doc["components"]["responses"].items():
        example = answer["content"]["application/json"]["example"]
        schema = {"$ref": "urn:doc#/components/schemas/ErrorResponse"}
        Draft202012Validator(schema, registry=registry).validate(example)
        checked += bool(name)
    assert checked >= 3 + len(doc["components"]["responses"])
