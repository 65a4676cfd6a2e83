"""The GitHub emulator itself: its contract checks catch what breaks GitHub's description, and it answers
the way GitHub does where the action depends on it."""

from __future__ import annotations

from typing import Any

import requests
from github import Auth, Github

from tests.conftest import GITHUB_ORG, GITHUB_TOKEN
from tests.github_emulator import GitHubEmulator, SpecCheck

AUTH = {"Authorization": f"token {GITHUB_TOKEN}"}


def call(emulator: GitHubEmulator, method: str, path: str, body: Any = None) -> requests.Response:
    return requests.request(method, emulator.api_url + path, json=body, headers=AUTH, timeout=10)


def test_a_request_that_breaks_the_description_is_caught(github: GitHubEmulator) -> None:
    call(github, "POST", f"/orgs/{GITHUB_ORG}/repos", {"name": "svc-x"})
    call(github, "POST", f"/repos/{GITHUB_ORG}/svc-x/git/trees", {"tree": [{"path": "a", "mode": "100777"}]})
    assert len(github.violations) == 1 and "100777" in github.violations[0]
    github.violations.clear()


def test_an_operation_outside_the_emulator_is_caught(github: GitHubEmulator) -> None:
    assert call(github, "DELETE", f"/repos/{GITHUB_ORG}/anything").status_code == 404
    assert github.violations == [f"DELETE /repos/{GITHUB_ORG}/anything: no such operation in the emulator"]
    github.violations.clear()


def test_a_response_that_breaks_the_description_is_caught(github_spec: SpecCheck) -> None:
    template = "/repos/{owner}/{repo}/git/trees"
    args = {"owner": "a", "repo": "b"}
    problems = github_spec.response_problems("POST", "/repos/a/b/git/trees", template, args, 201,
                                             b'{"sha": "x", "tree": []}', "application/json")
    assert problems and "'truncated' is a required property" in problems[0]
    undeclared = github_spec.response_problems("POST", "/repos/a/b/git/trees", template, args, 418, b"{}",
                                               "application/json")
    assert undeclared and "ResponseNotFound" in undeclared[0]
    assert github_spec.documents("GET", "/repos/{owner}/{repo}")
    assert not github_spec.documents("GET", "/repos/{owner}/{repo}/golden-path")


def test_behaviours_the_action_depends_on(github: GitHubEmulator) -> None:
    assert call(github, "POST", f"/orgs/{GITHUB_ORG}/repos", {"name": "svc-y"}).status_code == 201
    taken = call(github, "POST", f"/orgs/{GITHUB_ORG}/repos", {"name": "svc-y"})
    assert taken.status_code == 422 and taken.json()["errors"][0]["field"] == "name"
    empty = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-y/git/ref/heads/main")
    assert (empty.status_code, empty.json()["message"]) == (409, "Git Repository is empty.")
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/svc-y/contents/README.md").json()["message"] == (
        "This repository is empty.")
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/nope").status_code == 404
    unauthenticated = requests.get(f"{github.api_url}/repos/{GITHUB_ORG}/svc-y", timeout=10)
    assert unauthenticated.status_code == 401
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/svc-y").headers["x-ratelimit-limit"] == "5000"


def test_pygithub_objects_work_against_it(github: GitHubEmulator) -> None:
    client = Github(base_url=github.api_url, auth=Auth.Token(GITHUB_TOKEN), lazy=True, retry=None,
                    seconds_between_requests=None, seconds_between_writes=None)
    repo = client.get_organization(GITHUB_ORG).create_repo("svc-z", private=True, auto_init=True)
    repo.replace_topics(["alpha", "beta"])
    assert repo.get_topics() == ["alpha", "beta"]
    assert client.get_repo(f"{GITHUB_ORG}/svc-z").get_contents("README.md").decoded_content == b"# svc-z\n"
