"""GitOpsCluster against real git: a bare remote, and a separate clone checked file by file."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from backend.errors import ConflictError
from backend.guardrails import render
from backend.providers.changes import Outcome
from backend.providers.gitops import GitOpsCluster
from tests.providers.test_kubernetes_direct import _spec, converge


def git(*args: str, cwd: Path) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@x", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@x", "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def cluster(tmp_path: Path) -> GitOpsCluster:
    return GitOpsCluster("eu-1", remote=str(tmp_path / "remote.git"), workdir=str(tmp_path / "work"))


def _clone(cluster: GitOpsCluster, tmp_path: Path, name: str = "check") -> Path:
    target = tmp_path / name
    git("clone", "--quiet", cluster.remote, str(target), cwd=tmp_path)
    return target


def _commits(cluster: GitOpsCluster) -> int:
    return int(git("rev-list", "--count", "main", cwd=Path(cluster.remote)).strip())


def test_manifests_land_as_one_commit_file_by_file(cluster: GitOpsCluster, tmp_path: Path) -> None:
    manifests = render(_spec("pay-dev"))
    result = converge(cluster, manifests, message="goldenpath: namespace pay-dev")
    assert result.commit and _commits(cluster) == 1 and result.writes == 1
    folder = _clone(cluster, tmp_path) / "clusters" / "eu-1" / "namespaces" / "pay-dev"
    files = sorted(p.name for p in folder.iterdir())
    assert "kustomization.yaml" in files and "namespace-pay-dev.yaml" in files
    for manifest in manifests:
        name = f"{manifest['kind'].lower()}-{manifest['metadata']['name']}.yaml"
        on_disk = yaml.safe_load((folder / name).read_text())
        assert on_disk == manifest
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert len(kustomization["resources"]) == len(manifests)
    log = git("log", "--format=%an|%s", cwd=folder)
    assert log.strip() == "Golden Path|goldenpath: namespace pay-dev"


def test_rerun_and_dry_run_make_no_commit(cluster: GitOpsCluster) -> None:
    manifests = render(_spec("pay-dev"))
    converge(cluster, manifests)
    again = converge(cluster, manifests)
    assert again.commit is None and {c.outcome for c in again.changes} == {Outcome.UNCHANGED}
    planned = converge(cluster, render(_spec("pay-prod", environment="prod")), dry_run=True)
    assert planned.commit is None and "+kind: Namespace" in planned.diff
    assert _commits(cluster) == 1


def test_a_hand_edit_in_the_repository_is_restored(cluster: GitOpsCluster, tmp_path: Path) -> None:
    manifests = render(_spec("pay-dev"))
    converge(cluster, manifests)
    clone = _clone(cluster, tmp_path, "human")
    quota = clone / "clusters/eu-1/namespaces/pay-dev/resourcequota-goldenpath-quota.yaml"
    edited: dict[str, Any] = yaml.safe_load(quota.read_text())
    edited["spec"]["hard"]["pods"] = "500"
    quota.write_text(yaml.safe_dump(edited))
    git("commit", "-qam", "more pods", cwd=clone)
    git("push", "-q", "origin", "main", cwd=clone)
    result = converge(cluster, manifests, message="restore")
    assert [c.kind for c in result.changes if c.outcome is Outcome.UPDATED] == ["kubernetes.ResourceQuota"]
    assert _commits(cluster) == 3
    git("pull", "-q", cwd=clone)
    assert yaml.safe_load(quota.read_text())["spec"]["hard"]["pods"] == "20"


def test_provenance_survives_a_rerun_by_someone_else(cluster: GitOpsCluster, tmp_path: Path) -> None:
    converge(cluster, render(_spec("pay-dev")))
    other = render(_spec("pay-dev", provenance={"goldenpath.dev/requested-by": "user:default/bob"}))
    assert converge(cluster, other).commit is None


def test_another_owner_is_refused(cluster: GitOpsCluster) -> None:
    converge(cluster, render(_spec("pay-dev")))
    with pytest.raises(ConflictError, match="owned by group:default/team-a"):
        converge(cluster, render(_spec("pay-dev", owner_ref="group:default/team-b")), owner="group:default/team-b")
    assert _commits(cluster) == 1


def test_replicas_pushing_at_once_each_land_their_commit(cluster: GitOpsCluster, tmp_path: Path) -> None:
    """Replicas keep their own clones; when another replica pushed first, a push is replayed on top of it (the
    folders differ: namespace names are claimed) instead of failing the run."""
    replicas = [cluster, GitOpsCluster("eu-1", remote=cluster.remote, workdir=str(tmp_path / "work-b")),
                GitOpsCluster("eu-1", remote=cluster.remote, workdir=str(tmp_path / "work-c"))]
    converge(cluster, render(_spec("seed-dev")))  # the remote's first commit

    def make(index: int) -> None:
        for n in range(4):
            converge(replicas[index], render(_spec(f"r{index}-{n}-dev")))

    with ThreadPoolExecutor(len(replicas)) as pool:
        list(pool.map(make, range(len(replicas))))  # re-raises any failed push
    checked = _clone(cluster, tmp_path)
    folders = sorted(p.name for p in (checked / "clusters" / "eu-1" / "namespaces").iterdir())
    assert folders == sorted(["seed-dev", *(f"r{i}-{n}-dev" for i in range(3) for n in range(4))])
    assert _commits(cluster) == 1 + 3 * 4
