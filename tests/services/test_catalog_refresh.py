"""After the inventory changes, Golden Path asks Backstage to refresh the feed's location: once per change (or
burst of changes), never for a run that changed nothing, off the request path, and a refusal never fails a run.
Backstage's side here is a stand-in HTTP server that records what it is asked; tests/e2e shows a real catalog
picking the entities up."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from backend.embedded import free_port
from tests.conftest import API_TOKEN, unique
from tests.scaffolder_actions.provisioning import REGISTER

FEED = "http://goldenpath.internal:7070/api/v1/catalog/entities.yaml"
BACKSTAGE_TOKEN = "backstage-static-token-for-goldenpath"


class CatalogStandIn:
    """Answers POST /api/catalog/refresh like Backstage's catalog (204) and keeps what it was sent."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.status = 204
        self.gate = threading.Event()  # cleared: a refresh stays under way until the test sets it
        self.gate.set()
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._server = make_server("127.0.0.1", port, self._app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        self.calls.append({"path": request.path, "auth": request.headers.get("Authorization"),
                           "body": request.get_json(silent=True)})
        self.gate.wait(10)
        body = b"" if self.status == 204 else b'{"error":{"name":"NotAllowedError","message":"refresh denied"}}'
        return Response(body, self.status, content_type="application/json")(environ, start_response)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.calls) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.calls


@pytest.fixture
def catalog() -> Iterator[CatalogStandIn]:
    stand_in = CatalogStandIn()
    stand_in._thread.start()
    yield stand_in
    stand_in._server.shutdown()


@pytest.fixture
def app_and_client(make_app: Callable[..., Any], catalog: CatalogStandIn) -> tuple[Any, TestClient]:
    app, services = make_app(auth={"token": API_TOKEN, "backstage_url": catalog.url}, catalog={
        "refresh_location": FEED, "backstage_token": BACKSTAGE_TOKEN, "refresh_min_interval_seconds": 0.2})
    return services, app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def register(client: TestClient, service: str, **extra: Any) -> Any:
    body = {"service": service, "system": "payments", "owner": "group:default/team-payments", "costCenter": "cc-1",
            "description": "Payments", **extra}
    return client.post(REGISTER, json={"input": body})


def test_a_change_asks_backstage_to_refresh_the_feeds_location(
    app_and_client: tuple[Any, TestClient], catalog: CatalogStandIn,
) -> None:
    services, client = app_and_client
    service = unique("svc")
    assert register(client, service).status_code == 201
    [call] = catalog.wait_for(1)
    digest = hashlib.sha1(f"url:{FEED}".encode(), usedforsecurity=False).hexdigest()
    assert call == {"path": "/api/catalog/refresh", "auth": f"Bearer {BACKSTAGE_TOKEN}",
                    "body": {"entityRef": f"location:default/generated-{digest}"}}

    assert register(client, service).status_code == 201  # unchanged: nothing to refresh
    assert client.post(REGISTER, json={"dryRun": True, "input": {
        "service": unique("svc"), "system": "payments", "owner": "group:default/team-payments", "costCenter": "cc-1",
        "description": "only planned"}}).status_code == 201
    time.sleep(1.0)  # five times the minimum interval
    assert len(catalog.calls) == 1
    assert 'goldenpath_catalog_refreshes_total{result="ok"} 1.0' in services.metrics.render().decode()


def test_changes_during_a_refresh_make_exactly_one_more(
    app_and_client: tuple[Any, TestClient], catalog: CatalogStandIn,
) -> None:
    _, client = app_and_client
    catalog.gate.clear()
    assert register(client, unique("svc")).status_code == 201
    catalog.wait_for(1)  # the first refresh is now under way, held inside "Backstage"
    for _ in range(4):
        assert register(client, unique("svc")).status_code == 201
    catalog.gate.set()
    assert len(catalog.wait_for(2)) == 2  # none of the four changes was lost ...
    time.sleep(1.0)  # five times the minimum interval
    assert len(catalog.calls) == 2  # ... and they shared one refresh


def test_a_refused_refresh_never_fails_the_run_nor_shows_the_token(
    app_and_client: tuple[Any, TestClient], catalog: CatalogStandIn, caplog: pytest.LogCaptureFixture,
) -> None:
    services, client = app_and_client
    catalog.status = 403
    response = register(client, unique("svc"))
    assert response.status_code == 201
    catalog.wait_for(1)
    deadline = time.monotonic() + 5
    while 'result="failed"} 1.0' not in services.metrics.render().decode() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert 'goldenpath_catalog_refreshes_total{result="failed"} 1.0' in services.metrics.render().decode()
    assert "refresh denied" in caplog.text
    assert BACKSTAGE_TOKEN not in caplog.text and BACKSTAGE_TOKEN not in response.text


def test_refresh_without_a_backstage_url_or_token_is_refused_at_start(make_app: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match=r"auth\.backstage_url and catalog\.backstage_token"):
        make_app(catalog={"refresh_location": FEED})


def test_the_worker_outlives_an_unreadable_token_file(
    make_app: Callable[..., Any], catalog: CatalogStandIn, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    token_file = tmp_path / "backstage-token"  # not written yet when Golden Path starts, as under make run
    app, services = make_app(auth={"token": API_TOKEN, "backstage_url": catalog.url}, catalog={
        "refresh_location": FEED, "backstage_token_file": str(token_file), "refresh_min_interval_seconds": 0.1})
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    token_file.mkdir()  # then unreadable: IsADirectoryError, not a Golden Path error
    assert register(client, unique("svc")).status_code == 201
    deadline = time.monotonic() + 5
    while "unexpected IsADirectoryError" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "unexpected IsADirectoryError" in caplog.text and catalog.calls == []

    token_file.rmdir()
    token_file.write_text(BACKSTAGE_TOKEN + "\n")  # fixed, or rotated: read at the next refresh, no restart
    assert register(client, unique("svc")).status_code == 201
    [call] = catalog.wait_for(1)
    assert call["auth"] == f"Bearer {BACKSTAGE_TOKEN}"
    assert BACKSTAGE_TOKEN not in services.redactor.text(BACKSTAGE_TOKEN)  # masked once seen
