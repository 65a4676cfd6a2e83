"""GitHubHost against real GitHub (opt-in): set GOLDENPATH_TEST_GITHUB_TOKEN and GOLDENPATH_TEST_GITHUB_ORG.

Optional: GOLDENPATH_TEST_GITHUB_TEAM (an existing team slug in the org, default "goldenpath-test"),
GOLDENPATH_TEST_GITHUB_API_URL (GitHub Enterprise Server: https://HOST/api/v3). The token needs repo
administration in the org and delete_repo: every repository made here is deleted afterwards.
Branch protection on private repositories needs a paid plan; the suite uses private repositories.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from backend.errors import ConflictError
from backend.providers.changes import Change
from backend.providers.github import GitHubConnection, GitHubHost
from backend.providers.repositories import Protection, RepositorySpec

TOKEN = os.environ.get("GOLDENPATH_TEST_GITHUB_TOKEN", "")
ORG = os.environ.get("GOLDENPATH_TEST_GITHUB_ORG", "")
TEAM = os.environ.get("GOLDENPATH_TEST_GITHUB_TEAM", "goldenpath-test")
API_URL = os.environ.get("GOLDENPATH_TEST_GITHUB_API_URL", "https://api.github.com").rstrip("/")

pytestmark = pytest.mark.skipif(
    not (TOKEN and ORG),
    reason="real GitHub suite: set GOLDENPATH_TEST_GITHUB_TOKEN and GOLDENPATH_TEST_GITHUB_ORG to run it")


@pytest.fixture
def repo_name() -> Iterator[str]:
    name = f"goldenpath-test-{secrets.token_hex(4)}"
    yield name
    answer = requests.delete(f"{API_URL}/repos/{ORG}/{name}", timeout=30,
                             headers={"Authorization": f"Bearer {TOKEN}", "Accept": "application/vnd.github+json"})
    assert answer.status_code in (204, 404), f"could not delete test repository {ORG}/{name}: {answer.status_code}"


def host() -> GitHubHost:
    return GitHubHost(GitHubConnection(api_url=API_URL, token=TOKEN), org=ORG)


def spec_for(name: str, **overrides: Any) -> RepositorySpec:
    values: dict[str, Any] = dict(
        org=ORG, name=name, description="Golden Path test repository", visibility="private", default_branch="main",
        owner_team=TEAM, owner_ref=f"group:default/{TEAM}", team_permission="maintain", topics=("goldenpath-test",),
        protection=Protection(),
        commit_message="Initial commit from the golden-path test", skeleton="test@1.0.0")
    values.update(overrides)
    return RepositorySpec(**values)


def files(team: str = TEAM) -> dict[str, bytes]:
    return {"README.md": b"# test\n", "CODEOWNERS": f"* @{ORG}/{team}\n".encode(),
            ".goldenpath.yaml": f"skeleton: test\nversion: 1.0.0\nteam: {team}\n".encode(),
            "src/app/__init__.py": b"", "src/app/main.py": b"print('hi')\n"}


def ensure(spec: RepositorySpec, content: dict[str, bytes], **options: Any) -> tuple[Any, list[Change]]:
    changes: list[Change] = []
    result = host().ensure_repository(spec, content, adopt=options.get("adopt", False),
                                      dry_run=options.get("dry_run", False), on_change=changes.append)
    return result, changes


def test_one_commit_protected_owned_and_a_rerun_writes_nothing(repo_name: str) -> None:
    spec = spec_for(repo_name)
    planned, _ = ensure(spec, files(), dry_run=True)
    assert planned.writes == 0
    first, _ = ensure(spec, files())
    commits = requests.get(f"{API_URL}/repos/{ORG}/{repo_name}/commits", timeout=30,
                           headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert [c["sha"] for c in commits] == [first.commit_hash]
    assert first.settings["teams"][TEAM] == "maintain" and first.settings["codeowners"] == "valid"
    assert first.settings["protection"]["requireCodeOwnerReviews"] is True
    again, changes = ensure(spec, files())
    assert again.writes == 0 and not [c for c in changes if c.is_write]


def test_a_repository_we_did_not_create_needs_adopt(repo_name: str) -> None:
    answer = requests.post(f"{API_URL}/orgs/{ORG}/repos", timeout=30, headers={"Authorization": f"Bearer {TOKEN}"},
                           json={"name": repo_name, "private": True, "auto_init": True})
    assert answer.status_code == 201, answer.text
    with pytest.raises(ConflictError, match="adopt"):
        ensure(spec_for(repo_name), files())
