"""Test actions for tests/adversarial/test_attacks_survival.py: one that writes two Vault paths and waits between
them (for a gate the test opens), and one that reads what Backstage passes beside the input (ctx.secrets)."""

from __future__ import annotations

import threading
from typing import Any

from marshmallow import Schema, fields

from backend.plugin_api import Action, ActionContext, ActionInput, SecretPathSpec
from backend.services.registry import ActionRegistry
from tests.survival.actions import registry as survival_registry

SLOW_ACTION = "goldenpath:test:slow-two-paths"
CALLER_SECRETS_ACTION = "goldenpath:test:caller-secrets"
GATES: dict[str, threading.Event] = {}  # service -> opened by the test to let the run write its second path
ENTERED: dict[str, threading.Event] = {}  # service -> set once a run wrote its first path and waits
TRACE: list[tuple[str, str, int]] = []  # (event, service, attempt): when each attempt ran its body


class ServiceOwner(ActionInput):
    service = fields.String(required=True)
    owner = fields.String(required=True)


class Done(Schema):
    done = fields.Boolean(required=True)


def gate(service: str) -> threading.Event:
    return GATES.setdefault(service, threading.Event())


def entered(service: str) -> threading.Event:
    return ENTERED.setdefault(service, threading.Event())


def paths(service: str) -> tuple[str, str]:
    return f"survival/{service}/one", f"survival/{service}/two"


def _write(ctx: ActionContext, path: str) -> None:
    secrets, _ = ctx.providers.require_secrets()
    ctx.record(secrets.ensure_secret_path(SecretPathSpec(
        mount="secret", path=path, keys=("TOKEN",), custom_metadata={"goldenpath.owner": str(ctx.owner)},
        owner_key="goldenpath.owner", max_versions=5), dry_run=ctx.dry_run))


def _slow(ctx: ActionContext) -> dict[str, Any]:
    service = str(ctx.input["service"])
    attempt = int(ctx.log.lines[0]["message"].split()[1].rstrip(":")) if ctx.log.lines else 1
    TRACE.append(("enter", service, attempt))
    first, second = paths(service)
    _write(ctx, first)
    entered(service).set()
    gate(service).wait(timeout=30)
    _write(ctx, second)
    TRACE.append(("exit", service, attempt))
    return {"done": True}


def _caller_secrets(ctx: ActionContext) -> dict[str, Any]:
    if not ctx.secrets.get("backstageToken"):
        raise RuntimeError("needs the caller's backstageToken")
    _write(ctx, f"survival/{ctx.input['service']}/token")
    return {"done": True}


def registry() -> ActionRegistry:
    slow = Action(id=SLOW_ACTION, title="Slow", description="Writes a path, waits, writes another.",
                  input_schema=ServiceOwner, output_schema=Done, run=_slow)
    caller = Action(id=CALLER_SECRETS_ACTION, title="Caller secrets", description="Reads ctx.secrets.",
                    input_schema=ServiceOwner, output_schema=Done, run=_caller_secrets, uses_caller_secrets=True)
    return ActionRegistry([*survival_registry().all(), slow, caller])
