"""Attacks on repair by policy (backend/services/repair.py) and the batched reads of a reconcile pass: a hostile
database administrator steering what the reconciler's admin identity writes, another team taking a namespace
while a pass runs, and a user's run racing a repair."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import update
from starlette.testclient import TestClient

from backend.app import Services
from backend.store.models import Resource
from tests.conformance.test_drift import (
    MEMBER_TOKEN,
    OWNER,
    RUNS,
    STRANGER_TOKEN,
    kube_call,
    provision,
)
from tests.conftest import API_TOKEN
from tests.k8s_emulator import KubeEmulator

NAMESPACES = "goldenpath:kubernetes:namespace:create"
COST_CENTER = "goldenpath.dev/cost-center"


def _app(make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator,
         repair: list[dict[str, str]]) -> tuple[TestClient, Services]:
    app, services = make_app(
        kubernetes={"clusters": {"dev-eu": {"mode": "direct", "server": kube.url}},
                    "environments": {"dev": ["dev-eu"], "prod": ["dev-eu"]}},
        auth={"token": API_TOKEN, "static_tokens": [
            {"name": "member", "token": MEMBER_TOKEN, "groups": [OWNER]},
            {"name": "stranger", "token": STRANGER_TOKEN, "groups": ["group:default/team-ledger"]}]},
        reconcile={"interval_seconds": 0, "repair": repair})
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"}), services


def _labels(kube: KubeEmulator, namespace: str) -> dict[str, str]:
    return dict(kube_call(kube, "GET", f"/api/v1/namespaces/{namespace}")["metadata"].get("labels") or {})


def _point_inventory_at(services: Services, service: str, kind: str, run_id: str) -> None:
    """What a DBA does: the inventory is not sealed, only the run it names is."""
    with services.database.transaction() as session:
        session.execute(update(Resource).where(Resource.service == service, Resource.kind == kind)
                        .values(run_id=run_id))


# --- a hostile database administrator ----------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["refused", "dry-run"])
def test_a_run_golden_path_never_carried_out_is_not_a_desired_state_to_repair_to(
        make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator, how: str) -> None:
    """Every run record is sealed when it is accepted, before its requester is authorized: a stranger's refused
    run (team-ledger asking for team-payments' namespaces) and a member's dry-run (a preview nobody applied) carry
    valid seals too. A DBA who points the inventory row of the dev namespace at such a run made the reconciler
    (admin=True, so no authorization) carry it out for real: the stranger's cost center was written."""
    client, services = _app(make_app, kube, [{"kind": "kubernetes.namespace", "environment": "dev"}])
    service = f"adv-{secrets.token_hex(3)}"
    provision(client, service)
    body = {"service": service, "system": "payments", "owner": OWNER, "costCenter": "cc-6666",
            "environments": ["dev"], "tier": "small"}
    token = STRANGER_TOKEN if how == "refused" else MEMBER_TOKEN
    answer = client.post(RUNS.format(NAMESPACES), json={"input": body, "dryRun": how == "dry-run"},
                         headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == (403 if how == "refused" else 201), answer.text
    never_done = answer.json()["runId"] if how == "refused" else answer.json()["id"]
    _point_inventory_at(services, service, "kubernetes.namespace", never_done)

    summary = services.reconciler.run_pass([service])
    assert _labels(kube, f"{service}-dev")[COST_CENTER] == "cc-1234"  # what the owner asked for, still
    assert all(r.run_id is None for r in summary.repairs), summary.repairs


# --- batched reads: another team, or the cluster admin, during a pass --------------------------------------------

def test_a_repair_never_writes_into_a_namespace_taken_after_the_pass_listed_it(
        make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator) -> None:
    """A pass lists every kind once, at its start, and the lists stood in for reads by the repair's own run as
    well (a write, not a dry-run): the ownership check before writing read the list. A namespace that team-ledger
    took over after the list (a pass over many services takes minutes) was still ours to the repair, which wrote
    into it. GitOps already fetches afresh before a write; the Kubernetes API target did not read afresh."""
    client, services = _app(make_app, kube, [{"kind": "kubernetes.namespace", "environment": "dev"}])
    service = f"adv-{secrets.token_hex(3)}"
    provision(client, service)
    namespace = f"{service}-dev"
    kube_call(kube, "PATCH", f"/api/v1/namespaces/{namespace}", {"metadata": {"labels": {COST_CENTER: "cc-9999"}}})
    listed = services.reconciler._batched_reads

    @contextlib.contextmanager
    def then_taken_over() -> Iterator[None]:
        with listed():
            kube_call(kube, "PATCH", f"/api/v1/namespaces/{namespace}", {"metadata": {
                "annotations": {"goldenpath.dev/owner-ref": "group:default/team-ledger"},
                "labels": {COST_CENTER: "cc-7777"}}})
            yield

    services.reconciler._batched_reads = then_taken_over
    summary = services.reconciler.run_pass([service])
    assert _labels(kube, namespace)[COST_CENTER] == "cc-7777", summary.repairs  # team-ledger's, untouched
    assert all(r.outcome != "repaired" for r in summary.repairs), summary.repairs


# --- a user's run racing a repair --------------------------------------------------------------------------------

def test_a_run_made_between_the_check_and_the_repair_is_not_undone(
        make_app: Callable[..., tuple[Any, Services]], kube: KubeEmulator) -> None:
    """The repair asks the inventory who holds each resource once, before its first run again; the owner's own run
    (cost center cc-5555) finishing after that, and before the repair's run took the service's lock, was undone:
    the repair wrote run 1's cc-1234 back over it."""
    client, services = _app(make_app, kube, [{"kind": "kubernetes.namespace"}])
    service = f"adv-{secrets.token_hex(3)}"
    common = {"service": service, "system": "payments", "owner": OWNER, "environments": ["dev"], "tier": "small"}
    answer = client.post(RUNS.format(NAMESPACES), json={"input": {**common, "costCenter": "cc-1234"}})
    assert answer.status_code == 201, answer.text
    namespace = f"{service}-dev"
    kube_call(kube, "PATCH", f"/api/v1/namespaces/{namespace}", {"metadata": {"labels": {COST_CENTER: "cc-9999"}}})
    checker = services.reconciler._checker
    desired_request = checker.desired_request

    def owner_runs_meanwhile(run_id: str, name: str) -> Any:
        found = desired_request(run_id, name)
        answers: list[Any] = []
        thread = threading.Thread(target=lambda: answers.append(client.post(
            RUNS.format(NAMESPACES), json={"input": {**common, "costCenter": "cc-5555"}})))
        thread.start()
        thread.join()
        assert answers[0].status_code == 201, answers[0].text
        return found

    checker.desired_request = owner_runs_meanwhile  # type: ignore[method-assign,assignment]
    summary = services.reconciler.run_pass([service])
    assert _labels(kube, namespace)[COST_CENTER] == "cc-5555", summary.repairs  # the owner's latest request
