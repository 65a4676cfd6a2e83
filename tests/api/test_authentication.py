"""Static tokens and Backstage plugin tokens (ES256, aud goldenpath) verified against a live JWKS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from tests.api.jwks_server import BackstageKeys
from tests.conftest import API_TOKEN, VAULT_ACTION, vault_input

INVOKE = f"/api/goldenpath/.backstage/actions/v1/actions/{VAULT_ACTION.replace(':', '%3A')}/invoke"


@pytest.fixture
def keys() -> Iterator[BackstageKeys]:
    server = BackstageKeys()
    yield server
    server.stop()


@pytest.fixture
def anonymous(make_app: Any, keys: BackstageKeys) -> TestClient:
    app, _ = make_app(auth={"backstage_url": keys.url})
    return app.test_client()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_wrong_token_are_401(anonymous: TestClient) -> None:
    for headers in ({}, _bearer("wrong"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = anonymous.get("/api/v1/actions", headers=headers)
        assert response.status_code == 401
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"].startswith("Bearer")


def test_static_token_is_accepted(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/actions", headers=_bearer(API_TOKEN)).status_code == 200


def test_backstage_plugin_token_with_a_verified_person_is_accepted_and_audited(
    make_app: Any, keys: BackstageKeys
) -> None:
    keys.members["user:default/jane"] = ["group:default/team-payments"]
    app, _ = make_app(auth={"backstage_url": keys.url, "catalog_token": keys.catalog_token})
    client = app.test_client()
    token = keys.token(obo=keys.user_token("user:default/jane"))
    response = client.post(INVOKE, json=vault_input(), headers=_bearer(token))
    assert response.status_code == 200, response.text
    [event] = client.get("/api/v1/audit", headers=_bearer(API_TOKEN)).json()["items"]
    assert (event["actor_caller"], event["actor_user"]) == ("backstage:scaffolder", "user:default/jane")


@pytest.mark.parametrize("claims", [{"aud": "catalog"}, {"ttl": -3600}, {"sub": "catalog"}])
def test_wrong_audience_expired_or_foreign_plugin_is_401(
    anonymous: TestClient, keys: BackstageKeys, claims: dict[str, Any]
) -> None:
    response = anonymous.get("/api/goldenpath/.backstage/actions/v1/actions", headers=_bearer(keys.token(**claims)))
    assert response.status_code == 401
    assert response.json()["response"]["statusCode"] == 401


def test_unsigned_and_foreign_signed_tokens_are_401(anonymous: TestClient, keys: BackstageKeys) -> None:
    unsigned = jwt.encode({"sub": "scaffolder", "aud": "goldenpath", "exp": 9999999999}, None, algorithm="none")
    hs256 = jwt.encode({"sub": "scaffolder", "aud": "goldenpath", "exp": 9999999999}, "k" * 32, algorithm="HS256")
    stranger = BackstageKeys()
    forged = stranger.token()
    stranger.stop()
    for token in (unsigned, hs256, forged):
        assert anonymous.get("/api/v1/actions", headers=_bearer(token)).status_code == 401


def test_keys_are_cached_and_refetched_for_an_unknown_kid(make_app: Any, keys: BackstageKeys) -> None:
    app, _ = make_app(auth={"backstage_url": keys.url, "jwks_refresh_cooldown_seconds": 0})
    client = app.test_client()
    for _ in range(3):
        assert client.get("/api/v1/actions", headers=_bearer(keys.token())).status_code == 200
    assert keys.fetches == 1
    keys.rotate()
    assert client.get("/api/v1/actions", headers=_bearer(keys.token())).status_code == 200
    assert keys.fetches == 2


def test_unknown_kids_cannot_force_a_refetch_storm(anonymous: TestClient, keys: BackstageKeys) -> None:
    assert anonymous.get("/api/v1/actions", headers=_bearer(keys.token())).status_code == 200
    keys.rotate()
    for _ in range(5):
        assert anonymous.get("/api/v1/actions", headers=_bearer(keys.token())).status_code == 401
    assert keys.fetches == 1


def test_health_and_metrics_need_no_token(anonymous: TestClient) -> None:
    assert anonymous.get("/api/v1/healthz").status_code == 200
    assert anonymous.get("/api/v1/metrics").status_code == 200
