"""Fail closed: when a guardrail object cannot be applied, the run fails naming it, the audit trail keeps
what was done, nothing reports success, and a re-run after recovery finishes the work."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
from starlette.testclient import TestClient

from tests.conftest import API_TOKEN
from tests.k8s_emulator import KubeEmulator
from tests.providers.test_gitops import git
from tests.scaffolder_actions.test_kubernetes_namespace_create import RUNS, namespace_input


@pytest.fixture
def forbidding() -> Iterator[KubeEmulator]:
    """An emulator whose RBAC (as it were) forbids creating NetworkPolicies."""
    emulator = KubeEmulator().start()
    emulator.emulator["post", kmock.resource("networking.k8s.io", "v1", "networkpolicies")] << 403
    yield emulator
    emulator.stop()


def _client(make_app: Callable[..., Any], cluster: dict[str, Any]) -> TestClient:
    app, _ = make_app(kubernetes={"clusters": {"c1": cluster}, "environments": {"dev": ["c1"]}})
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def test_a_forbidden_network_policy_fails_the_run_and_names_it(
    make_app: Callable[..., Any], forbidding: KubeEmulator
) -> None:
    client = _client(make_app, {"mode": "direct", "server": forbidding.url})
    data = namespace_input(environments=["dev"])
    response = client.post(RUNS, json={"input": data})
    assert response.status_code == 502, response.text
    problem = response.json()
    assert f"NetworkPolicy/{data['service']}-dev/default-deny-all" in problem["detail"]
    assert "denied permission" in problem["detail"] and problem["retryable"] is False
    run = client.get(f"/api/v1/runs/{problem['runId']}").json()
    assert run["status"] == "failed" and run["output"] is None
    [event] = client.get("/api/v1/audit").json()["items"]
    assert event["result"] == "failed"
    assert [c["kind"] for c in event["changes"]] == [
        "kubernetes.Namespace", "kubernetes.ResourceQuota", "kubernetes.LimitRange"]
    assert client.get("/api/v1/inventory").json()["items"] == []


def test_a_rejected_push_fails_and_a_rerun_after_recovery_finishes(
    make_app: Callable[..., Any], tmp_path: Path
) -> None:
    remote = tmp_path / "checked-out"  # a non-bare repository with main checked out refuses pushes to main
    remote.mkdir()
    git("init", "-q", "-b", "main", cwd=remote)
    git("commit", "-q", "--allow-empty", "-m", "init", cwd=remote)
    client = _client(make_app, {"mode": "gitops", "remote": str(remote), "workdir": str(tmp_path / "work")})
    data = namespace_input(environments=["dev"])
    failed = client.post(RUNS, json={"input": data})
    assert failed.status_code == 503, failed.text
    assert "git push failed" in failed.json()["detail"] and failed.json()["retryable"] is True

    bare = tmp_path / "bare.git"
    git("clone", "-q", "--bare", str(remote), str(bare), cwd=tmp_path)
    shutil.rmtree(remote)
    bare.rename(remote)
    finished = client.post(RUNS, json={"input": data})
    assert finished.status_code == 201, finished.text
    [namespace] = finished.json()["output"]["namespaces"]
    assert namespace["commit"] and namespace["changed"] is True
    log = git("log", "--format=%s", "main", cwd=remote)
    assert log.splitlines()[0] == f"goldenpath: namespace {data['service']}-dev for payments/{data['service']} (dev)"
