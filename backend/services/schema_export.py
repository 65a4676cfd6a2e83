"""Marshmallow schemas published as JSON Schema draft-07 (what Backstage and the REST API show)."""

from __future__ import annotations

from typing import Any

import yaml
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from marshmallow import Schema

from backend.plugin_api import Action

DRAFT_07 = "http://json-schema.org/draft-07/schema#"


def json_schema(schema: type[Schema]) -> dict[str, Any]:
    # A resolver answering None makes apispec inline nested schemas instead of emitting $refs.
    plugin = MarshmallowPlugin(schema_name_resolver=lambda _schema: None)  # type: ignore[arg-type,return-value]
    APISpec("goldenpath", "1", "3.0.3", plugins=[plugin])
    assert plugin.converter is not None
    converted: dict[str, Any] = plugin.converter.schema2jsonschema(schema)  # type: ignore[no-untyped-call]
    document = _to_draft07(converted)
    _mark_secrets(schema(), document)
    return {"$schema": DRAFT_07, **document}


def describe(action: Action) -> dict[str, Any]:
    """The action as the REST API and Backstage's distributed-actions protocol publish it."""
    return {
        "id": action.id,
        "name": action.name,
        "title": action.title,
        "description": action.description,
        "pluginId": action.plugin_id,
        "attributes": {
            "readOnly": action.read_only,
            "idempotent": action.idempotent,
            "destructive": action.destructive,
        },
        "supportsDryRun": action.supports_dry_run,
        "schema": {"input": json_schema(action.input_schema), "output": json_schema(action.output_schema)},
        "examples": [
            {"description": ex.description, "example": _template_step_yaml(action, ex.input)}
            for ex in action.examples
        ],
    }


def _template_step_yaml(action: Action, example_input: dict[str, Any]) -> str:
    step = {"steps": [{"id": action.name.replace(":", "-"), "action": action.id, "input": example_input}]}
    return yaml.safe_dump(step, sort_keys=False)


def _to_draft07(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` is not JSON Schema: turn it into a type union."""
    if isinstance(node, list):
        return [_to_draft07(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _to_draft07(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _mark_secrets(schema: Schema, document: dict[str, Any]) -> None:
    for name, field in schema.fields.items():
        if field.metadata.get("secret") and name in document.get("properties", {}):
            document["properties"][name]["writeOnly"] = True
            document["properties"][name]["x-goldenpath-secret"] = True
