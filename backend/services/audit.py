"""Audit chain verification and export."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from backend.store.audit import GENESIS_HASH, AuditStore, event_hash


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "firstBadSeq": self.first_bad_seq, "reason": self.reason}


def verify(store: AuditStore) -> Verification:
    previous_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for event in store.iterate():
        if event["seq"] != expected_seq:
            return Verification(False, checked, expected_seq, f"event {expected_seq} is missing")
        if event["prev_hash"] != previous_hash:
            return Verification(False, checked, event["seq"], "prev_hash does not match the previous event")
        if event_hash(event) != event["hash"]:
            return Verification(False, checked, event["seq"], "content does not match its hash")
        previous_hash, expected_seq, checked = event["hash"], expected_seq + 1, checked + 1
    head_seq, head_hash = store.head()
    if (head_seq, head_hash) != (checked, previous_hash):
        return Verification(False, checked, checked + 1, "the chain head does not match the last event")
    return Verification(True, checked)


def export_jsonl(store: AuditStore) -> Iterator[str]:
    for event in store.iterate():
        yield json.dumps(event, sort_keys=True) + "\n"
