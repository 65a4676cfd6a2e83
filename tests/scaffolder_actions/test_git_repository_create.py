"""The repository action with the local provider, served over real HTTP: git clones the result file by
file; a re-run writes nothing; conflicts, adoption, dry-run; the rendered skeleton's own tests pass."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import yaml
from starlette.testclient import TestClient

from backend.embedded import free_port
from tests.conftest import API_TOKEN, unique
from tests.providers.test_gitops import git

ACTION = "goldenpath:git:repository:create"
RUNS = f"/api/v1/actions/{ACTION}/runs"


def with_token(url: str, token: str = API_TOKEN) -> str:
    """The clone URL with a Golden Path token as the HTTP Basic password: private repositories need one."""
    scheme, _, rest = url.partition("://")
    return f"{scheme}://x:{token}@{rest}"


def repo_input(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": unique("svc"), "description": "Pays: \"things\" kind: Evil # x",
                            "owner": "group:default/team-payments", "system": "payments",
                            "topics": ["payments", "python"]}
    data.update(overrides)
    return data


@pytest.fixture
def served(make_app: Callable[..., Any], tmp_path: Path) -> Iterator[tuple[TestClient, str, Path]]:
    """The app on a real port (git needs a real HTTP server), with its local repositories in tmp."""
    port = free_port()
    app, _ = make_app(server={"port": port}, repositories={"local_root": str(tmp_path / "git"), "org": "acme"})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"}), f"http://127.0.0.1:{port}", tmp_path
    server.should_exit = True
    thread.join(10)


def test_create_clone_and_rerun(served: tuple[TestClient, str, Path]) -> None:
    client, base, tmp = served
    data = repo_input()
    first = client.post(RUNS, json={"input": data})
    assert first.status_code == 201, first.text
    output = first.json()["output"]
    assert output["remoteUrl"] == f"{base}/git/acme/{data['name']}.git" and len(output["commitHash"]) == 40
    assert output["settings"]["goldenpath.owner-team"] == "team-payments"
    assert output["settings"]["goldenpath.owner"] == "group:default/team-payments"
    assert output["settings"]["receive.denynonfastforwards"] == "true"

    clone = tmp / "clone"
    git("clone", "-q", with_token(output["remoteUrl"]), str(clone), cwd=tmp)
    assert git("log", "--format=%an|%s", cwd=clone).splitlines() == [
        "Golden Path|Initial commit from the golden-path-service skeleton 1.1.0"]
    assert (clone / "CODEOWNERS").read_text().strip().endswith("*  @acme/team-payments")
    entity = yaml.safe_load((clone / "catalog-info.yaml").read_text())
    assert entity["metadata"]["description"] == data["description"]  # user text stays one YAML value
    assert entity["metadata"]["annotations"]["github.com/project-slug"] == f"acme/{data['name']}"
    assert yaml.safe_load((clone / ".goldenpath.yaml").read_text()) == {
        "skeleton": "golden-path-service", "version": "1.1.0", "owner": "group:default/team-payments",
        "team": "team-payments"}

    again = client.post(RUNS, json={"input": data}).json()
    assert [c["outcome"] for c in again["changes"]] == ["unchanged"]
    assert again["output"]["commitHash"] == output["commitHash"]


def test_the_rendered_skeleton_passes_its_own_tests(served: tuple[TestClient, str, Path]) -> None:
    client, _, tmp = served
    output = client.post(RUNS, json={"input": repo_input()}).json()["output"]
    clone = tmp / "service"
    git("clone", "-q", with_token(output["remoteUrl"]), str(clone), cwd=tmp)
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=clone,
                            env={**os.environ, "PYTHONPATH": str(clone / "src")}, capture_output=True, text=True,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_pushes_over_http_are_refused(served: tuple[TestClient, str, Path]) -> None:
    client, _, tmp = served
    output = client.post(RUNS, json={"input": repo_input()}).json()["output"]
    clone = tmp / "pusher"
    git("clone", "-q", with_token(output["remoteUrl"]), str(clone), cwd=tmp)
    (clone / "README.md").write_text("changed\n")
    git("commit", "-qam", "sneaky", cwd=clone)
    with pytest.raises(subprocess.CalledProcessError) as failure:
        git("push", "-q", "origin", "main", cwd=clone)
    assert "403" in failure.value.stderr


def test_settings_drift_is_restored_and_another_team_is_refused(served: tuple[TestClient, str, Path]) -> None:
    client, _, tmp = served
    data = repo_input()
    client.post(RUNS, json={"input": data})
    bare = tmp / "git" / "acme" / f"{data['name']}.git"
    git("--git-dir", str(bare), "config", "receive.denyNonFastForwards", "false", cwd=tmp)
    restored = client.post(RUNS, json={"input": data}).json()
    assert [(c["outcome"], c.get("fields")) for c in restored["changes"]] == [
        ("updated", ["receive.denyNonFastForwards"])]
    taken = client.post(RUNS, json={"input": {**data, "owner": "group:default/team-other"}})
    assert taken.status_code == 409 and taken.json()["owner"] == "group:default/team-payments"


def test_foreign_repositories_need_adopt(served: tuple[TestClient, str, Path]) -> None:
    client, _, tmp = served
    data = repo_input()
    bare = tmp / "git" / "acme" / f"{data['name']}.git"
    bare.parent.mkdir(parents=True)
    git("init", "-q", "--bare", str(bare), cwd=tmp)
    refused = client.post(RUNS, json={"input": data})
    assert refused.status_code == 409 and "adopt" in refused.json()["detail"]
    adopted = client.post(RUNS, json={"input": {**data, "adopt": True}})
    assert adopted.status_code == 201, adopted.text
    assert adopted.json()["changes"][0]["outcome"] == "updated"
    assert adopted.json()["output"]["commitHash"] == ""  # settings only: no content was pushed


def test_dry_run_writes_nothing(served: tuple[TestClient, str, Path]) -> None:
    client, _, tmp = served
    data = repo_input()
    planned = client.post(RUNS, json={"input": data, "dryRun": True}).json()
    assert [c["outcome"] for c in planned["changes"]] == ["created"]
    assert not (tmp / "git" / "acme" / f"{data['name']}.git").exists()


@pytest.mark.parametrize(("overrides", "field"), [
    ({"name": "Not_A_Name"}, "name"), ({"topics": ["UPPER"]}, "topics.0"), ({"visibility": "secret"}, "visibility"),
    ({"defaultBranch": "a..b"}, "defaultBranch"), ({"values": {"BadKey": "x"}}, "values"),
])
def test_bad_input_names_the_field(served: tuple[TestClient, str, Path], overrides: dict[str, Any],
                                   field: str) -> None:
    client, _, _ = served
    response = client.post(RUNS, json={"input": repo_input(**overrides)})
    assert response.status_code == 400, response.text
    assert any(e["field"].startswith(field) for e in response.json()["errors"]), response.json()


@pytest.mark.parametrize(("overrides", "field", "rule"), [
    ({"visibility": "public"}, "visibility", "allowed-visibilities"),
    ({"name": "goldenpath"}, "name", "reserved-names"),
])
def test_platform_rules_are_enforced_before_anything_is_created(
    served: tuple[TestClient, str, Path], overrides: dict[str, Any], field: str, rule: str,
) -> None:
    client, _, tmp = served
    data = repo_input(**overrides)
    response = client.post(RUNS, json={"input": data})
    assert response.status_code == 422, response.text
    assert [(e["field"], e["rule"]) for e in response.json()["errors"]] == [(field, rule)]
    assert not (tmp / "git" / "acme" / f"{data['name']}.git").exists()
