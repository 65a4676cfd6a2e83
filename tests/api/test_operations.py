"""Liveness, readiness (store and Vault) and metrics."""

from typing import Any

from tests.conftest import API_TOKEN, VAULT_ACTION, vault_input
from tests.fakes.secrets import FakeSecretsStore


def test_readyz_reports_each_dependency(make_app: Any) -> None:
    fake = FakeSecretsStore()
    app, _ = make_app(secrets_store=fake)
    client = app.test_client()
    assert client.get("/api/v1/readyz").json() == {"status": "ok", "checks": {"database": "ok", "vault": "ok"}}
    fake.down = True
    response = client.get("/api/v1/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["vault"] == "fake vault is down"


def test_readyz_against_a_stopped_vault(make_app: Any) -> None:
    app, _ = make_app(vault={"addr": "http://127.0.0.1:9", "timeout_seconds": 1})
    assert app.test_client().get("/api/v1/readyz").status_code == 503


def test_metrics_count_runs_and_upstream_errors(make_app: Any) -> None:
    fake = FakeSecretsStore()
    app, _ = make_app(secrets_store=fake)
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    client.post(f"/api/v1/actions/{VAULT_ACTION}/runs", json={"input": vault_input()})
    fake.down = True
    assert client.post(f"/api/v1/actions/{VAULT_ACTION}/runs", json={"input": vault_input()}).status_code == 503
    text = client.get("/api/v1/metrics").text
    assert f'goldenpath_runs_total{{action="{VAULT_ACTION}",dry_run="false",status="failed"}} 1.0' in text
    assert 'goldenpath_upstream_errors_total{provider="vault",retryable="true"} 1.0' in text
    assert "goldenpath_run_duration_seconds_bucket" in text
