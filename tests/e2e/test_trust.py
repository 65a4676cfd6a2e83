"""Trust, live in a real Backstage: a task runs as the person who started it (signed in by the guest provider),
Golden Path reads their groups from Backstage's catalog, and a person acts only for owner groups they belong to.
alice (team-payments) provisions a payments service and the audit names her; mallory (team-ledger) is refused,
both for a new payments service and for rebinding alice's secrets to a workload of her choosing, and nothing is
written; AI agents reach the same actions through MCP, where a caller with no person acts for no group and a
person for their own groups (a platform admin, pat, for any)."""

from __future__ import annotations

import json
import secrets
from typing import Any

import hvac
import hvac.exceptions
import pytest

from backend.services.registry import builtin_actions
from tests.conftest import GITHUB_ORG
from tests.e2e.conftest import Stack
from tests.e2e.people import ALICE, MALLORY, PAT
from tests.e2e.tasks import OWNER, VAULT_ACTION, failed_step, goldenpath_runs, log, wizard, writes

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500),  # the first run includes `npm ci`
              pytest.mark.xdist_group("backstage")]  # under pytest-xdist one worker runs them all: one stack

VAULT_TEMPLATE = "template:default/vault-secrets-path-only"
PLAN = "goldenpath:platform:service:plan"
NOT_A_MEMBER = "not-a-member-of-owner"


def audit_of(stack: Stack, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = {run["id"] for run in runs}
    items = stack.goldenpath_api("GET", "/api/v1/audit", params={"limit": 1000}).json()["items"]
    return [event for event in items if event["run_id"] in ids]


def vault_state(stack: Stack, service: str, roles: dict[str, str]) -> dict[str, Any]:
    """What alice's secrets look like in OpenBao: each environment's metadata and Kubernetes auth role."""
    vault = hvac.Client(url=stack.bao.addr, token=stack.bao.token)
    return {env: {"metadata": vault.secrets.kv.v2.read_secret_metadata(f"{env}/payments/{service}",
                                                                       mount_point="secret")["data"],
                  "role": vault.auth.kubernetes.read_role(name=role, mount_point="kubernetes")}
            for env, role in roles.items()}


@pytest.fixture(scope="module")
def alices_service(stack: Stack) -> dict[str, Any]:
    service = f"pay-{secrets.token_hex(3)}"
    task, events = stack.run_task(wizard(service), as_user=ALICE)
    assert task["status"] == "completed", log(events)
    return {"service": service, "task": task}


def test_alice_a_member_of_the_owner_provisions_and_the_audit_names_her(
    stack: Stack, alices_service: dict[str, Any],
) -> None:
    runs = goldenpath_runs(stack, alices_service["service"])
    assert len(runs) == 5 and {run["status"] for run in runs} == {"succeeded"}
    events = audit_of(stack, runs)
    assert len(events) == 5
    assert {(e["actor_user"], e["actor_caller"], e["result"]) for e in events} == {
        (ALICE, "backstage:scaffolder", "succeeded")}
    assert alices_service["task"]["createdBy"] == ALICE  # Backstage's view of the same person


def test_mallory_not_a_member_of_the_owner_is_refused_and_nothing_is_written(stack: Stack) -> None:
    service = f"pay-{secrets.token_hex(3)}"
    vault = hvac.Client(url=stack.bao.addr, token=stack.bao.token)
    before, policies = writes(stack), set(vault.sys.list_policies()["data"]["policies"])
    task, events = stack.run_task(wizard(service), as_user=MALLORY)
    assert task["status"] == "failed", log(events)
    step, message = failed_step(events)
    assert step == "plan"  # the plan reports every problem, the owner rule among them, before anything is made
    assert message.startswith("ResponseError: Request failed with 422 InputError: owner: ")
    assert f"{MALLORY} is not a member of {OWNER}" in message
    assert "Skipping step repository because a previous step failed" in log(events)

    assert writes(stack) == before  # GitHub writes, Kubernetes API writes, GitOps commits
    assert (GITHUB_ORG, service) not in stack.github.repos
    assert not [key for key in stack.kube.emulator.objects if service in str(key)]
    for env in ("dev", "prod"):
        with pytest.raises(hvac.exceptions.InvalidPath):
            vault.secrets.kv.v2.read_secret_metadata(f"{env}/payments/{service}", mount_point="secret")
    assert set(vault.sys.list_policies()["data"]["policies"]) == policies
    assert stack.goldenpath_api("GET", "/api/v1/inventory", params={"service": service}).json()["items"] == []
    entity = stack.backstage_api("GET", f"/api/catalog/entities/by-name/component/default/{service}")
    assert entity.status_code == 404

    [plan] = goldenpath_runs(stack, service)  # what Golden Path recorded: mallory's plan, and why it failed
    assert (plan["actionId"], plan["status"], plan["requestedBy"]) == (PLAN, "failed", MALLORY)
    assert ("owner", NOT_A_MEMBER) in [(e["field"], e["rule"]) for e in plan["error"]["errors"]]
    assert [(e["actor_user"], e["result"]) for e in audit_of(stack, [plan])] == [(MALLORY, "failed")]


def test_mallory_cannot_rebind_alices_secrets_to_a_workload_of_her_choosing(
    stack: Stack, alices_service: dict[str, Any],
) -> None:
    """A template of the Vault step alone skips the plan: the action itself refuses, before any write."""
    service = alices_service["service"]
    [secrets_run] = [r for r in goldenpath_runs(stack, service) if r["actionId"] == VAULT_ACTION]
    roles = {path["environment"]: path["kubernetesRole"] for path in secrets_run["output"]["paths"]}
    alices = vault_state(stack, service, roles)
    assert alices["dev"]["role"]["bound_service_account_namespaces"] == [f"{service}-dev"]
    stack.register_site_template("vault-secrets-template.yaml", VAULT_TEMPLATE)
    before = writes(stack)

    task, events = stack.run_task({
        "name": service, "system": "payments", "owner": OWNER, "costCenter": "cc-1234", "environments": ["dev", "prod"],
        "namespace": "ledger-dev", "serviceAccount": "mallory"}, template=VAULT_TEMPLATE, as_user=MALLORY)
    assert task["status"] == "failed", log(events)
    step, message = failed_step(events)
    assert step == "secrets"
    assert message.startswith("ResponseError: Request failed with 403 NotAllowedError: ")
    assert f"{MALLORY} is not a member of {OWNER}" in message and NOT_A_MEMBER in message
    assert vault_state(stack, service, roles) == alices  # the roles still bind alice's workload only
    assert writes(stack) == before

    refused = [r for r in goldenpath_runs(stack, service) if r["requestedBy"] == MALLORY]
    assert [(r["actionId"], r["status"]) for r in refused] == [(VAULT_ACTION, "refused")]
    assert [(e["actor_user"], e["result"]) for e in audit_of(stack, refused)] == [(MALLORY, "refused")]


def mcp(stack: Stack, method: str, params: dict[str, Any], *, as_user: str | None = None) -> dict[str, Any]:
    """One JSON-RPC call to Backstage's MCP server (streamable HTTP, stateless): its result."""
    response = stack.backstage_api("POST", "/api/mcp-actions/v1", as_user=as_user, json={
        "jsonrpc": "2.0", "id": 1, "method": method, "params": params},
        headers={"accept": "application/json, text/event-stream"})
    assert response.status_code == 200, response.text[:500]
    if response.headers["content-type"].startswith("text/event-stream"):
        [data] = [line.removeprefix("data:") for line in response.text.splitlines() if line.startswith("data:")]
        body = json.loads(data)
    else:
        body = response.json()
    assert "result" in body, body
    return dict(body["result"])


def plan_input(service: str) -> dict[str, Any]:
    return {"service": service, "system": "payments", "owner": OWNER, "costCenter": "cc-1234",
            "environments": ["dev"], "description": "Asked for by an agent", "tier": "small", "visibility": "private"}


def test_mcp_lists_goldenpaths_actions_as_tools_with_truthful_hints(stack: Stack) -> None:
    tools = {tool["name"]: tool for tool in mcp(stack, "tools/list", {})["tools"]}
    ours = {tool for tool in tools if tool.startswith("goldenpath.")}
    assert ours == {f"goldenpath.{action.name}" for action in builtin_actions()}
    plan = tools[f"goldenpath.{PLAN.split(':', 1)[1]}"]
    assert plan["annotations"]["readOnlyHint"] is True and plan["annotations"]["destructiveHint"] is False
    assert plan["inputSchema"]["additionalProperties"] is False
    vault = tools[f"goldenpath.{VAULT_ACTION.split(':', 1)[1]}"]
    assert vault["annotations"]["readOnlyHint"] is False


def test_an_agent_with_no_person_acts_for_no_group_and_a_person_through_mcp_for_their_own(stack: Stack) -> None:
    """MCP's calls to Golden Path are signed by the plugin mcp-actions, with the caller's person (if any) as obo."""
    plan_tool, vault_tool = (f"goldenpath.{action.split(':', 1)[1]}" for action in (PLAN, VAULT_ACTION))
    service = f"pay-{secrets.token_hex(3)}"
    before = writes(stack)

    answer = mcp(stack, "tools/call", {"name": plan_tool, "arguments": plan_input(service)})  # the static token
    assert answer["isError"] is True
    [text] = [part["text"] for part in answer["content"]]
    assert text.startswith("InputError: owner: ") and f"is not a member of {OWNER}" in text

    refused = mcp(stack, "tools/call", {"name": vault_tool, "arguments": {
        **{k: v for k, v in plan_input(service).items() if k not in {"description", "tier", "visibility"}},
        "secretKeys": ["API_KEY"]}})
    assert refused["isError"] is True
    [text] = [part["text"] for part in refused["content"]]
    assert text.startswith("NotAllowedError: ") and NOT_A_MEMBER in text
    assert writes(stack) == before

    planned = mcp(stack, "tools/call", {"name": plan_tool, "arguments": plan_input(service)}, as_user=ALICE)
    assert not planned.get("isError"), planned
    assert planned["structuredContent"]["summary"] == "4 of 4 resources to create, 0 already in place"

    runs = goldenpath_runs(stack, service)
    assert [(r["actionId"], r["caller"], r["requestedBy"], r["status"]) for r in runs] == [
        (PLAN, "backstage:mcp-actions", None, "failed"),
        (VAULT_ACTION, "backstage:mcp-actions", None, "refused"),
        (PLAN, "backstage:mcp-actions", ALICE, "succeeded")]


def test_a_platform_admin_may_act_for_any_owner(stack: Stack) -> None:
    service = f"pay-{secrets.token_hex(3)}"
    plan_tool = f"goldenpath.{PLAN.split(':', 1)[1]}"
    planned = mcp(stack, "tools/call", {"name": plan_tool, "arguments": plan_input(service)}, as_user=PAT)
    assert not planned.get("isError"), planned
    [run] = goldenpath_runs(stack, service)
    assert (run["requestedBy"], run["status"]) == (PAT, "succeeded")
