"""A legitimate chain must verify on SQLite and PostgreSQL alike, whatever its events hold: the MAC is made over
the values written and checked over the values read back, so anything the database stores differently (key order,
unicode escapes, number forms, characters it cannot hold) would be a false alarm, or an append that fails."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from backend.services.audit import verify
from backend.store.audit import NewAuditEvent
from tests.audit_chains import audit_store

NUMBERS: list[Any] = [0.1, 1e16, 1e-7, -0.0, 1.7976931348623157e308, 5e-324, 2**53 + 1, 2**64, -(2**63), 1.0, 100.0,
                      123456789.123456789, 3]
TEXTS = ["é", "日本語", "😀", "e\u0301", "\u05d0\u05d1", "\u2028\u2029", "\ufeff", '"quoted"', "back\\slash", "a/b",
         "tab\tnew\nline", "\x7f", "\x1b[31m", "</script>", "\u0000", "\U0010ffff", "\ud7ff\ue000", ""]


def _deep(depth: int) -> Any:
    value: Any = "bottom"
    for n in range(depth):
        value = {f"k{n}": [value]}
    return value


CHANGES: list[list[dict[str, Any]]] = [
    [{"z": 1, "a": 2, "m": {"y": 1, "b": 2, "A": 3, "_": 4, "é": 5, "10": 6, "9": 7}}],
    [{"kind": "x", "locator": t, "outcome": "created", "details": {t: t}} for t in TEXTS],
    [{"kind": "numbers", "values": NUMBERS, "nested": {str(n): v for n, v in enumerate(NUMBERS)}}],
    [{"kind": "empty", "a": [], "b": {}, "c": None, "d": True, "e": False, "f": [[], [{}]]}],
    [{"kind": "deep", "value": _deep(60)}],
    [],
]


def test_odd_but_legitimate_content_verifies_on_both_databases(database_url: str, tmp_path: Path) -> None:
    database, store = audit_store(database_url, tmp_path)
    for n, changes in enumerate(CHANGES):
        store.append(NewAuditEvent(actor_user="user:default/zoë", actor_caller="token:ci", action_id="goldenpath:x:y:z",
                                   run_id=None, input_digest=f"{n:064x}", result="succeeded", changes=changes,
                                   detail="détail: 日本 😀 \t tab", claimed_user="user:default/ünïcode"))
    result = verify(store)
    assert (result.ok, result.checked) == (True, len(CHANGES)), result
    assert store.list()[1]["changes"][0]["locator"] == TEXTS[0]
    database.dispose()


@pytest.mark.parametrize("text", ["nul \x00 inside", "\x00", "lone \ud800 surrogate", "\udfff"])
@pytest.mark.parametrize("field", ["detail", "actor_claim", "changes"])
def test_characters_a_database_cannot_hold_are_recorded_and_verify(database_url: str, tmp_path: Path, field: str,
                                                                    text: str) -> None:
    """PostgreSQL text cannot hold NUL and no driver encodes a lone surrogate; an event that carries one (an upstream
    error's detail, say) must still be recorded and verify, or the run it records could not finish."""
    database, store = audit_store(database_url, tmp_path)
    event = NewAuditEvent(actor_user=None, actor_caller="token:ci", action_id="goldenpath:x:y:z", run_id=None,
                          input_digest="0" * 64, result="failed",
                          detail=text if field == "detail" else None,
                          claimed_user=text if field == "actor_claim" else None,
                          changes=[{"kind": "x", "locator": text, "outcome": "created"}] if field == "changes" else [])
    store.append(event)
    store.append(event)
    result = verify(store)
    assert (result.ok, result.checked) == (True, 2), result
    if field != "changes":
        assert store.list()[0][field] == re.sub("[\x00\ud800-\udfff]", "\ufffd", text)  # shown replaced
    database.dispose()
