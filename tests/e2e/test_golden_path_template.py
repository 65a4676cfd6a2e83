"""The golden-path template in a real Backstage, run by alice (a member of team-payments, the owner): one task
provisions a service in every backend and the catalog shows it; the same task again writes nothing; the plan
refuses a bad request with every problem in the task log; a step that fails half-way, or a Vault that is down,
fails the task with Golden Path's message, and a retry after recovery finishes the work; Backstage dry-runs run
the plan only."""

from __future__ import annotations

import secrets
import subprocess
import time
from typing import Any

import hvac
import hvac.exceptions
import pytest
import yaml

from tests.conftest import GITHUB_ORG
from tests.e2e.conftest import REPORT, ROOT, Stack
from tests.e2e.people import ALICE
from tests.e2e.tasks import (
    OWNER,
    VAULT_ACTION,
    completion,
    failed_step,
    goldenpath_runs,
    log,
    resource,
    wizard,
    writes,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500),  # the first run includes `npm ci`
              pytest.mark.xdist_group("backstage")]  # under pytest-xdist one worker runs them all: one stack

CATALOG_TIMEOUT = 45.0  # the catalog reads locations again only when asked (e2e config): Golden Path asks


@pytest.fixture(scope="module")
def provisioned(stack: Stack) -> dict[str, Any]:
    service = f"pay-{secrets.token_hex(3)}"
    before = writes(stack)
    task, events = stack.run_task(wizard(service))
    return {"service": service, "task": task, "events": events, "before": before, "after": writes(stack),
            "finished_at": time.monotonic()}


def test_one_task_provisions_the_service_in_every_backend(stack: Stack, provisioned: dict[str, Any]) -> None:
    service, events = provisioned["service"], provisioned["events"]
    assert provisioned["task"]["status"] == "completed", log(events)
    github_writes, kube_writes, commits = (after - before for after, before in zip(
        provisioned["after"], provisioned["before"], strict=True))
    assert github_writes > 0 and kube_writes == 9 and commits == 1  # dev: 9 objects by the API, prod: 1 commit
    assert completion(events)["message"] == "Run completed with status: completed"
    output = completion(events)["output"]
    links = {link["title"]: link for link in output["links"]}
    assert links["Repository"]["url"] == f"{stack.github.web_url}/{GITHUB_ORG}/{service}/blob/main"
    assert links["Open in the catalog"]["entityRef"] == f"component:default/{service}"
    assert "6 of 6 resources to create" in output["text"][0]["content"]

    repo = stack.github.repos[(GITHUB_ORG, service)]  # GitHub: one commit of the skeleton, protected, the team's
    assert len(stack.github.history(GITHUB_ORG, service)) == 1
    files = stack.github.files(GITHUB_ORG, service)
    assert files["CODEOWNERS"].decode().strip().endswith(f"@{GITHUB_ORG}/team-payments")
    assert [r["enforcement"] for r in repo.rulesets.values()] == ["active"]  # the default branch's ruleset
    assert repo.visibility == "private" and repo.topics == ["golden-path"]
    assert stack.github.orgs[GITHUB_ORG].team_repos["team-payments"][service] == "maintain"

    vault = hvac.Client(url=stack.bao.addr, token=stack.bao.token)  # Vault: a path per environment, its policies
    [secrets_run] = [r for r in goldenpath_runs(stack, service) if r["actionId"] == VAULT_ACTION]
    for env, path in zip(("dev", "prod"), secrets_run["output"]["paths"], strict=True):
        custom = vault.secrets.kv.v2.read_secret_metadata(f"{env}/payments/{service}",
                                                          mount_point="secret")["data"]["custom_metadata"]
        assert (custom["owner"], custom["cost-center"]) == (OWNER, "cc-1234")
        assert path["environment"] == env and f"{env}/payments/{service}" in vault.sys.read_policy(
            path["workloadPolicy"])["data"]["rules"]

    namespace = stack.kube.emulator.objects["v1/namespaces", None, f"{service}-dev"]  # dev: through the API
    assert namespace["metadata"]["labels"]["goldenpath.dev/cost-center"] == "cc-1234"
    quota = stack.kube.emulator.objects["v1/resourcequotas", f"{service}-dev", "goldenpath-quota"]
    assert quota["spec"]["hard"]["pods"] == "20"
    shown = subprocess.run(["git", "--git-dir", str(stack.gitops_remote), "show",  # prod: a GitOps commit
                            f"main:clusters/gitops/namespaces/{service}-prod/namespace-{service}-prod.yaml"],
                           capture_output=True, text=True, check=True).stdout
    assert yaml.safe_load(shown)["metadata"]["labels"]["goldenpath.dev/service"] == service

    runs = goldenpath_runs(stack, service)  # who asked for what: the scaffolder, for each step
    assert [r["actionId"] for r in runs] == ["goldenpath:platform:service:plan", "goldenpath:git:repository:create",
                                             "goldenpath:vault:secrets-path:create",
                                             "goldenpath:kubernetes:namespace:create",
                                             "goldenpath:catalog:service:register"]
    assert {r["caller"] for r in runs} == {"backstage:scaffolder"} and {r["status"] for r in runs} == {"succeeded"}
    assert {r["requestedBy"] for r in runs} == {ALICE}  # the person who started the task, from its obo token


def test_the_catalog_shows_the_component_and_what_it_depends_on(stack: Stack, provisioned: dict[str, Any]) -> None:
    service = provisioned["service"]
    component = stack.wait_for_entity(f"component:default/{service}", timeout=CATALOG_TIMEOUT, until=lambda e: len(
        [r for r in e.get("relations", []) if r["type"] == "dependsOn"]) == 5)
    seconds = time.monotonic() - provisioned["finished_at"]
    relations = sorted((r["type"], r["targetRef"]) for r in component["relations"])
    assert relations == sorted([
        ("ownedBy", OWNER), ("partOf", "system:default/payments"),
        ("dependsOn", resource(service, "repository")),
        ("dependsOn", resource(service, "secrets", "dev")),
        ("dependsOn", resource(service, "secrets", "prod")),
        ("dependsOn", resource(service, "namespace", "dev", "eu-dev")),
        ("dependsOn", resource(service, "namespace", "prod", "gitops"))])
    annotations = component["metadata"]["annotations"]
    assert annotations["github.com/project-slug"] == f"{GITHUB_ORG}/{service}"
    assert annotations["backstage.io/source-location"] == f"url:{stack.github.web_url}/{GITHUB_ORG}/{service}/"
    assert annotations["vault.io/secrets-path"] == f"dev/payments/{service}"
    assert annotations["backstage.io/kubernetes-id"] == service
    assert annotations["backstage.io/kubernetes-label-selector"] == f"goldenpath.dev/service={service}"
    assert annotations["backstage.io/managed-by-location"].endswith("/api/v1/catalog/entities.yaml")
    assert component["metadata"]["labels"] == {"goldenpath.dev/cost-center": "cc-1234"}
    assert component["spec"]["lifecycle"] == "experimental" and component["metadata"]["tags"] == ["golden-path"]

    metrics = stack.goldenpath_api("GET", "/api/v1/metrics").text
    assert 'goldenpath_catalog_refreshes_total{result="ok"}' in metrics  # how the catalog heard of it
    namespace = stack.wait_for_entity(resource(service, "namespace", "dev", "eu-dev"))
    assert namespace["spec"]["type"] == "kubernetes-namespace"
    assert namespace["metadata"]["annotations"]["backstage.io/kubernetes-namespace"] == f"{service}-dev"
    assert ("dependencyOf", f"component:default/{service}") in [(r["type"], r["targetRef"])
                                                                 for r in namespace["relations"]]
    secrets_path = stack.wait_for_entity(resource(service, "secrets", "prod"))
    assert secrets_path["metadata"]["labels"]["goldenpath.dev/environment"] == "prod"
    REPORT["catalog showed the new service"] = f"{seconds:.1f} s after the task completed"


def test_the_same_task_again_completes_and_writes_nothing(stack: Stack, provisioned: dict[str, Any]) -> None:
    service = provisioned["service"]
    etag = stack.goldenpath_api("GET", "/api/v1/catalog/entities.yaml").headers["etag"]
    before = writes(stack)
    task, events = stack.run_task(wizard(service))
    assert task["status"] == "completed", log(events)
    assert writes(stack) == before  # GitHub writes, Kubernetes API writes, GitOps commits
    assert "0 of 6 resources to create, 6 already in place" in completion(events)["output"]["text"][0]["content"]
    again = goldenpath_runs(stack, service)[5:]
    assert len(again) == 5 and all(c["outcome"] == "unchanged" for run in again for c in run["changes"])
    assert stack.goldenpath_api("GET", "/api/v1/catalog/entities.yaml").headers["etag"] == etag
    events_of_rerun = [e for e in stack.goldenpath_api("GET", "/api/v1/audit", params={"limit": 1000}).json()["items"]
                       if e["run_id"] in {run["id"] for run in again}]
    assert len(events_of_rerun) == 5 and all(e["changes"] == [] for e in events_of_rerun)


def test_drift_shows_on_the_entity_page_and_the_template_again_puts_it_back(
        stack: Stack, provisioned: dict[str, Any]) -> None:
    service = provisioned["service"]
    ref = f"component:default/{service}"

    def conformance(entity: dict[str, Any]) -> str | None:
        return entity["metadata"]["annotations"].get("goldenpath.dev/conformance")

    def check() -> dict[str, Any]:
        answer = stack.goldenpath_api("GET", f"/api/v1/services/{service}/conformance", params={"check": "true"})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    assert check()["status"] == "conformant"
    stack.wait_for_entity(ref, timeout=CATALOG_TIMEOUT, until=lambda e: conformance(e) == "conformant")

    [ruleset] = stack.github.repos[(GITHUB_ORG, service)].rulesets.values()
    ruleset["enforcement"] = "disabled"  # "for a minute", by an organization owner in GitHub's settings
    report = check()
    [repository] = [r for r in report["resources"] if r["kind"] == "repository"]
    assert report["status"] == "drifted" and repository["status"] == "drifted"
    assert [f["kind"] for f in repository["findings"]] == ["repository.protection"]
    assert ruleset["enforcement"] == "disabled"  # a report repairs nothing
    stack.wait_for_entity(ref, timeout=CATALOG_TIMEOUT, until=lambda e: conformance(e) == "drifted")
    shown = stack.wait_for_entity(resource(service, "repository"), timeout=CATALOG_TIMEOUT,
                                  until=lambda e: conformance(e) == "drifted")
    assert shown["metadata"]["annotations"]["goldenpath.dev/checked-at"] == report["checkedAt"]

    task, events = stack.run_task(wizard(service))  # the template again converges: the ruleset is enforced again
    assert task["status"] == "completed", log(events)
    assert [r["enforcement"] for r in stack.github.repos[(GITHUB_ORG, service)].rulesets.values()] == ["active"]
    assert check()["status"] == "conformant"
    stack.wait_for_entity(ref, timeout=CATALOG_TIMEOUT, until=lambda e: conformance(e) == "conformant")


def test_the_plan_refuses_a_bad_request_with_every_problem_in_the_task_log(stack: Stack) -> None:
    service = f"pay-{secrets.token_hex(3)}"
    before = writes(stack)
    task, events = stack.run_task(wizard(service, environments=["dev", "staging"], costCenter="marketing"))
    assert task["status"] == "failed", log(events)
    step, message = failed_step(events)
    assert step == "plan"
    assert message == ("ResponseError: Request failed with 422 InputError: 2 problems: environments.1: environment "
                       "'staging' is not one of dev, prod; costCenter: must match the platform's cost-center format "
                       "cc-[0-9]{4}")
    assert "Skipping step repository because a previous step failed" in log(events)
    assert writes(stack) == before and (GITHUB_ORG, service) not in stack.github.repos
    [run] = goldenpath_runs(stack, service)
    assert [(e["field"], e["rule"]) for e in run["error"]["errors"]] == [
        ("environments.1", "allowed-environments"), ("costCenter", "cost-center-format")]


def test_a_backstage_dry_run_runs_the_plan_only(stack: Stack) -> None:
    template = yaml.safe_load((ROOT / "catalog-info/templates/golden-path-service/template.yaml").read_text())
    service = f"pay-{secrets.token_hex(3)}"
    before = writes(stack)
    response = stack.backstage_api("POST", "/api/scaffolder/v2/dry-run", as_user=ALICE, json={
        "template": template, "values": wizard(service), "directoryContents": []})
    assert response.status_code == 200, response.text
    messages = [entry["body"]["message"] for entry in response.json()["log"]]
    assert "Finished step Check the request" in messages
    assert "Skipping because goldenpath:git:repository:create does not support dry-run" in messages
    assert writes(stack) == before
    [run] = goldenpath_runs(stack, service)
    assert run["actionId"] == "goldenpath:platform:service:plan" and run["status"] == "succeeded"


def test_a_step_failing_half_way_fails_the_task_and_a_retry_finishes_the_work(stack: Stack) -> None:
    service = f"pay-{secrets.token_hex(3)}"
    refused: list[Any] = []

    def first_network_policy_of_the_service(request: Any) -> bool:  # RBAC says no, once
        if not refused and f"/namespaces/{service}-dev/networkpolicies" in str(request.url.path):
            refused.append(request)
        return bool(refused) and request is refused[0]

    stack.kube.emulator["post", first_network_policy_of_the_service] << 403
    task, events = stack.run_task(wizard(service))
    assert task["status"] == "failed", log(events)
    step, message = failed_step(events)
    assert step == "namespaces"
    assert message.startswith("ResponseError: Request failed with 502 Error: Kubernetes denied permission")
    assert f"NetworkPolicy/{service}-dev/default-deny-all" in message
    assert len(refused) == 1
    assert (GITHUB_ORG, service) in stack.github.repos  # what came before the failure is in place ...
    assert stack.kube.emulator.objects["v1/namespaces", None, f"{service}-dev"]
    github_writes = stack.github.writes

    task, events = stack.retry_task(task["id"])  # ... and the retry finishes the rest, redoing nothing
    assert task["status"] == "completed", log(events)
    assert stack.github.writes == github_writes
    policies = [key for key in stack.kube.emulator.objects if key[0] == "networking.k8s.io/v1/networkpolicies"
                and key[1] == f"{service}-dev"]
    assert len(policies) == 3
    stack.wait_for_entity(f"component:default/{service}", timeout=CATALOG_TIMEOUT)


def test_a_stopped_vault_fails_the_task_with_our_message_and_a_retry_after_recovery_completes(stack: Stack) -> None:
    service = f"pay-{secrets.token_hex(3)}"
    stack.bao.stop()
    try:
        task, events = stack.run_task(wizard(service))
    finally:
        stack.restart_vault()
    assert task["status"] == "failed", log(events)
    step, message = failed_step(events)
    assert step == "plan"
    assert message.startswith("ResponseError: Request failed with 503 ServiceUnavailableError: ")
    assert "Vault" in message and (GITHUB_ORG, service) not in stack.github.repos

    task, events = stack.retry_task(task["id"])
    assert task["status"] == "completed", log(events)
    vault = hvac.Client(url=stack.bao.addr, token=stack.bao.token)
    assert vault.secrets.kv.v2.read_secret_metadata(f"prod/payments/{service}", mount_point="secret")
    stack.wait_for_entity(f"component:default/{service}", timeout=CATALOG_TIMEOUT)


def test_golden_paths_own_entities_register_from_its_repository(stack: Stack) -> None:
    target = f"{stack.site.url}/golden-path/catalog-info/catalog-info.yaml"
    registered = stack.backstage_api("POST", "/api/catalog/locations", json={"type": "url", "target": target})
    assert registered.status_code == 201, registered.text
    component = stack.wait_for_entity("component:default/golden-path")
    assert ("providesApi", "api:default/golden-path-api") in [(r["type"], r["targetRef"])
                                                              for r in component["relations"]]
    api = stack.wait_for_entity("api:default/golden-path-api")
    assert api["spec"]["type"] == "openapi"
    published = stack.tmp / "site" / "golden-path" / "openapi" / "goldenpath.yaml"  # openapi/ as the stack started
    assert api["spec"]["definition"] == published.read_text(encoding="utf-8")


def test_the_rest_api_through_backstages_proxy_is_the_fallback(stack: Stack) -> None:
    target = f"{stack.site.url}/fallback-template.yaml"
    registered = stack.backstage_api("POST", "/api/catalog/locations", json={"type": "url", "target": target})
    assert registered.status_code == 201, registered.text
    service = f"pay-{secrets.token_hex(3)}"
    values = {"name": service, "system": "payments", "owner": OWNER, "costCenter": "cc-1234",
              "environments": ["dev"], "description": "Planned through the proxy"}
    task, events = stack.run_task(values, template="template:default/golden-path-plan-via-proxy")
    assert task["status"] == "completed", log(events)
    output = completion(events)["output"]
    assert output["code"] == 201 and output["summary"] == "4 of 4 resources to create, 0 already in place"
    [run] = goldenpath_runs(stack, service)
    assert run["id"] == output["runId"] and run["caller"] == "token:default"
    assert run["context"]["taskId"] == task["id"] and run["idempotencyKey"] == f"{task['id']}-plan"
