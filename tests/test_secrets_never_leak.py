"""A canary secret fed in everywhere (API token, Vault token, secret inputs, v2 secrets) never comes out:
not in responses, logs, run records, audit events, error details, metrics or the database."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from backend.app import build_services, create_app
from backend.embedded import EmbeddedOpenBao
from backend.log_config import configure_logging
from backend.services.audit import export_jsonl
from backend.settings import settings_from_dict
from tests.conftest import VAULT_ACTION, github_settings, vault_input
from tests.github_emulator import GitHubEmulator

CANARY = "canary" + secrets.token_hex(12)
REPO_RUNS = "/api/v1/actions/goldenpath:git:repository:create/runs"
API_TOKEN, VAULT_TOKEN, INPUT_SECRET, V2_SECRET, GITHUB_TOKEN = (
    f"{CANARY}-{name}" for name in ("api", "vault", "input", "v2", "github"))
ECHO = "goldenpath:example:echo"


@pytest.fixture
def canary_bao() -> Iterator[EmbeddedOpenBao]:
    with EmbeddedOpenBao(token=VAULT_TOKEN) as bao:
        yield bao


@pytest.fixture
def canary_github(github: GitHubEmulator) -> GitHubEmulator:
    github.tokens.add(GITHUB_TOKEN)
    return github


def test_the_canary_never_leaks(
    installed: Path, canary_bao: EmbeddedOpenBao, canary_github: GitHubEmulator, database_url: str,
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path,
) -> None:
    github = github_settings(canary_github)
    github["github"]["token"] = GITHUB_TOKEN
    settings = settings_from_dict({
        "database": {"url": database_url}, "auth": {"token": API_TOKEN},
        "vault": {"addr": canary_bao.addr, "token": VAULT_TOKEN, "enable_kubernetes_auth": True},
        "server": {"log_level": "DEBUG"}, **github,
        "audit": {"key_file": str(tmp_path / "audit.key"), "witness_file": str(tmp_path / "witness.jsonl")},
    })
    services = build_services(settings, upgrade_schema=True)
    configure_logging("DEBUG", services.redactor)
    client = create_app(settings, services=services, validate_responses=True).test_client(
        headers={"Authorization": f"Bearer {API_TOKEN}"})
    echo_runs = f"/api/v1/actions/{ECHO}/runs"
    repo = {"name": "svc-canary", "description": "Canary", "owner": "group:default/team-payments",
            "system": "payments", "values": {"note": "no secrets here"}}
    invoke_v2 = f"/api/goldenpath/.backstage/actions/v2/actions/{ECHO.replace(':', '%3A')}/invoke"
    seen: list[Any] = [
        client.post(echo_runs, json={"input": {"message": "hi", "apiToken": INPUT_SECRET}}),
        client.post(echo_runs, json={"input": {"message": "hi", "apiToken": INPUT_SECRET, "fail": True}}),
        client.post(invoke_v2, json={"input": {"message": "v2", "apiToken": INPUT_SECRET},
                                     "secrets": {"token": V2_SECRET}}),
        client.post(invoke_v2, json={"input": {"message": "v2", "fail": True}, "secrets": {"token": V2_SECRET}}),
        client.post(f"/api/v1/actions/{VAULT_ACTION}/runs", json={"input": vault_input()}),
        client.get("/api/v1/actions", headers={"Authorization": f"Bearer {CANARY}-wrong"}),
        client.post(REPO_RUNS, json={"input": repo}),
        client.post(REPO_RUNS, json={"input": {**repo, "name": "svc-canary-2", "owner": "group:default/nobody"}}),
        client.post(echo_runs, json={"input": {"message": "hi", "apiToken": INPUT_SECRET, "refuse": True}}),
        client.get("/api/v1/runs"), client.get("/api/v1/audit"), client.get("/api/v1/metrics"),
        client.get("/api/v1/readyz"), client.get("/api/v1/inventory"),
    ]
    statuses = [r.status_code for r in seen[:9]]
    assert statuses == [201, 502, 200, 502, 201, 401, 201, 422, 422]
    assert seen[8].json()["errors"] == [{"field": "apiToken", "rule": "no-tokens",
                                         "message": "token *** is not allowed here"}]
    for run in client.get("/api/v1/runs").json()["items"]:
        seen.append(client.get(f"/api/v1/runs/{run['id']}"))
    assert seen[0].json()["output"]["echoed"] == "hi (token ***)"
    assert any("***" in line["message"] for r in seen[14:] for line in r.json().get("log", []))

    with services.database.engine.connect() as connection:
        tables = ["runs", "run_logs", "audit_events", "resources"]
        dump = [list(connection.execute(text(f"SELECT * FROM {table}"))) for table in tables]  # noqa: S608
    captured = capfd.readouterr()
    haystacks = {
        "responses": "\n".join(r.text for r in seen) + "".join(str(r.headers) for r in seen),
        "database": repr(dump), "audit export": "".join(export_jsonl(services.stores.audit)),
        "metrics": services.metrics.render().decode(), "stderr": captured.err, "stdout": captured.out,
        "log records": caplog.text,
        "the rendered repository": repr(canary_github.files("acme", repo["name"])),
    }
    assert "calling out with token" in captured.err
    for where, haystack in haystacks.items():
        assert CANARY not in haystack, f"the canary leaked into {where}"
