"""What the end-to-end tests read from a task and from the backends: the wizard's values, the task log, Golden
Path's runs for a service, and counts of the writes each backend saw."""

from __future__ import annotations

import subprocess
from typing import Any

from backend.catalog import entity_name
from tests.e2e.conftest import Stack

OWNER = "group:default/team-payments"
VAULT_ACTION = "goldenpath:vault:secrets-path:create"


def wizard(service: str, **overrides: Any) -> dict[str, Any]:
    """Every value, as the wizard sends it (Backstage's backend applies no parameter defaults)."""
    values = {"name": service, "description": "Takes payments", "owner": OWNER, "system": "system:default/payments",
              "costCenter": "cc-1234", "environments": ["dev", "prod"], "tier": "small", "visibility": "private"}
    return {**values, **overrides}


def completion(events: list[dict[str, Any]]) -> dict[str, Any]:
    [done] = [event["body"] for event in events if event["type"] == "completion"]
    return dict(done)


def log(events: list[dict[str, Any]]) -> str:
    return "\n".join(f"[{e['body'].get('stepId')}:{e['body'].get('status')}] {e['body'].get('message')}"
                     for e in events)


def failed_step(events: list[dict[str, Any]]) -> tuple[str, str]:
    [failure] = [e["body"] for e in events if e["body"].get("status") == "failed" and e["body"].get("stepId")]
    return str(failure["stepId"]), str(failure["message"]).splitlines()[0]


def gitops_commits(stack: Stack) -> int:
    if not stack.gitops_remote.exists():
        return 0
    out = subprocess.run(["git", "--git-dir", str(stack.gitops_remote), "rev-list", "--count", "main"],
                         capture_output=True, text=True, check=False)
    return int(out.stdout.strip() or 0)


def goldenpath_runs(stack: Stack, service: str) -> list[dict[str, Any]]:
    """Golden Path's runs for `service`, oldest first."""
    items = stack.goldenpath_api("GET", "/api/v1/runs", params={"limit": 500}).json()["items"]
    return [run for run in reversed(items) if service in {run["input"].get("service"), run["input"].get("name")}]


def resource(service: str, *parts: str) -> str:
    """The ref of the Resource entity Golden Path's feed names for one of the service's resources."""
    return f"resource:default/{entity_name(service, *parts)}"


def writes(stack: Stack) -> tuple[int, int, int]:
    return stack.github.writes, len(stack.kube.writes()), gitops_commits(stack)
