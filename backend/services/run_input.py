"""A run's input: loaded against the action's schema (every problem named by field), owners canonical, secrets
masked, and the digest that identifies the request for idempotency."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from marshmallow import Schema, ValidationError

from backend.errors import FieldError, InputError, RunFailedError
from backend.ownership import canonical_ref
from backend.plugin_api import Action
from backend.redaction import MASK


def canonical_owner(action: Action, data: dict[str, Any]) -> dict[str, Any]:
    """Owners are compared as full entity refs: `team-a` and `group:default/team-a` are one owner."""
    owner = data.get(action.owner_field) if action.owner_field else None
    if isinstance(owner, str):
        try:
            return {**data, str(action.owner_field): canonical_ref(owner)}
        except ValueError:
            raise InputError.for_field(str(action.owner_field), "must be an entity ref") from None
    return data


def load_input(schema: type[Schema], raw: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(raw, Mapping):
        raise InputError.for_field("input", "must be a JSON object")
    try:
        loaded: dict[str, Any] = schema().load(raw)
    except ValidationError as exc:
        errors = list(field_errors(exc.messages))
        summary = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
        raise InputError(f"invalid input: {summary}", errors) from None
    return loaded


def field_errors(messages: Any, prefix: str = "") -> list[FieldError]:
    if isinstance(messages, dict):
        out: list[FieldError] = []
        for key, value in messages.items():
            name = "input" if key == "_schema" and not prefix else f"{prefix}{key}"
            out.extend(field_errors(value, f"{name}."))
        return out
    path = prefix.rstrip(".") or "input"
    items = messages if isinstance(messages, list) else [messages]
    return [FieldError(path, _plain(str(m))) for m in items]


_PLAIN_MESSAGES = {"Unknown field.": "is not a known field", "Missing data for required field.": "is required",
                   "Field may not be null.": "may not be null"}


def _plain(message: str) -> str:
    return _PLAIN_MESSAGES.get(message, message)


def secret_fields(schema: type[Schema]) -> list[str]:
    return [name for name, f in schema().fields.items() if f.metadata.get("secret")]


def secret_inputs(schema: type[Schema], data: Mapping[str, Any]) -> list[str]:
    return [str(data[name]) for name in secret_fields(schema) if data.get(name)]


def mask_secrets(schema: type[Schema], data: Mapping[str, Any]) -> dict[str, Any]:
    hidden = set(secret_fields(schema))
    return {key: (MASK if key in hidden else value) for key, value in data.items()}


def input_digest(schema: type[Schema], data: Mapping[str, Any], *, dry_run: bool) -> str:
    hidden = set(secret_fields(schema))
    visible = {k: v for k, v in data.items() if k not in hidden}
    canonical = json.dumps({"input": visible, "dryRun": dry_run}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_output(action: Action, output: Any) -> None:
    problems = action.output_schema().validate(output) if isinstance(output, dict) else {"_schema": ["not a dict"]}
    if problems:
        raise RunFailedError(f"{action.id} returned output that breaks its own schema: {sorted(problems)}")
