"""What a run leaves as evidence beyond its own writes: the intents earlier attempts wrote ahead, resolved by what
the attempt that finishes the run reads back; and the canonical bytes the audit key seals."""

from __future__ import annotations

import json
from typing import Any

from backend.plugin_api import Change, Requester


def resolve_intents(intents: list[dict[str, Any]], now: list[Change], *, attempt: int) -> list[dict[str, Any]]:
    """What earlier attempts were about to write, resolved by this attempt's reading of the same objects: found
    in place (this attempt changed nothing there), the earlier attempt made it; changed again now, this attempt's
    own change says so (but a creation begun then and finished now is both: created then, updated now); not read
    at all, unknown."""
    seen = {(c.kind, c.locator): c for c in now}
    resolved: list[dict[str, Any]] = []
    for intent in intents:
        if intent["attempt"] >= attempt:
            continue
        found = seen.get((intent["kind"], intent["locator"]))
        if found is not None and found.is_write and not (intent["outcome"] == "created"
                                                          and found.outcome.value == "updated"):
            continue
        entry = {"kind": intent["kind"], "locator": intent["locator"],
                 "details": {"attempt": intent["attempt"], "at": intent["at"]}}
        if found is not None:
            resolved.append({**entry, "outcome": intent["outcome"],
                             "details": {**entry["details"], "evidence": f"read back by attempt {attempt}"}})
        else:
            resolved.append({**entry, "outcome": "unknown",
                             "details": {**entry["details"], "intended": intent["outcome"]}})
    return _first_of_each(resolved)


def _first_of_each(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for change in changes:
        out.setdefault((change["kind"], change["locator"]), change)
    return list(out.values())


def requester_record(requester: Requester, *, needs_caller: bool) -> dict[str, Any]:
    """The requester as authorized at acceptance, for a take-over; `needsCaller`: the run had secret input that
    is never stored, so only its caller can run it again."""
    return {"user": requester.user, "caller": requester.caller, "claimedUser": requester.claimed_user,
            "groups": sorted(requester.groups), "admin": requester.admin, "needsCaller": needs_caller}


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
