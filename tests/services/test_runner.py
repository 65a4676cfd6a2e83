"""The run engine with a fake secrets store: idempotency, dry-run, audit and inventory on both databases."""

import dataclasses
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from backend.app import Services, build_services
from backend.errors import ConflictError, InputError, RunFailedError, UpstreamError, UpstreamUnavailable
from backend.plugin_api import Requester
from backend.services.registry import ActionRegistry
from backend.services.runner import RunRequest
from tests.conftest import VAULT_ACTION, vault_input
from tests.fakes.secrets import FakeSecretsStore

ALICE = Requester(user="user:default/alice", caller="token:ci", groups=frozenset({"group:default/team-payments"}))
MakeApp = Callable[..., tuple[Any, Services]]


@pytest.fixture
def fake() -> FakeSecretsStore:
    return FakeSecretsStore()


@pytest.fixture
def services(make_app: MakeApp, fake: FakeSecretsStore, database_url: str) -> Services:
    _, services = make_app(database_url=database_url, secrets_store=fake)
    return services


def _run(services: Services, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return services.runner.run(RunRequest(action_id=VAULT_ACTION, input=data, requester=ALICE, **kwargs))


def test_same_key_same_input_replays_without_side_effects(services: Services, fake: FakeSecretsStore) -> None:
    data = vault_input()
    first = _run(services, data, idempotency_key="task-1/step-1")
    writes = fake.writes
    second = _run(services, data, idempotency_key="task-1/step-1")
    assert (first["replayed"], second["replayed"]) == (False, True)
    assert second["id"] == first["id"] and second["output"] == first["output"]
    assert fake.writes == writes
    assert len(services.stores.audit.list()) == 1


def test_same_key_other_input_is_a_conflict(services: Services) -> None:
    _run(services, vault_input(), idempotency_key="k-1")
    with pytest.raises(ConflictError, match="different input"):
        _run(services, vault_input(), idempotency_key="k-1")


def test_concurrent_identical_requests_execute_once(services: Services, fake: FakeSecretsStore) -> None:
    data = vault_input()
    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(lambda _: _run(services, data, idempotency_key="same"), range(16)))
    assert sum(not r["replayed"] for r in results) == 1
    assert len({r["id"] for r in results}) == 1
    assert len(services.stores.runs.list(action_id=VAULT_ACTION)) == 1
    assert len(services.stores.audit.list()) == 1


def test_a_failed_run_releases_its_key_so_a_retry_finishes_the_work(
    services: Services, fake: FakeSecretsStore
) -> None:
    data = vault_input()
    fake.down = True
    with pytest.raises(UpstreamUnavailable) as failure:
        _run(services, data, idempotency_key="task-9")
    assert failure.value.run_id is not None
    assert services.stores.runs.get(failure.value.run_id)["status"] == "failed"  # type: ignore[index]
    fake.down = False
    retried = _run(services, data, idempotency_key="task-9")
    assert retried["status"] == "succeeded" and retried["replayed"] is False
    assert [e["result"] for e in services.stores.audit.list()] == ["failed", "succeeded"]


def test_dry_run_writes_nothing_and_is_not_audited(services: Services, fake: FakeSecretsStore) -> None:
    record = _run(services, vault_input(environments=["dev", "prod"]), dry_run=True)
    assert fake.writes == 0
    assert record["dryRun"] is True
    assert {c["outcome"] for c in record["changes"]} >= {"created"}
    assert any("would be created" in line["message"] for line in record["log"])
    assert services.stores.audit.list() == []
    assert services.stores.inventory.list() == []


def test_a_real_run_records_inventory_audit_and_metrics(services: Services) -> None:
    data = vault_input(environments=["dev", "prod"])
    _run(services, data)
    resources = services.stores.inventory.list(service=data["service"])
    assert {(r["kind"], r["environment"]) for r in resources} == {
        ("vault.secrets-path", "dev"), ("vault.secrets-path", "prod")}
    [event] = services.stores.audit.list()
    assert (event["actor_user"], event["actor_caller"], event["result"]) == (
        "user:default/alice", "token:ci", "succeeded")
    assert all(change["outcome"] != "unchanged" for change in event["changes"])
    metrics = services.metrics.render().decode()
    assert f'goldenpath_runs_total{{action="{VAULT_ACTION}",dry_run="false",status="succeeded"}} 1.0' in metrics


def test_invalid_input_names_every_field_and_records_nothing(services: Services) -> None:
    with pytest.raises(InputError) as error:
        _run(services, {"service": "Bad_Name", "environments": [], "extra": 1})
    fields = {e.field for e in error.value.errors}
    assert {"service", "system", "owner", "costCenter", "environments", "extra"} <= fields
    assert services.stores.runs.list() == []


def test_an_action_returning_bad_output_fails_cleanly(
    make_settings: Callable[..., Any], fake: FakeSecretsStore, database_url: str
) -> None:
    broken = dataclasses.replace(ActionRegistry.discover().get(VAULT_ACTION), run=lambda ctx: {"unexpected": True})
    services = build_services(make_settings(database_url), secrets_store=fake, registry=ActionRegistry([broken]),
                              upgrade_schema=True)
    with pytest.raises(RunFailedError, match="breaks its own schema") as failure:
        _run(services, vault_input())
    assert services.stores.runs.get(str(failure.value.run_id))["status"] == "failed"  # type: ignore[index]


def test_log_fields_named_like_log_record_attributes_do_not_fail_the_run(
    make_settings: Callable[..., Any], fake: FakeSecretsStore, database_url: str
) -> None:
    vault = ActionRegistry.discover().get(VAULT_ACTION)

    def chatty(ctx: Any) -> dict[str, Any]:
        ctx.log.info("about to converge", name=ctx.input["service"], message="x", args=[1], levelname="y")
        return vault.run(ctx)

    services = build_services(make_settings(database_url), secrets_store=fake,
                              registry=ActionRegistry([dataclasses.replace(vault, run=chatty)]), upgrade_schema=True)
    record = _run(services, vault_input())
    assert record["status"] == "succeeded"
    assert record["log"][0]["fields"] == {"name": record["input"]["service"], "message": "x", "args": [1],
                                          "levelname": "y"}


def test_an_unexpected_error_is_logged_with_its_traceback_masked(
    make_settings: Callable[..., Any], fake: FakeSecretsStore, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-" + "x" * 12

    def crashing(ctx: Any) -> dict[str, Any]:
        raise KeyError(f"lookup of {secret} failed")

    vault = ActionRegistry.discover().get(VAULT_ACTION)
    services = build_services(make_settings(database_url), secrets_store=fake,
                              registry=ActionRegistry([dataclasses.replace(vault, run=crashing)]), upgrade_schema=True)
    services.redactor.add([secret])
    with pytest.raises(RunFailedError):
        _run(services, vault_input())
    [line] = [r.getMessage() for r in caplog.records if r.name == "goldenpath.runner"]
    assert "Traceback (most recent call last)" in line and "in crashing" in line
    assert secret not in line and "***" in line


def test_the_retryable_attribute_says_what_the_problem_says() -> None:
    unavailable = UpstreamUnavailable("Vault is unreachable", provider="vault")
    assert unavailable.retryable is True and unavailable.to_problem()["retryable"] is True
    refused = UpstreamError("Vault denied permission", provider="vault")
    assert refused.retryable is False and refused.to_problem()["retryable"] is False
    assert InputError("bad").retryable is False
