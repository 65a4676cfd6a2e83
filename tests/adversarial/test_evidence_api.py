"""What a caller of the REST API (any valid token) can get out of the audit chain: never the key, never a MAC it
could reuse. Every MAC the service makes for a caller's run covers a whole event (all its fields, by name), so no
caller-chosen bytes are MACed alone, and no event's MAC can pass as a witness checkpoint's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connexion import FlaskApp

from backend.app import Services
from backend.audit_witness import Checkpoint
from backend.store.audit import HASHED_FIELDS, event_content
from tests.adversarial.test_evidence_witness import age
from tests.audit_chains import new_event
from tests.conftest import API_TOKEN, VAULT_ACTION, vault_input

TEAM_TOKEN = "team-payments-" + "k" * 24
GETS = ["/api/v1/actions", "/api/v1/runs", "/api/v1/audit", "/api/v1/audit/verification", "/api/v1/inventory",
        "/api/v1/catalog/entities.yaml", "/api/v1/catalog/entities", "/api/v1/healthz", "/api/v1/readyz",
        "/api/v1/metrics", "/api/goldenpath/.backstage/actions/v1/actions"]


def test_a_caller_learns_neither_the_key_nor_a_reusable_mac(
        make_app: Callable[..., tuple[FlaskApp, Services]], database_url: str, tmp_path: Path) -> None:
    key_file, witness_file = tmp_path / "audit.key", tmp_path / "audit-witness.jsonl"
    app, services = make_app(database_url=database_url,
                             audit={"key_file": str(key_file), "witness_file": str(witness_file)},
                             auth={"static_tokens": [{"name": "payments", "token": TEAM_TOKEN,
                                                      "groups": ["group:default/team-payments"]}]})
    client = app.test_client(headers={"Authorization": f"Bearer {TEAM_TOKEN}"})
    runs = f"/api/v1/actions/{VAULT_ACTION}/runs"
    assert client.post(runs, json={"input": vault_input(), "context": {"user": "user:default/claimed"}}
                       ).status_code == 201
    assert client.post(runs, json={"input": vault_input(owner="group:default/someone-else")}).status_code == 403

    secret = key_file.read_text().strip()
    seen = "".join(client.get(path).text for path in GETS)
    assert secret not in seen and secret.upper() not in seen

    events: list[dict[str, Any]] = client.get("/api/v1/audit").json()["items"]
    assert [e["result"] for e in events] == ["succeeded", "refused"]
    key = services.stores.audit.key
    for event in events:
        content = event_content(event)
        assert set(json.loads(content)) == set(HASHED_FIELDS)  # the whole event, fields named: nothing else
        assert key.check(event["key_id"], content, event["hash"])
        # the same MAC is no checkpoint's: checkpoints MAC {"checkpoint": {...}}, which no event's content is
        forged = Checkpoint(seq=event["seq"], hash=event["prev_hash"], at=event["at"], key_id=event["key_id"],
                            mac=event["hash"])
        assert not forged.is_genuine(key)
    assert services.stores.audit.key.key_id not in secret and secret[:16] not in key.key_id
    services.database.dispose()


def test_the_api_reports_a_deleted_witness(make_app: Callable[..., tuple[FlaskApp, Services]], tmp_path: Path) -> None:
    """Through the REST API, whose answers are validated against the OpenAPI description."""
    witness = tmp_path / "audit-witness.jsonl"
    app, services = make_app(audit={"key_file": str(tmp_path / "audit.key"), "witness_file": str(witness)})
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    for n in range(3):
        services.stores.audit.append(new_event(n))
    age(services.database, services.stores.audit, witness)
    assert client.get("/api/v1/audit/verification").json()["ok"] is True
    witness.unlink()
    answer = client.get("/api/v1/audit/verification")
    assert answer.status_code == 200, answer.text
    assert {k: answer.json()[k] for k in ("ok", "kind", "firstBadSeq", "witnessedSeq")} == {
        "ok": False, "kind": "unwitnessed", "firstBadSeq": 1, "witnessedSeq": 0}
    services.database.dispose()
