"""GET /api/v1/audit/verification: the keyed, witnessed chain as the REST API reports it (responses validated)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connexion import FlaskApp
from sqlalchemy import update

from backend.app import Services
from backend.store.models import AuditEvent
from tests.audit_chains import new_event
from tests.conftest import API_TOKEN


def test_verification_reports_counts_then_the_edited_event(
    make_app: Callable[..., tuple[FlaskApp, Services]], database_url: str,
) -> None:
    app, services = make_app(database_url=database_url)
    client = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    for n in range(3):
        services.stores.audit.append(new_event(n))
    events = client.get("/api/v1/audit").json()["items"]
    assert {e["key_id"] for e in events} == {services.stores.audit.key.key_id}
    intact: dict[str, Any] = client.get("/api/v1/audit/verification").json()
    assert intact == {"ok": True, "checked": 3, "firstBadSeq": None, "reason": None, "kind": None, "legacy": 0,
                      "checkpoints": 3, "witnessedSeq": 3}

    with services.database.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(detail="nothing happened"))
    broken = client.get("/api/v1/audit/verification")
    assert broken.status_code == 200
    assert {k: broken.json()[k] for k in ("ok", "checked", "firstBadSeq", "kind")} == {
        "ok": False, "checked": 1, "firstBadSeq": 2, "kind": "edited"}
    services.database.dispose()


def test_only_admins_may_run_a_full_verification(make_app: Callable[..., tuple[FlaskApp, Services]]) -> None:
    """It reads every event and, with a transit key, calls Vault once per event: no team token may start one."""
    team_token = "team-token-" + "t" * 20
    app, _ = make_app(auth={"static_tokens": [{"name": "team", "token": team_token, "groups": ["team-a"]}]})
    team = app.test_client(headers={"Authorization": f"Bearer {team_token}"})
    refused = team.get("/api/v1/audit/verification")
    assert refused.status_code == 403 and refused.json()["rule"] == "admin-only"
    assert team.get("/api/v1/audit").status_code == 200  # reading the trail stays open to every credential
    admin = app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})
    assert admin.get("/api/v1/audit/verification").json()["ok"] is True
