"""Suites over every action: schemas are valid draft-07, documented, strict; every example validates and runs."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml
from starlette.testclient import TestClient

from backend.services.registry import builtin_actions
from backend.services.schema_export import describe

ACTIONS = builtin_actions()
EXAMPLES = [(a, ex) for a in ACTIONS for ex in a.examples]


def _walk_objects(schema: dict[str, Any]) -> list[dict[str, Any]]:
    found = [schema] if schema.get("type") == "object" else []
    for prop in schema.get("properties", {}).values():
        found += _walk_objects(prop)
    if isinstance(schema.get("items"), dict):
        found += _walk_objects(schema["items"])
    return found


@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.id)
def test_published_schemas_are_strict_documented_draft07(action: Any) -> None:
    described = describe(action)
    for side in ("input", "output"):
        schema = described["schema"][side]
        jsonschema.Draft7Validator.check_schema(schema)
        # closed objects; a map (like skeleton `values`) may instead type its additional properties
        assert all(obj.get("additionalProperties", True) is not True for obj in _walk_objects(schema)), side
    for name, prop in described["schema"]["input"]["properties"].items():
        assert prop.get("title") and prop.get("description"), f"{action.id} input {name} lacks title/description"
    assert action.examples, f"{action.id} has no examples"


@pytest.mark.parametrize(("action", "example"), EXAMPLES, ids=lambda x: getattr(x, "id", None) or x.description)
def test_every_example_validates_and_dry_runs(action: Any, example: Any, client: TestClient) -> None:
    jsonschema.validate(example.input, describe(action)["schema"]["input"])
    published = describe(action)["examples"]
    step = yaml.safe_load(next(e["example"] for e in published if e["description"] == example.description))
    assert step["steps"][0]["action"] == action.id and step["steps"][0]["input"] == example.input
    if action.id == "goldenpath:platform:service:verify":  # verifies what was made: make the example's service
        register = next(a for a in ACTIONS if a.id == "goldenpath:catalog:service:register").examples[0].input
        made = client.post("/api/v1/actions/goldenpath:catalog:service:register/runs",
                           json={"input": {**register, "service": example.input["service"]}})
        assert made.status_code == 201, made.text
    response = client.post(f"/api/v1/actions/{action.id}/runs", json={"input": example.input, "dryRun": True})
    assert response.status_code == 201, response.text
    jsonschema.validate(response.json()["output"], describe(action)["schema"]["output"])
