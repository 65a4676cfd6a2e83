"""What the survival tests run: the built-in actions, and one whose input carries a secret."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from backend.plugin_api import Action, ActionContext, ActionInput, Requester, SecretPathSpec
from backend.services.registry import ActionRegistry, builtin_actions

ALICE = Requester(user="user:default/alice", caller="token:ci", groups=frozenset({"group:default/team-payments"}))
SECRET_ACTION = "goldenpath:test:secret-input"


class SecretInput(ActionInput):
    service = fields.String(required=True)
    owner = fields.String(required=True)
    apiToken = fields.String(required=True, metadata={"secret": True})


class Done(Schema):
    done = fields.Boolean(required=True)


def _run(ctx: ActionContext) -> dict[str, Any]:
    secrets, _ = ctx.providers.require_secrets()
    change = secrets.ensure_secret_path(SecretPathSpec(
        mount="secret", path=f"survival/{ctx.input['service']}", keys=("TOKEN",),
        custom_metadata={"goldenpath.owner": str(ctx.owner)}, owner_key="goldenpath.owner", max_versions=5),
        dry_run=ctx.dry_run)
    ctx.record(change)
    return {"done": True}


def registry() -> ActionRegistry:
    secret = Action(id=SECRET_ACTION, title="Secret input", description="Writes a path; its input has a secret.",
                    input_schema=SecretInput, output_schema=Done, run=_run)
    return ActionRegistry([*builtin_actions(), secret])
