"""How Vault's answers reach Backstage: a denial is a 502 that is not retryable (asking again changes nothing), an
unreachable or unavailable Vault a retryable 503 with Retry-After. Denial on the real OpenBao with a token that lacks
one permission; unavailability from a closed port and from a loopback server answering as a sealed or overloaded
Vault does (OpenBao cannot be made to answer so without breaking it for every other test)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from backend.embedded import EmbeddedOpenBao, free_port
from backend.errors import UpstreamError, UpstreamUnavailable
from backend.providers.vault import HvacSecretsStore
from tests.conftest import vault_input
from tests.guarantees.secrets_bench import RUNS, app_client, root_client, token_holding

# everything the secrets action needs except writing policies
ALMOST_ENOUGH = """
path "sys/mounts" { capabilities = ["read"] }
path "sys/auth" { capabilities = ["read"] }
path "secret/*" { capabilities = ["create", "read", "update", "patch"] }
path "sys/policy/*" { capabilities = ["read"] }
"""


def test_a_denial_by_vault_is_a_502_that_is_not_retryable(openbao: EmbeddedOpenBao, tmp_path: Path) -> None:
    root = root_client(openbao)
    if "kubernetes/" not in root.sys.list_auth_methods()["data"]:
        root.sys.enable_auth_method("kubernetes", path="kubernetes")
    root.sys.create_or_update_policy("goldenpath-test-almost-enough", ALMOST_ENOUGH)
    token = token_holding(root, "goldenpath-test-almost-enough")
    client = app_client(openbao, tmp_path, vault={"token": token})
    answer = client.post(RUNS, json={"input": vault_input()})
    assert answer.status_code == 502, answer.text
    problem = answer.json()
    assert (problem["retryable"], problem["provider"]) == (False, "vault")
    assert problem["detail"].startswith("Vault denied permission to write policy")
    assert "retry-after" not in answer.headers and token not in answer.text


def test_an_unreachable_vault_is_a_retryable_503(openbao: EmbeddedOpenBao, tmp_path: Path) -> None:
    client = app_client(openbao, tmp_path, vault={"addr": f"http://127.0.0.1:{free_port()}", "timeout_seconds": 2})
    answer = client.post(RUNS, json={"input": vault_input()})
    assert answer.status_code == 503, answer.text
    problem = answer.json()
    assert (problem["retryable"], problem["provider"]) == (True, "vault")
    assert "unreachable" in problem["detail"] and int(answer.headers["retry-after"]) > 0


class _Answering(BaseHTTPRequestHandler):
    status = 503

    def _answer(self) -> None:
        body = json.dumps({"errors": [f"answered {self.status}"]}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_LIST = _answer

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def vault_answering() -> Iterator[type[_Answering]]:
    handler = type("Handler", (_Answering,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    handler.addr = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("status", "unavailable", "words"), [
    (401, False, "denied"), (403, False, "denied"), (400, False, "refused"), (500, False, "refused"),
    (429, True, "unavailable"), (502, True, "unavailable"), (503, True, "unavailable"),
])
def test_each_vault_answer_is_denied_refused_or_retryable(
    vault_answering: type[_Answering], status: int, unavailable: bool, words: str,
) -> None:
    vault_answering.status = status
    store = HvacSecretsStore(addr=vault_answering.addr, token="s.test", timeout=2)  # type: ignore[attr-defined]
    with pytest.raises(UpstreamError) as raised:
        store.ensure_kv_mount("secret", create=False, dry_run=False)
    error = raised.value
    assert isinstance(error, UpstreamUnavailable) is unavailable
    assert (error.status, error.is_retryable, error.to_problem()["retryable"]) == (
        (503, True, True) if unavailable else (502, False, False))
    assert words in error.detail
