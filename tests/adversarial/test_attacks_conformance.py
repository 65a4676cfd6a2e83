"""Attacks on day-2 conformance checking (backend/services/conformance.py): a hostile database administrator, two
replicas checking at once, and a desired state that more than one run holds."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select, update
from starlette.testclient import TestClient

from backend.app import Services
from backend.embedded import EmbeddedOpenBao
from backend.store.models import Conformance
from tests.conformance.test_drift import (
    MEMBER_TOKEN,
    OWNER,
    RUNS,
    audit_results,
    kube_call,
    provision,
    resource,
    vault,
    verify,
)
from tests.conftest import API_TOKEN
from tests.databases import PostgresServer
from tests.k8s_emulator import KubeEmulator

NAMESPACES = "goldenpath:kubernetes:namespace:create"


def _app(make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator, *, database_url: str | None = None,
         environments: dict[str, list[str]] | None = None) -> tuple[TestClient, Services]:
    environments = environments or {"dev": ["dev-eu"], "prod": ["dev-eu"]}
    clusters = {cluster: {"mode": "direct", "server": kube.url} for names in environments.values()
                for cluster in names}
    app, services = make_app(
        database_url=database_url,
        kubernetes={"clusters": clusters, "environments": environments},
        auth={"token": API_TOKEN, "static_tokens": [{"name": "member", "token": MEMBER_TOKEN, "groups": [OWNER]}]})
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"}), services


def _widen_workload_policy(openbao: EmbeddedOpenBao, service: str) -> None:
    [policy] = [p for p in vault(openbao).sys.list_policies()["data"]["policies"]
                if service in p and "workload" in p and "dev" in p]
    vault(openbao).sys.create_or_update_policy(policy, 'path "secret/*" { capabilities = ["read", "list"] }\n')


# --- a desired state two runs hold -------------------------------------------------------------------------------

def test_a_resource_a_later_run_desires_is_not_drift_in_an_older_runs_replay(
        make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator) -> None:
    """Run 1 made namespaces in dev and prod (tier small); run 2 made dev again as tier medium, so dev's desired
    state is run 2's and prod's is still run 1's. Replaying run 1 (for prod) must not judge dev by run 1's tier:
    nothing was changed behind Golden Path's back, yet the service was reported drifted (and audited) forever."""
    client, _ = _app(make_app, kube, environments={"dev": ["dev-eu"], "prod": ["prod-eu"]})
    service = f"conf-{secrets.token_hex(3)}"
    common = {"service": service, "system": "payments", "owner": OWNER, "costCenter": "cc-1234"}
    for environments, tier in ((["dev", "prod"], "small"), (["dev"], "medium")):
        answer = client.post(RUNS.format(NAMESPACES), json={"input": {**common, "environments": environments,
                                                                      "tier": tier}})
        assert answer.status_code == 201, answer.text
    report = verify(client, service)
    assert {(r["environment"], r["status"]) for r in report["resources"]} == {("dev", "conformant"),
                                                                              ("prod", "conformant")}
    assert report["findings"] == [], report["findings"]
    assert report["status"] == "conformant"
    assert audit_results(client) == []
    # a real change to dev is still found, by the replay of the run that desires dev
    kube_call(kube, "PATCH", f"/api/v1/namespaces/{service}-dev",
              {"metadata": {"labels": {"goldenpath.dev/cost-center": "cc-9999"}}})
    report = verify(client, service)
    assert {(r["environment"], r["status"]) for r in report["resources"]} == {("dev", "drifted"),
                                                                              ("prod", "conformant")}
    assert report["status"] == "drifted"


# --- a hostile database administrator ----------------------------------------------------------------------------

def test_a_forged_status_row_cannot_stop_every_later_check(
        make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator, openbao: EmbeddedOpenBao) -> None:
    """A DBA writes a status that is not one of the five into a resource's conformance row (and `conformant` into
    the service's, which the catalog shows). Every later check of the service then crashed before storing
    anything, so a real drift was never stored, shown or audited: the forged `conformant` stayed."""
    client, services = _app(make_app, kube)
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    assert verify(client, service)["status"] == "conformant"
    with services.database.transaction() as session:
        session.execute(update(Conformance).where(Conformance.service == service,
                                                  Conformance.kind == "vault.secrets-path").values(status="ok"))
    _widen_workload_policy(openbao, service)
    answer = client.get(f"/api/v1/services/{service}/conformance", params={"check": "true"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "drifted"
    assert resource(answer.json(), "vault.secrets-path")["status"] == "drifted"
    assert sorted(result for result, _ in audit_results(client)) == ["drifted", "drifted"]
    summary = services.reconciler.run_pass([service])
    assert summary.failed == [] and summary.statuses == {"drifted": 1}


def test_a_report_the_database_administrator_wrote_is_not_served(
        make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator, openbao: EmbeddedOpenBao) -> None:
    """The stored report is served as it is (production does not validate responses). A DBA who copies a clean
    report over a drifted one (here: another service's, renamed) made the owners read `conformant`; a report
    Golden Path did not write must not be served as one."""
    client, services = _app(make_app, kube)
    drifted, clean = f"conf-{secrets.token_hex(3)}", f"conf-{secrets.token_hex(3)}"
    provision(client, drifted)
    provision(client, clean)
    _widen_workload_policy(openbao, drifted)
    assert verify(client, drifted)["status"] == "drifted"
    good = verify(client, clean)
    assert good["status"] == "conformant"
    forged = {**good, "service": drifted,
              "resources": [{**r, "locator": r["locator"].replace(clean, drifted)} for r in good["resources"]]}
    with services.database.transaction() as session:
        [row, other] = [session.scalar(select(Conformance).where(Conformance.kind == "service",
                                                                 Conformance.locator == name))
                        for name in (drifted, clean)]
        assert row is not None and other is not None and row.report is not None and other.report is not None
        stored = dict(row.report)
        # the forged body, under whatever seal the row holds (or another service's row holds)
        stored = {**stored, "report": forged} if "report" in stored else forged
        session.execute(update(Conformance).where(Conformance.id == row.id).values(report=stored))
    served = client.get(f"/api/v1/services/{drifted}/conformance")
    assert served.status_code != 200 or served.json()["status"] == "drifted", served.text
    with services.database.transaction() as session:  # the clean service's whole sealed report, moved over
        session.execute(update(Conformance).where(Conformance.id == row.id).values(report=other.report))
    served = client.get(f"/api/v1/services/{drifted}/conformance")
    assert served.status_code != 200 or served.json()["status"] == "drifted", served.text
    # a genuine report is still served, and a new check replaces the forged one
    assert client.get(f"/api/v1/services/{clean}/conformance").json() == good
    assert client.get(f"/api/v1/services/{drifted}/conformance", params={"check": "true"}).json()[
        "status"] == "drifted"
    assert client.get(f"/api/v1/services/{drifted}/conformance").json()["status"] == "drifted"


# --- two replicas checking at once -------------------------------------------------------------------------------

@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


def _together(services: Services, service: str, monkeypatch: pytest.MonkeyPatch) -> list[BaseException]:
    """Two checks of `service` at once (the API's check=true on one replica, the reconciler on another): each
    reads the stored statuses before either writes."""
    store = services.conformance._stores.conformance
    original = store.save
    gate = threading.Barrier(2, timeout=3)

    def save(name: str, results: Any, **kwargs: Any) -> Any:
        def gated() -> Iterator[Any]:
            # broken: the other check waits for this one's transaction, so there is nothing to interleave
            with contextlib.suppress(threading.BrokenBarrierError):
                gate.wait()
            yield from results
        return original(name, gated(), **kwargs)

    monkeypatch.setattr(store, "save", save)
    errors: list[BaseException] = []

    def check() -> None:
        try:
            services.conformance.check(service)
        except BaseException as exc:  # reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=check) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    monkeypatch.setattr(store, "save", original)
    gate.reset()
    return errors


def test_two_replicas_checking_at_once_neither_fail_nor_audit_twice(
        make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator, openbao: EmbeddedOpenBao,
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client, services = _app(make_app, kube, database_url=postgres_url)
    service = f"conf-{secrets.token_hex(3)}"
    provision(client, service)
    errors = _together(services, service, monkeypatch)  # the first check of a service inserts its rows
    assert errors == [], [repr(e) for e in errors]
    _widen_workload_policy(openbao, service)
    errors = _together(services, service, monkeypatch)
    assert errors == [], [repr(e) for e in errors]
    assert sorted(result for result, _ in audit_results(client)) == ["drifted", "drifted"]  # the path, the service
