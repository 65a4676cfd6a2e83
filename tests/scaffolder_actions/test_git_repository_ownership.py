"""Who owns a repository is a full entity ref, with the local and the GitHub provider (spec-checked emulator).

`user:default/team-payments` and `group:other/team-payments` are not `group:default/team-payments`, whose
short form `team-payments` is; a repository recorded before full refs (only its team) is that team's group.
Every attempt runs against a fresh database, so what decides is what the repository itself records, as for a
repository made by another replica or before the inventory existed.
"""

from __future__ import annotations

import base64
import itertools
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from connexion import FlaskApp
from starlette.testclient import TestClient

from backend.app import Services
from tests.conftest import API_TOKEN, GITHUB_ORG, github_settings, unique
from tests.github_emulator import GitHubEmulator

RUNS = "/api/v1/actions/goldenpath:git:repository:create/runs"
OWNER = "group:default/team-payments"
AppFactory = Callable[..., tuple[FlaskApp, Services]]


@dataclass
class Host:
    """One repository provider as the tests see it: a fresh app per run, the repository's state, legacy records."""

    make_app: AppFactory
    tmp: Path
    github: GitHubEmulator | None
    _databases: itertools.count[int]

    def run(self, data: dict[str, Any]) -> Any:
        sections = github_settings(self.github) if self.github else {
            "repositories": {"local_root": str(self.tmp / "git"), "org": GITHUB_ORG}}
        # groups of another namespace may own services here, so the repository's own record decides
        app, _ = self.make_app(database_url=f"sqlite:///{self.tmp}/run-{next(self._databases)}.db",
                               policy={"owner_namespaces": ["default", "other"]}, **sections)
        client: TestClient = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
        return client.post(RUNS, json={"input": data})

    def state(self, name: str) -> Any:
        if self.github is None:
            bare = str(self.tmp / "git" / GITHUB_ORG / f"{name}.git")
            return (_git("--git-dir", bare, "config", "--list", "--local"),
                    _git("--git-dir", bare, "for-each-ref"))
        repo = self.github.repos[(GITHUB_ORG, name)]
        return (self.github.writes, dict(repo.refs), repo.description, repo.visibility, list(repo.topics),
                repr(repo.protection), dict(repo.collaborators), dict(repo.invitations))

    def forget_full_owner(self, name: str) -> None:
        """Make the repository look like one created before full refs: it records only its team."""
        if self.github is None:
            _git("--git-dir", str(self.tmp / "git" / GITHUB_ORG / f"{name}.git"), "config", "--unset",
                 "goldenpath.owner")
            return
        repo = self.github.repos[(GITHUB_ORG, name)]
        current = repo.objects.files(repo.objects.commits[repo.refs["refs/heads/main"]].tree)[".goldenpath.yaml"]
        old = b"skeleton: golden-path-service\nversion: 1.1.0\nteam: team-payments\n"
        self.github.put_content({"owner": GITHUB_ORG, "repo": name, "path": ".goldenpath.yaml"}, {
            "message": "the marker of an older Golden Path", "content": base64.b64encode(old).decode(),
            "sha": current[1]}, {}, "goldenpath-bot")


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(params=["local", "github"])
def host(request: pytest.FixtureRequest, make_app: AppFactory, tmp_path: Path) -> Host:
    github = request.getfixturevalue("github") if request.param == "github" else None
    return Host(make_app, tmp_path, github, itertools.count())


def repo_input(name: str, owner: str = OWNER) -> dict[str, Any]:
    return {"name": name, "description": "Payments API", "owner": owner, "system": "payments",
            "topics": ["payments"]}


def created(host: Host) -> str:
    name = unique("svc")
    first = host.run(repo_input(name))
    assert first.status_code == 201, first.text
    return name


def test_a_person_cannot_own_or_take_over_a_repository(host: Host) -> None:
    name = created(host)
    before = host.state(name)
    answer = host.run(repo_input(name, owner="user:default/team-payments"))
    assert answer.status_code == 422, answer.text
    problem = answer.json()
    assert problem["rule"] == "owner-must-be-group"
    assert [(e["field"], e["rule"]) for e in problem["errors"]] == [("owner", "owner-must-be-group")]
    assert host.state(name) == before

    fresh = unique("svc")  # nor can a person be the owner of a new repository
    assert host.run(repo_input(fresh, owner="user:default/jane")).status_code == 422
    if host.github is None:
        assert not (host.tmp / "git" / GITHUB_ORG / f"{fresh}.git").exists()
    else:
        assert (GITHUB_ORG, fresh) not in host.github.repos and host.github.writes == before[0]


def test_a_group_of_the_same_name_in_another_namespace_is_another_owner(host: Host) -> None:
    name = created(host)
    before = host.state(name)
    answer = host.run(repo_input(name, owner="group:other/team-payments"))
    assert answer.status_code == 409, answer.text
    assert answer.json()["owner"] == OWNER
    assert host.state(name) == before


@pytest.mark.parametrize("same", ["team-payments", "default/team-payments"])
def test_the_short_form_is_the_same_owner(host: Host, same: str) -> None:
    name = created(host)
    before = host.state(name)
    again = host.run(repo_input(name, owner=same))
    assert again.status_code == 201, again.text
    assert {c["outcome"] for c in again.json()["changes"]} == {"unchanged"}
    assert host.state(name) == before


def test_a_repository_from_before_full_refs_belongs_to_its_group(host: Host) -> None:
    name = created(host)
    host.forget_full_owner(name)
    before = host.state(name)
    taken = host.run(repo_input(name, owner="group:other/team-payments"))
    assert taken.status_code == 409 and taken.json()["owner"] == OWNER, taken.text
    assert host.run(repo_input(name, owner="user:default/team-payments")).status_code == 422
    assert host.state(name) == before

    ours = host.run(repo_input(name, owner="team-payments"))
    assert ours.status_code == 201, ours.text
    changed = [(c["kind"], c.get("fields")) for c in ours.json()["changes"] if c["outcome"] != "unchanged"]
    if host.github is None:  # the full ref is recorded from now on
        assert changed == [("repository.settings", ["goldenpath.owner"])]
        assert f"goldenpath.owner={OWNER}" in host.state(name)[0].splitlines()
    else:  # the marker is the repository's content, which an existing repository keeps
        assert changed == []
