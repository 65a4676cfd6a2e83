"""Attacks on the private git endpoint (`/git/<org>/<repo>.git/...`) over a real HTTP server: reading a private
repository without the owner's credential through any read path or path trick, learning which private repositories
exist from the answer, pushing through any path or method, and making it answer 500."""

from __future__ import annotations

import base64
import http.client
import logging
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

from backend.embedded import free_port
from tests.api.jwks_server import BackstageKeys
from tests.conftest import API_TOKEN, unique
from tests.providers.test_gitops import git
from tests.scaffolder_actions.test_git_repository_create import RUNS, repo_input, with_token

TEAM_TOKEN = "team-payments-" + "t" * 24
OTHER_TOKEN = "team-other-" + "o" * 24
WRONG_TOKEN = "not-a-golden-path-token-" + "w" * 12
UPLOAD = "info/refs?service=git-upload-pack"


@dataclass
class Server:
    client: TestClient
    base: str
    port: int
    root: Path

    def create(self, visibility: str = "private", **overrides: Any) -> dict[str, Any]:
        response = self.client.post(RUNS, json={"input": repo_input(visibility=visibility, **overrides)})
        assert response.status_code == 201, response.text
        output: dict[str, Any] = response.json()["output"]
        output["path"] = output["remoteUrl"].removeprefix(self.base)
        output["dir"] = self.root / output["path"].removeprefix("/git/")
        return output

    def request(self, method: str, path: str, *, authorization: str | None = None, token: str | None = None,
                body: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        sent = dict(headers or {})
        if token:
            sent["Authorization"] = "Basic " + base64.b64encode(f"x:{token}".encode()).decode()
        if authorization is not None:
            sent["Authorization"] = authorization
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in sent.items():
                connection.putheader(name, value)
            if body is not None:
                connection.putheader("Content-Length", str(len(body)))
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()


def serve(make_app: Callable[..., Any], tmp_path: Path, **auth: Any) -> Iterator[Server]:
    port = free_port()
    app, _ = make_app(
        server={"port": port}, repositories={"local_root": str(tmp_path / "git"), "org": "acme"},
        policy={"visibilities": ["private", "internal", "public"]},
        auth={"static_tokens": [
            {"name": "payments", "token": TEAM_TOKEN, "groups": ["group:default/team-payments"]},
            {"name": "other", "token": OTHER_TOKEN, "groups": ["group:default/team-other"]}], **auth})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield Server(app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"}), f"http://127.0.0.1:{port}",
                 port, tmp_path / "git")
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def served(make_app: Callable[..., Any], tmp_path: Path) -> Iterator[Server]:
    yield from serve(make_app, tmp_path)


def _read_paths(repo: dict[str, Any]) -> list[str]:
    """Every read path git's smart and dumb protocols use, for this repository's files."""
    commit = repo["commitHash"]
    paths = [UPLOAD, "info/refs", "HEAD", "objects/info/packs", "objects/info/alternates",
             "objects/info/http-alternates", f"objects/{commit[:2]}/{commit[2:]}"]
    paths += [f"objects/pack/{p.name}" for p in sorted((repo["dir"] / "objects" / "pack").glob("pack-*"))
              if p.suffix in (".pack", ".idx")]
    return paths


def test_no_read_path_gives_a_private_repository_to_anyone_but_its_owner(served: Server) -> None:
    repo = served.create()
    git("--git-dir", str(repo["dir"]), "repack", "-q", "-a", cwd=served.root)  # a pack too, for the dumb paths
    git("--git-dir", str(repo["dir"]), "update-server-info", cwd=served.root)
    loose = served.create()
    missing = f"/git/acme/{unique('nothing')}.git"
    for path in _read_paths(repo) + _read_paths(loose):
        owned = repo if path in _read_paths(repo) else loose
        endpoint = f"{owned['path']}/{path}"
        elsewhere = f"{missing}/{path}"
        for who in ({}, {"token": WRONG_TOKEN}, {"authorization": "Bearer " + WRONG_TOKEN}):
            answers = {served.request("GET", p, **who)[::2] for p in (endpoint, elsewhere)}
            assert answers == {(401, b"authentication required\n")}, (path, who, answers)
        for who in ({"token": OTHER_TOKEN}, {"authorization": "Bearer " + OTHER_TOKEN}):
            answers = {served.request("GET", p, **who)[::2] for p in (endpoint, elsewhere)}
            assert answers == {(404, b"repository not found\n")}, (path, who, answers)
        status, _, _ = served.request("GET", endpoint, token=TEAM_TOKEN)
        assert status in (200, 404), (path, status)  # the owner reads it (404: a dumb file that is not there)
    assert served.request("GET", f"{repo['path']}/{UPLOAD}", token=TEAM_TOKEN)[0] == 200
    assert served.request("GET", f"{loose['path']}/objects/{loose['commitHash'][:2]}/{loose['commitHash'][2:]}",
                          token=TEAM_TOKEN)[0] == 200


TRICKS = [
    "/git/acme/{name}.git/info/refs/", "/git/acme/{name}.git//info/refs", "/git/acme//{name}.git/info/refs",
    "/git//acme/{name}.git/info/refs", "/git/acme/{name}.git/./info/refs", "/git/acme/./{name}.git/info/refs",
    "/git/acme/{name}.git%2Finfo%2Frefs", "/git/acme%2F{name}.git/info/refs", "/git/acme/{name}.git\\info\\refs",
    "/git/acme\\{name}.git/info/refs", "/git/acme/{name}/info/refs", "/git/acme/{name}.git.git/info/refs",
    "/git/acme/{NAME}.git/info/refs", "/git/ACME/{name}.git/info/refs", "/git/acme/{name}.GIT/info/refs",
    "/git/acme/{name}.git/info/refs%00", "/git/acme/{name}.git/info/refs%0a", "/git/acme/{name}.git/info/refs;.js",
    "/git/acme/{name}%EF%BC%8Egit/info/refs", "/git/acme/{name}.git/objects/../config",
    "/git/acme/{name}.git/objects/info/../../config", "/git/acme/{name}.git/HEAD/", "/git/acme/{name}.git/config",
    "/git/acme/{name}.git/description", "/git/acme/{name}.git/hooks/pre-receive.sample",
    "/git/acme/{name}.git/refs/heads/main", "/git/acme/{name}.git/packed-refs", "/git/acme/{name}.git/info/exclude",
    "/git/acme/{name}.git/objects/info/packs/../../../config", "/git/acme/{name}.git/%2e%2e/{name}.git/info/refs",
    "/git/acme/{name}.git/objects/{HI}/{LO}", "/git/acme/{name}.git/objects/{hi}{lo}",
    "/git/acme/{name}.git/objects/{hi}/{lo}/", "/git/./acme/{name}.git/info/refs", "/git/acme/{name}.git/info",
    "/git/acme/{name}.git", "/git/acme/{name}.git/", "/git/acme", "/git/", "/git",
    "/git/acme/%2e%2e/acme/{name}.git/HEAD",
    "/api/../git/acme/{name}.git/info/refs", "/git/acme/{name}.git/info/refs?service=git-upload-pack/../../config",
]


@pytest.mark.parametrize("trick", TRICKS)
def test_path_tricks_serve_nothing_private(served: Server, trick: str) -> None:
    repo = served.create()
    name, commit = repo["path"].rsplit("/", 1)[1].removesuffix(".git"), repo["commitHash"]
    path = trick.format(name=name, NAME=name.upper(), hi=commit[:2], lo=commit[2:], HI=commit[:2].upper(),
                        LO=commit[2:].upper())
    for who in ({}, {"token": OTHER_TOKEN}, {"token": WRONG_TOKEN}):
        status, _, body = served.request("GET", path, **who)
        assert status in (400, 401, 404), (who, status, body[:200])
        assert commit.encode() not in body and b"[core]" not in body
    status, _, body = served.request("GET", path, token=API_TOKEN)  # even the admin gets no file but git's
    assert b"[core]" not in body and b"repositoryformatversion" not in body, (status, body[:200])


@pytest.mark.parametrize("method", ["PUT", "DELETE", "MKCOL", "PROPFIND", "LOCK", "MOVE", "PATCH", "POST"])
@pytest.mark.parametrize("endpoint", ["info/refs", "HEAD", "objects/info/packs", "refs/heads/main",
                                      "objects/00/" + "0" * 38, "git-receive-pack", "git-upload-pack"])
def test_no_method_writes_through_any_path(served: Server, method: str, endpoint: str) -> None:
    repo = served.create()
    before = git("--git-dir", str(repo["dir"]), "show-ref", cwd=served.root)
    for who in ({"token": TEAM_TOKEN}, {"token": API_TOKEN}, {}):
        status, _, _ = served.request(method, f"{repo['path']}/{endpoint}", body=b"0000", **who)
        assert status >= 400 or (method, endpoint) == ("POST", "git-upload-pack"), (method, endpoint, who, status)
    assert git("--git-dir", str(repo["dir"]), "show-ref", cwd=served.root) == before


@pytest.mark.parametrize("query", ["service=git-receive-pack", "service=git%2Dreceive%2Dpack",
                                   "service=git-upload-pack&service=git-receive-pack", "service=%67it-receive-pack",
                                   "x=1&service=git-receive-pack", "SERVICE=git-receive-pack&service=git-receive-pack"])
def test_the_push_advertisement_is_refused_however_the_query_spells_it(served: Server, query: str) -> None:
    repo = served.create("public")
    for who in ({"token": TEAM_TOKEN}, {}):
        status, _, body = served.request("GET", f"{repo['path']}/info/refs?{query}", **who)
        assert status == 403 and b"receive-pack" not in body, (query, who, status, body[:200])


def test_a_real_push_is_refused_and_changes_nothing(served: Server, tmp_path: Path) -> None:
    repo = served.create()
    work = tmp_path / "work"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "clone", "-q", with_token(repo["remoteUrl"], TEAM_TOKEN), str(work)], env=env, check=True,
                   capture_output=True, timeout=60)
    (work / "evil.txt").write_text("pushed\n")
    git("add", "evil.txt", cwd=work)
    git("commit", "-qm", "evil", cwd=work)
    for url in (with_token(repo["remoteUrl"], TEAM_TOKEN), with_token(repo["remoteUrl"], API_TOKEN)):
        pushed = subprocess.run(["git", "push", "-q", url, "HEAD:refs/heads/main"], cwd=work, env=env,
                                capture_output=True, text=True, timeout=60, check=False)
        assert pushed.returncode != 0, pushed.stderr
    assert git("--git-dir", str(repo["dir"]), "rev-parse", "main", cwd=served.root).strip() == repo["commitHash"]


@pytest.mark.parametrize("authorization", [
    "Basic", "Basic ", "Basic ===", "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(), "Basic !!!!",
    "Basic " + base64.b64encode(b"no-colon").decode(), "Basic " + base64.b64encode(b":").decode(),
    "Basic " + base64.b64encode(b"x:" + b"a" * 6000).decode(), "Bearer", "Bearer ", "Bearer a.b.c",
    "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "Digest username=x", "Basic\tabc", "Negotiate YII=",
    "Bearer " + "\u00ff" * 10, "Basic " + base64.b64encode("x:é".encode()).decode(),
])
def test_malformed_credentials_never_answer_500(served: Server, authorization: str) -> None:
    repo = served.create()
    for path in (f"{repo['path']}/{UPLOAD}", f"/git/acme/{unique('nothing')}.git/{UPLOAD}"):
        status, headers, _ = served.request("GET", path, authorization=authorization)
        assert status == 401 and headers.get("www-authenticate"), (authorization, status)


def test_a_damaged_repository_config_is_no_500(served: Server) -> None:
    repo = served.create()
    (repo["dir"] / "config").write_bytes(b"\xff\xfe[[[ not a config \x00\n")
    for who in ({}, {"token": TEAM_TOKEN}, {"token": API_TOKEN}):
        status, _, _ = served.request("GET", f"{repo['path']}/{UPLOAD}", **who)
        assert status in (401, 404), (who, status)


def test_a_garbage_upload_pack_request_ends_cleanly(served: Server, caplog: pytest.LogCaptureFixture) -> None:
    """dulwich answers 200 before reading the request: a malformed one (anyone may send it to a public repository)
    must end the answer cleanly, not break the connection with a server error in the log."""
    repo = served.create("public")
    with caplog.at_level(logging.INFO):
        for body in (b"garbage", b"0000", b"zzzz" * 100, b"0032want " + b"f" * 40 + b"\n0000", b""):
            status, _, _ = served.request("POST", f"{repo['path']}/git-upload-pack", body=body,
                                          headers={"Content-Type": "application/x-git-upload-pack-request"})
            assert status < 500, (body, status)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "refused by the protocol" in caplog.text


def test_links_inside_the_root_are_no_repository(served: Server) -> None:
    """An alias of a private repository (or of its org) inside the root must not open it under another name."""
    repo = served.create()
    name = repo["path"].rsplit("/", 1)[1]
    (served.root / "acme" / "alias.git").symlink_to(repo["dir"])
    (served.root / "evil").symlink_to(served.root / "acme")
    for path in (f"/git/acme/alias.git/{UPLOAD}", f"/git/evil/{name}/{UPLOAD}"):
        assert served.request("GET", path, token=OTHER_TOKEN)[0] == 404
        assert served.request("GET", path, token=TEAM_TOKEN)[0] == 404


# -- a person through Backstage: the answer must not depend on whether the repository exists ---------------------

@pytest.fixture
def keys() -> Iterator[BackstageKeys]:
    server = BackstageKeys()
    yield server
    server.stop()


@pytest.mark.parametrize("catalog", ["no catalog token", "a token the catalog refuses"])
def test_a_person_s_membership_that_cannot_be_read_answers_alike_for_existing_and_missing(
        make_app: Callable[..., Any], tmp_path: Path, keys: BackstageKeys, catalog: str) -> None:
    """Reading a person's groups fails (Golden Path has no catalog token, or the catalog refuses it): a private
    repository must answer exactly as a missing one, and neither with a 500."""
    auth: dict[str, Any] = {"backstage_url": keys.url}
    if catalog != "no catalog token":
        auth["catalog_token"] = "not-the-catalog-token"
    for server in serve(make_app, tmp_path, **auth):
        repo = server.create()
        person = keys.token(obo=keys.user_token("user:default/mallory"))
        answers = [server.request("GET", path, authorization=f"Bearer {person}")[::2]
                   for path in (f"{repo['path']}/{UPLOAD}", f"/git/acme/{unique('nothing')}.git/{UPLOAD}")]
        assert answers[0] == answers[1], answers
        assert answers[0][0] in (404, 503), answers
        internal = server.create("internal")  # any valid credential reads an internal one, groups or not
        assert server.request("GET", f"{internal['path']}/{UPLOAD}", authorization=f"Bearer {person}")[0] == 200
