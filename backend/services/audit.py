"""Audit chain verification and export.

Verification checks every event's MAC (keyed outside the database) and link, then the witness's checkpoints
(also outside the database): a database administrator can neither edit, delete nor recompute events, nor cut
the tail, without `verify` naming the event and what was done to it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from backend.audit_keys import AuditKey
from backend.audit_witness import Checkpoint, WitnessError
from backend.store.audit import GENESIS_HASH, AuditStore, event_content, event_hash


class Tampering(StrEnum):
    MISSING = "missing"  # an event deleted from the middle
    EDITED = "edited"  # content that does not match its MAC (or, for a legacy event, its hash)
    RELINKED = "relinked"  # prev_hash is not the previous event's hash
    UNKEYED = "unkeyed"  # a legacy (unkeyed) event after keyed ones: a downgrade
    UNKNOWN_KEY = "unknown-key"  # a MAC under a key this service does not hold
    TRUNCATED = "truncated"  # events cut from the end
    REWRITTEN = "rewritten"  # the witness saw another event at that seq
    FORGED = "forged-checkpoint"  # a witness checkpoint whose MAC is not the key's
    BAD_WITNESS = "bad-witness"  # the witness holds something that is not a checkpoint
    HEAD = "head-mismatch"  # the stored chain head disagrees with the events


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    first_bad_seq: int | None = None
    reason: str | None = None
    kind: str | None = None
    legacy: int = 0  # events from before keyed chaining, accepted only as the chain's prefix
    checkpoints: int = 0
    witnessed_seq: int = 0  # the latest event the witness holds a checkpoint of

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "firstBadSeq": self.first_bad_seq, "reason": self.reason,
                "kind": self.kind, "legacy": self.legacy, "checkpoints": self.checkpoints,
                "witnessedSeq": self.witnessed_seq}


class _Broken(Exception):
    def __init__(self, kind: Tampering, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.seq, self.reason = kind, seq, reason


class _Walk:
    """The chain walked in order; raises _Broken at the first event that does not hold."""

    def __init__(self, key: AuditKey) -> None:
        self.key = key
        self.previous_hash, self.last_seq, self.legacy, self.first_keyed = GENESIS_HASH, 0, 0, 0

    def check(self, event: dict[str, Any]) -> None:
        seq, expected, key_id = event["seq"], self.last_seq + 1, event["key_id"]
        if seq != expected:
            raise _Broken(Tampering.MISSING, expected, f"event {expected} is missing: deleted from the chain")
        if event["prev_hash"] != self.previous_hash:
            raise _Broken(Tampering.RELINKED, seq, "prev_hash does not match the previous event")
        if key_id is None:
            if self.first_keyed:
                raise _Broken(Tampering.UNKEYED, seq, f"it has no key id, but keyed events began at {self.first_keyed}:"
                              " unkeyed (legacy) events are accepted only before the first keyed one")
            if event_hash(event) != event["hash"]:
                raise _Broken(Tampering.EDITED, seq, "content does not match its hash (a legacy, unkeyed event)")
            self.legacy += 1
        elif not self.key.knows(key_id):
            raise _Broken(Tampering.UNKNOWN_KEY, seq,
                          f"its MAC was made with key {key_id}, not with the configured key {self.key.key_id}")
        elif not self.key.check(key_id, event_content(event), event["hash"]):
            raise _Broken(Tampering.EDITED, seq, "content does not match its MAC")
        else:
            self.first_keyed = self.first_keyed or seq
        self.previous_hash, self.last_seq = event["hash"], seq


def verify(store: AuditStore) -> Verification:
    walk = _Walk(store.key)
    checkpoints: list[Checkpoint] = []
    try:
        checkpoints = _witnessed(store)  # read before the events: everything witnessed was committed before
        by_seq: dict[int, list[Checkpoint]] = defaultdict(list)
        for checkpoint in checkpoints:
            by_seq[checkpoint.seq].append(checkpoint)
        for event in store.iterate():
            walk.check(event)
            _check_checkpoints(by_seq.pop(event["seq"], []), event, store.key)
        _check_beyond_the_end([c for seq in by_seq.values() for c in seq], walk.last_seq, store.key)
        _check_head(store, walk)
    except _Broken as broken:
        checked = min(walk.last_seq, broken.seq - 1) if broken.seq else walk.last_seq
        return Verification(False, checked, broken.seq, broken.reason, str(broken.kind), legacy=walk.legacy)
    return Verification(True, walk.last_seq, legacy=walk.legacy, checkpoints=len(checkpoints),
                        witnessed_seq=max((c.seq for c in checkpoints), default=0))


def _witnessed(store: AuditStore) -> list[Checkpoint]:
    try:
        return store.witness.checkpoints()
    except WitnessError as exc:
        raise _Broken(Tampering.BAD_WITNESS, None, str(exc)) from None


def _check_genuine(checkpoint: Checkpoint, key: AuditKey) -> None:
    if not key.knows(checkpoint.key_id):
        raise _Broken(Tampering.FORGED, checkpoint.seq, f"the witness's checkpoint of event {checkpoint.seq} is "
                      f"signed with key {checkpoint.key_id}, not with the configured key {key.key_id}")
    if not checkpoint.is_genuine(key):
        raise _Broken(Tampering.FORGED, checkpoint.seq,
                      f"the witness's checkpoint of event {checkpoint.seq} does not match its MAC: forged")


def _check_checkpoints(checkpoints: Iterable[Checkpoint], event: dict[str, Any], key: AuditKey) -> None:
    for checkpoint in checkpoints:
        _check_genuine(checkpoint, key)
        if checkpoint.hash != event["hash"]:
            raise _Broken(Tampering.REWRITTEN, event["seq"], f"the witness saw event {event['seq']} with another "
                          "hash: history was rewritten after it was witnessed")


def _check_beyond_the_end(checkpoints: list[Checkpoint], last_seq: int, key: AuditKey) -> None:
    for checkpoint in checkpoints:
        _check_genuine(checkpoint, key)
    if checkpoints:
        seen = max(c.seq for c in checkpoints)
        raise _Broken(Tampering.TRUNCATED, last_seq + 1,
                      f"the chain ends at {last_seq} but the witness saw {seen} — events were cut")


def _check_head(store: AuditStore, walk: _Walk) -> None:
    """The head row is updated with each append. Read after the walk, it may be ahead of it only by events
    appended meanwhile, which then exist."""
    head_seq, head_hash = store.head()
    last = walk.last_seq
    if (head_seq == last and head_hash != walk.previous_hash) or head_seq < last:
        raise _Broken(Tampering.HEAD, last, f"the chain head (event {head_seq}) does not match the last event ({last})")
    if head_seq > last:
        after = store.list(after=last, limit=1)
        if not after:
            raise _Broken(Tampering.TRUNCATED, last + 1,
                          f"the chain ends at {last} but its head says {head_seq} — events were cut")
        if after[0]["seq"] != last + 1:
            raise _Broken(Tampering.MISSING, last + 1, f"event {last + 1} is missing: deleted from the chain")


def export_jsonl(store: AuditStore) -> Iterator[str]:
    for event in store.iterate():
        yield json.dumps(event, sort_keys=True) + "\n"
