"""Credentials the service holds or is handed (a person's Backstage token and its obo user token, Golden Path's
catalog token, a static token, a v2 secret) fed through the routes where they are most likely to surface: refused
and failing calls, the git endpoint, the catalog lookups that fail, a secret a template copies into free text.
None may come out in a response, a log line, the database, the audit export, the metrics, the catalog feed or a
rendered repository file."""

from __future__ import annotations

import base64
import logging
import secrets
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from connexion import FlaskApp
from sqlalchemy import text

from backend.app import Services
from backend.log_config import configure_logging
from backend.services.audit import export_jsonl
from tests.api.jwks_server import BackstageKeys
from tests.conftest import API_TOKEN, unique

CANARY = "canary" + secrets.token_hex(10)
STATIC, CATALOG = f"{CANARY}-static", f"{CANARY}-catalog"
REPOSITORY = "goldenpath:git:repository:create"
NATIVE_V2 = f"/api/goldenpath/.backstage/actions/v2/actions/{REPOSITORY.replace(':', '%3A')}/invoke"
NATIVE_V1 = f"/api/goldenpath/.backstage/actions/v1/actions/{REPOSITORY.replace(':', '%3A')}/invoke"
RUNS = f"/api/v1/actions/{REPOSITORY}/runs"
PAYMENTS = "group:default/team-payments"


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers, root.level = handlers, level


@pytest.fixture
def keys() -> Iterator[BackstageKeys]:
    server = BackstageKeys(catalog_token=CATALOG)
    server.members.update({"user:default/alice": [PAYMENTS], "user:default/mallory": ["group:default/team-ledger"]})
    yield server
    server.stop()


def _repo(**overrides: Any) -> dict[str, Any]:
    return {"name": unique("svc"), "description": "Payments", "owner": PAYMENTS, "system": "payments",
            "visibility": "internal", **overrides}


def _rendered(root: Path) -> str:
    """Every file of every branch of every local repository, as git would serve it."""
    out = []
    for repo in sorted(root.glob("*/*.git")):
        out.append(subprocess.run(["git", f"--git-dir={repo}", "log", "--all", "-p", "--format=%H %s %b"],
                                  capture_output=True, text=True, check=True).stdout)
    return "\n".join(out)


def _dump(services: Services) -> str:
    with services.database.engine.connect() as connection:
        tables = [t for t in ("runs", "run_logs", "audit_events", "resources", "name_claims")]
        return repr([list(connection.execute(text(f"SELECT * FROM {t}"))) for t in tables])  # noqa: S608


def test_tokens_and_secrets_never_surface(make_app: Callable[..., tuple[FlaskApp, Services]], keys: BackstageKeys,
                                          database_url: str, tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                          caplog: pytest.LogCaptureFixture, restored_logging: None) -> None:
    app, services = make_app(
        database_url=database_url, repositories={"local_root": str(tmp_path / "git"), "org": "acme"},
        policy={"visibilities": ["private", "internal", "public"]},
        auth={"backstage_url": keys.url, "catalog_token": CATALOG, "backstage_plugins": ["scaffolder"],
              "static_tokens": [{"name": "payments-ci", "token": STATIC, "groups": [PAYMENTS]}]})
    configure_logging("DEBUG", services.redactor)
    client = app.test_client()
    alice_obo = keys.user_token("user:default/alice")
    alice = keys.token(obo=alice_obo)
    mallory_obo = keys.user_token("user:default/mallory")
    mallory = keys.token(obo=mallory_obo)
    expired = keys.token(obo=alice_obo, ttl=-120)
    foreign = keys.token(sub="catalog", obo=alice_obo)  # a plugin not allowed to call
    v2_secret = f"{CANARY}-v2secret"
    as_ = {name: {"Authorization": f"Bearer {token}"} for name, token in
           (("alice", alice), ("mallory", mallory), ("expired", expired), ("foreign", foreign), ("static", STATIC),
            ("wrong", f"{CANARY}-wrong"))}

    seen = [
        client.post(NATIVE_V2, json={"input": _repo(), "secrets": {"token": v2_secret}}, headers=as_["alice"]),
        client.post(NATIVE_V2, json={"input": _repo(), "secrets": {"token": v2_secret}}, headers=as_["mallory"]),
        client.post(NATIVE_V1, json=_repo(), headers=as_["expired"]),
        client.post(NATIVE_V1, json=_repo(), headers=as_["foreign"]),
        client.post(RUNS, json={"input": _repo()}, headers=as_["static"]),
        client.post(RUNS, json={"input": _repo(owner="group:default/team-ledger")}, headers=as_["static"]),
        client.post(RUNS, json={"input": _repo()}, headers=as_["wrong"]),
        client.post(RUNS, json={"input": _repo(), "context": {"user": "user:default/alice"}}, headers=as_["alice"]),
        client.get("/api/v1/runs", headers=as_["alice"]), client.get("/api/v1/audit", headers=as_["static"]),
        client.get("/api/v1/metrics", headers=as_["static"]), client.get("/api/v1/readyz", headers=as_["static"]),
        client.get("/api/v1/catalog/entities.yaml", headers=as_["static"]),
        client.get("/api/v1/inventory", headers=as_["static"]),
    ]
    assert [r.status_code for r in seen[:8]] == [200, 403, 401, 401, 201, 403, 401, 201], [r.text for r in seen]
    repo_url = seen[0].json()["output"]["remoteUrl"]
    for token in (alice, STATIC, f"{CANARY}-wrong"):  # the git endpoint, as Basic password and as bearer
        basic = base64.b64encode(f"x:{token}".encode()).decode()
        path = repo_url.split("/git/", 1)[1]
        for header in (f"Basic {basic}", f"Bearer {token}"):
            seen.append(client.get(f"/git/{path}/info/refs?service=git-upload-pack",
                                   headers={"Authorization": header}))

    keys.catalog_token = "the-catalog-now-wants-another-token"  # Golden Path's catalog token is now refused
    seen.append(client.post(NATIVE_V2, json={"input": _repo(), "secrets": {"token": v2_secret}},
                            headers={"Authorization": f"Bearer {keys.token(obo=keys.user_token('user:default/bob'))}"}))
    assert seen[-1].status_code in (502, 503), seen[-1].text

    captured = capfd.readouterr()
    haystacks = {
        "responses": "\n".join(r.text + str(dict(r.headers)) for r in seen), "database": _dump(services),
        "audit export": "".join(export_jsonl(services.stores.audit)), "metrics": services.metrics.render().decode(),
        "stderr": captured.err, "stdout": captured.out, "log records": caplog.text,
        "catalog feed": services.catalog_feed.yaml().body.decode(),
        "rendered repositories": _rendered(tmp_path / "git"),
    }
    for where, haystack in haystacks.items():
        for name, secret in (("canary", CANARY), ("alice's token", alice), ("alice's obo token", alice_obo),
                             ("mallory's token", mallory), ("the obo signature", alice_obo.rsplit(".", 1)[1])):
            assert secret not in haystack, f"{name} leaked into {where}"
    services.database.dispose()


def test_a_v2_secret_copied_into_free_text_is_not_rendered_or_published(
        make_app: Callable[..., tuple[FlaskApp, Services]], tmp_path: Path) -> None:
    """A template that wires a secret (which looks like no credential) into the description or a skeleton value:
    the run record masks it, and it must not reach the repository files, the inventory or the catalog feed."""
    app, services = make_app(repositories={"local_root": str(tmp_path / "git"), "org": "acme"})
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    secret = "correct horse battery staple " + secrets.token_hex(3)  # no scanner calls this a credential
    for data in (_repo(description=f"Payments {secret}"), _repo(values={"note": secret}),
                 _repo(values={"note": "ok", "other": f"x{secret}x"})):
        answer = client.post(NATIVE_V2, json={"input": data, "secrets": {"dbPassword": secret, "short": "abc"}})
        assert answer.status_code == 422, answer.text
        problem = answer.json()["error"]["problem"]
        assert problem["rule"] == "no-secrets-in-input"
        assert [e["field"] for e in problem["errors"]] in (["description"], ["values.note"], ["values.other"])
        assert "dbPassword" in answer.text and secret not in answer.text
    published = (_rendered(tmp_path / "git") + client.get("/api/v1/inventory").text
                 + client.get("/api/v1/catalog/entities.yaml").text + client.get("/api/v1/runs").text)
    assert secret not in published
    ok = client.post(NATIVE_V2, json={"input": _repo(description="Payments abc"), "secrets": {"short": "abc"}})
    assert ok.status_code == 200, ok.text  # a secret too short to police is masked, not refused
    services.database.dispose()
