"""Handlers: Backstage's distributed actions protocol (list, invoke v1 raw input, invoke v2 with secrets)."""

from collections.abc import Iterator, Mapping
from typing import Any

from backend.api.context import json_response, requester, services
from backend.errors import FieldError, PolicyViolation
from backend.services.runner import RunRequest

SECRET_IN_INPUT_RULE = "no-secrets-in-input"  # noqa: S105 - a rule name
# Shorter secrets are still masked wherever a run is recorded, but too likely to occur by chance to refuse on.
_MIN_POLICED_SECRET = 8


def list_actions() -> tuple[dict[str, Any], int, dict[str, str]]:
    return json_response({"actions": services().action_descriptions()}, 200)


def invoke_v1(actionId: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:  # noqa: N803
    return _invoke(actionId, body, secrets={})


def invoke_v2(actionId: str, body: dict[str, Any]) -> tuple[dict[str, Any], int, dict[str, str]]:  # noqa: N803
    return _invoke(actionId, body["input"], secrets=body.get("secrets") or {})


def _invoke(
    action_id: str, data: dict[str, Any], *, secrets: dict[str, str]
) -> tuple[dict[str, Any], int, dict[str, str]]:
    if problems := list(secrets_in_input(data, secrets)):
        raise PolicyViolation.of(problems)
    record = services().runner.run(RunRequest(
        action_id=action_id, input=data, requester=requester(), secrets=secrets,
        context={"via": "backstage-distributed-actions"},
    ))
    return json_response({"output": record["output"]}, 200)


def secrets_in_input(data: Any, secrets: Mapping[str, Any], path: str = "") -> Iterator[FieldError]:
    """Input that carries a secret's value (a template that copies `${{ secrets.x }}` into a description or a
    skeleton value): masked in the run record, it would still be written in the clear wherever the input goes (a
    repository's files, the catalog). The message names the field and the secret, never the value."""
    if isinstance(data, str):
        for name, value in secrets.items():
            if isinstance(value, str) and len(value) >= _MIN_POLICED_SECRET and value in data:
                yield FieldError(path or "input", f"holds the value of secret {str(name)[:100]!r}: pass a secret only "
                                 "in secrets, never in input", SECRET_IN_INPUT_RULE)
    elif isinstance(data, Mapping):
        for key, value in data.items():
            named = f"{path}.{key}" if path else str(key)
            if any(isinstance(s, str) and len(s) >= _MIN_POLICED_SECRET and s in str(key) for s in secrets.values()):
                named = f"{path}.<a key>" if path else "<a key>"
                yield FieldError(named, "a key holds the value of a secret", SECRET_IN_INPUT_RULE)
            yield from secrets_in_input(value, secrets, named)
    elif isinstance(data, list | tuple):
        for index, item in enumerate(data):
            yield from secrets_in_input(item, secrets, f"{path}.{index}" if path else str(index))
