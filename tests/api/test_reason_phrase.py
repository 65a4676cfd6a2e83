"""Golden Path's message in the HTTP status line of Backstage-route errors (the only part of a failed
distributed action that Backstage's task log shows), served by uvicorn with our h11 protocol over real HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import pytest
import requests
import uvicorn

from backend.api.reason_phrase import MAX_REASON_CHARS, ReasonPhraseH11Protocol, reason_phrase
from backend.embedded import free_port
from tests.conftest import API_TOKEN, VAULT_ACTION, vault_input

INVOKE = f"/api/goldenpath/.backstage/actions/v1/actions/{quote(VAULT_ACTION, safe='')}/invoke"


@pytest.fixture
def base_url(make_app: Callable[..., Any]) -> Iterator[str]:
    port = free_port()
    app, _ = make_app(server={"port": port})
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           http=ReasonPhraseH11Protocol))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_a_refused_invocation_carries_our_message_in_the_status_line(base_url: str) -> None:
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {API_TOKEN}"
        refused = session.post(base_url + INVOKE, json=vault_input(environments=["dev", "qa"]), timeout=10)
        assert refused.status_code == 422
        assert refused.reason == "InputError: environments.1: environment 'qa' is not one of dev, staging, prod"
        assert "x-goldenpath-reason" not in refused.headers
        assert refused.json()["error"]["message"] in refused.reason

        # the same kept-alive connection: the next answers have their standard phrases again
        assert session.post(base_url + INVOKE, json=vault_input(), timeout=10).reason == "OK"
        rest = session.post(f"{base_url}/api/v1/actions/{VAULT_ACTION}/runs",
                            json={"input": vault_input(environments=["qa"])}, timeout=10)
        assert (rest.status_code, rest.reason) == (422, "Unprocessable Entity")


def test_an_unauthenticated_invocation_says_so(base_url: str) -> None:
    refused = requests.post(base_url + INVOKE, json=vault_input(), timeout=10)
    assert refused.status_code == 401
    assert refused.reason.startswith("AuthenticationError: ")


def test_a_reason_phrase_is_one_bounded_line_of_printable_ascii() -> None:
    assert reason_phrase("path a\r\nX-Injected: 1\tand  caf\u00e9 \u2713") == "path a X-Injected: 1 and caf"
    long = reason_phrase("x" * 1000)
    assert len(long) == MAX_REASON_CHARS and long.endswith("...")
