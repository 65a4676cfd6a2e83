"""git over HTTP follows each repository's visibility, with real `git clone` against the served app: private
repositories need a credential that may act for their owner, internal ones any valid credential, public ones
none. A repository the credential may not read looks missing; without a credential every non-public name asks
for one, so names do not leak."""

from __future__ import annotations

import base64
import http.client
import logging
import os
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.testclient import TestClient

from backend.api.git_access import Decision, RepositoryAccess, decide
from backend.api.git_http import CHALLENGE, credential
from backend.embedded import free_port
from backend.services.auth import Principal
from tests.conftest import API_TOKEN, unique
from tests.providers.test_gitops import git
from tests.scaffolder_actions.test_git_repository_create import RUNS, repo_input, with_token

TEAM_TOKEN = "team-payments-" + "t" * 24
OTHER_TOKEN = "team-other-" + "o" * 24
WRONG_TOKEN = "not-a-golden-path-token-" + "w" * 12


@dataclass(frozen=True)
class Served:
    client: TestClient
    base: str
    port: int
    tmp: Path

    def create(self, visibility: str) -> str:
        """A repository made by the real action (owner team-payments); returns its clone URL."""
        url: str = self.created(visibility)["remoteUrl"]
        return url

    def created(self, visibility: str) -> dict[str, Any]:
        response = self.client.post(RUNS, json={"input": repo_input(visibility=visibility, description="Pays things")})
        assert response.status_code == 201, response.text
        output: dict[str, Any] = response.json()["output"]
        return output

    def request(self, method: str, path: str, *, token: str | None = None, body: bytes | None = None,
                bearer: bool = False) -> tuple[int, dict[str, str], bytes]:
        """Plain HTTP with the path sent as written (no client-side normalisation of `..` or `%2e`)."""
        headers = {"Content-Type": "application/x-git-upload-pack-request"} if body is not None else {}
        if token and bearer:
            headers["Authorization"] = f"Bearer {token}"
        elif token:
            headers["Authorization"] = "Basic " + base64.b64encode(f"x:{token}".encode()).decode()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


@pytest.fixture
def served(make_app: Callable[..., Any], tmp_path: Path) -> Iterator[Served]:
    port = free_port()
    app, _ = make_app(
        server={"port": port}, repositories={"local_root": str(tmp_path / "git"), "org": "acme"},
        policy={"visibilities": ["private", "internal", "public"]},
        auth={"static_tokens": [
            {"name": "payments", "token": TEAM_TOKEN, "groups": ["group:default/team-payments"]},
            {"name": "other", "token": OTHER_TOKEN, "groups": ["group:default/team-other"]}]})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    yield Served(client=client, base=f"http://127.0.0.1:{port}", port=port, tmp=tmp_path)
    server.should_exit = True
    thread.join(10)


def clone(url: str, target: Path, *, askpass: Path | None = None) -> subprocess.CompletedProcess[str]:
    """git as a user runs it, never waiting on a terminal prompt."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(target.parent), "GIT_TERMINAL_PROMPT": "0",
           "GIT_CONFIG_NOSYSTEM": "1", **({"GIT_ASKPASS": str(askpass)} if askpass else {})}
    return subprocess.run(["git", "clone", "-q", url, str(target)], cwd=target.parent, env=env,
                          capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=60)


def assert_refused(result: subprocess.CompletedProcess[str], target: Path, why: str) -> None:
    assert result.returncode != 0, result.stderr
    assert why in result.stderr, result.stderr
    assert not target.exists()  # nothing was fetched


def test_a_private_repository_is_cloned_only_by_its_owner(served: Served) -> None:
    url = served.create("private")
    tmp = served.tmp
    assert_refused(clone(url, tmp / "anonymous"), tmp / "anonymous", "could not read Username")
    assert_refused(clone(with_token(url, WRONG_TOKEN), tmp / "wrong"), tmp / "wrong", "Authentication failed")
    assert_refused(clone(with_token(url, OTHER_TOKEN), tmp / "other"), tmp / "other", "not found")

    assert clone(with_token(url), tmp / "admin").returncode == 0
    assert clone(with_token(url, TEAM_TOKEN), tmp / "team").returncode == 0
    assert (tmp / "team" / "CODEOWNERS").read_text().strip().endswith("@acme/team-payments")


def test_git_asks_for_the_token_and_uses_the_answer(served: Served) -> None:
    """The credential prompt flow: the 401 challenge makes git ask (here through GIT_ASKPASS)."""
    url = served.create("private")
    askpass = served.tmp / "askpass.sh"
    askpass.write_text(f'#!/bin/sh\ncase "$1" in Password*) echo "{TEAM_TOKEN}";; *) echo someone;; esac\n')
    askpass.chmod(askpass.stat().st_mode | stat.S_IXUSR)
    result = clone(url, served.tmp / "prompted", askpass=askpass)
    assert result.returncode == 0, result.stderr
    assert (served.tmp / "prompted" / "CODEOWNERS").exists()


def test_internal_needs_any_valid_credential_and_public_none(served: Served) -> None:
    internal, public = served.create("internal"), served.create("public")
    tmp = served.tmp
    assert_refused(clone(internal, tmp / "anonymous"), tmp / "anonymous", "could not read Username")
    assert clone(with_token(internal, OTHER_TOKEN), tmp / "other").returncode == 0
    assert clone(public, tmp / "public").returncode == 0


def pkt_line(text: str) -> bytes:
    return f"{len(text) + 4:04x}{text}".encode()


@pytest.mark.parametrize(("method", "endpoint", "answer"), [
    ("GET", "info/refs?service=git-upload-pack", b"# service=git-upload-pack"), ("POST", "git-upload-pack", b"PACK"),
])
def test_both_endpoints_answer_like_a_missing_repository(served: Served, method: str, endpoint: str,
                                                         answer: bytes) -> None:
    output = served.created("private")
    private = output["remoteUrl"].removeprefix(served.base)
    want = pkt_line(f"want {output['commitHash']} side-band-64k thin-pack ofs-delta\n") + b"0000" + pkt_line("done\n")
    body = want if method == "POST" else None
    missing = f"/git/acme/{unique('nothing')}.git"

    for path in (private, missing):  # anonymous: the same challenge, whether the name exists or not
        status, headers, _ = served.request(method, f"{path}/{endpoint}", body=body)
        assert (status, headers.get("www-authenticate")) == (401, CHALLENGE)
    for token, bearer in ((OTHER_TOKEN, False), (OTHER_TOKEN, True)):  # another team: not found, both alike
        answers = {served.request(method, f"{path}/{endpoint}", token=token, body=body, bearer=bearer)[::2]
                   for path in (private, missing)}
        assert answers == {(404, b"repository not found\n")}
    status, _, content = served.request(method, f"{private}/{endpoint}", token=TEAM_TOKEN, body=body, bearer=True)
    assert status == 200 and answer in content, content[:200]


def test_a_refused_token_is_not_logged(served: Served, caplog: pytest.LogCaptureFixture) -> None:
    private = served.create("private").removeprefix(served.base)
    with caplog.at_level(logging.INFO, logger="goldenpath"):
        status, _, _ = served.request("GET", f"{private}/info/refs?service=git-upload-pack", token=WRONG_TOKEN)
    assert status == 401
    assert any("refused" in r.getMessage() for r in caplog.records)
    assert not any(WRONG_TOKEN in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("path", [
    "/git/../acme/{name}.git/info/refs", "/git/acme/../acme/{name}.git/info/refs",
    "/git/acme/%2e%2e/acme/{name}.git/info/refs", "/git/acme/..%2facme%2f{name}.git/info/refs",
    "/git/%2Fetc/passwd", "/git//etc/passwd", "/git/acme/{name}.git/config", "/git/acme/{name}.git/description",
    "/git/acme/{name}.git/../{name}.git/info/refs", "/git/acme/{name}.git/info/../config",
])
def test_only_git_endpoints_of_repositories_under_the_root_are_served(served: Served, path: str) -> None:
    name = served.create("public").rsplit("/", 1)[-1].removesuffix(".git")
    status, _, body = served.request("GET", path.format(name=name) + "?service=git-upload-pack", token=API_TOKEN)
    assert status in (400, 404), body


def test_a_link_out_of_the_root_is_no_repository(served: Served) -> None:
    """A public repository elsewhere on disk, linked into the root, is not served to anyone."""
    outside = served.tmp / "elsewhere.git"
    git("init", "-q", "--bare", str(outside), cwd=served.tmp)
    git("--git-dir", str(outside), "config", "goldenpath.visibility", "public", cwd=served.tmp)
    (served.tmp / "git" / "acme").mkdir(parents=True, exist_ok=True)
    os.symlink(outside, served.tmp / "git" / "acme" / "linked.git")
    path = "/git/acme/linked.git/info/refs?service=git-upload-pack"
    assert served.request("GET", path)[0] == 401
    assert served.request("GET", path, token=API_TOKEN)[0] == 404


def test_the_credential_is_the_basic_password_or_a_bearer_token() -> None:
    def basic(text: str) -> str:
        return "Basic " + base64.b64encode(text.encode()).decode()

    assert credential(basic("anyone:tok")) == "tok"
    assert credential(basic("user:with:colons")) == "with:colons"
    assert credential("Bearer tok") == "tok" and credential("bearer  tok ") == "tok"
    assert [credential(h) for h in (None, "", basic("tok"), basic("user:"), "Basic !!!", "Token tok")] == [None] * 6


def test_visibility_decides_and_no_visibility_counts_as_private() -> None:
    owner = "group:default/team-a"
    member = Principal(caller="token:a", user=None, kind="static", groups=frozenset({owner}))
    stranger = Principal(caller="token:b", user=None, kind="static")
    admin = Principal(caller="token:c", user=None, kind="static", admin=True)

    def may_read(principal: Principal, owner_ref: str) -> bool:
        return principal.admin or owner_ref in principal.groups

    private, unowned = RepositoryAccess("private", owner), RepositoryAccess("private", None)
    assert decide(RepositoryAccess("public", owner), None, may_read) is Decision.SERVE
    assert [decide(r, None, may_read) for r in (private, RepositoryAccess("internal", owner), None)] == [
        Decision.CHALLENGE] * 3
    assert decide(RepositoryAccess("internal", owner), stranger, may_read) is Decision.SERVE
    assert [decide(private, p, may_read) for p in (member, stranger, admin)] == [
        Decision.SERVE, Decision.HIDE, Decision.SERVE]
    assert [decide(unowned, p, may_read) for p in (member, admin)] == [Decision.HIDE, Decision.SERVE]
    assert decide(None, admin, may_read) is Decision.HIDE
