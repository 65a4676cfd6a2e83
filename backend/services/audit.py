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
from datetime import UTC, datetime, timedelta
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
    UNWITNESSED = "unwitnessed"  # keyed events old enough to be witnessed that no checkpoint covers


# A checkpoint is written right after its event commits; an event older than this with no checkpoint at or after
# it means the witness lost checkpoints (deleted, emptied, cut) or cannot be written.
WITNESS_GRACE_SECONDS = 60


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

    def __init__(self, key: AuditKey, *, witnessed_by: str) -> None:
        self.key = key
        self.previous_hash, self.last_seq, self.legacy, self.first_keyed = GENESIS_HASH, 0, 0, 0
        self.witnessed_by = witnessed_by  # keyed events made before this time must have a checkpoint by now
        self.must_be_witnessed = 0  # the latest of those

    def check(self, event: dict[str, Any]) -> None:
        seq, expected, key_id = event["seq"], self.last_seq + 1, event["key_id"]
        if seq != expected:
            raise _Broken(Tampering.MISSING, expected, f"event {expected} is missing: deleted from the chain")
        if event["prev_hash"] != self.previous_hash:
            raise _Broken(Tampering.RELINKED, seq, "prev_hash does not match the previous event")
        if not isinstance(event["hash"], str) or not isinstance(key_id, str | None):
            raise _Broken(Tampering.EDITED, seq, "its hash or key id is not text: the row was edited")
        try:
            self._check_mac(seq, key_id, event)
        except (TypeError, ValueError) as exc:  # a value no genuine event holds, e.g. one JSON cannot encode
            raise _Broken(Tampering.EDITED, seq, "it holds a value no event is made of: the row was edited") from exc
        self.previous_hash, self.last_seq = event["hash"], seq

    def _check_mac(self, seq: int, key_id: str | None, event: dict[str, Any]) -> None:
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
            if event["at"] < self.witnessed_by:  # `at` is covered by the MAC just checked
                self.must_be_witnessed = seq


def verify(store: AuditStore) -> Verification:
    cutoff = datetime.now(UTC) - timedelta(seconds=WITNESS_GRACE_SECONDS)  # taken before the witness is read
    walk = _Walk(store.key, witnessed_by=cutoff.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
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
        _check_witnessed(walk, max((c.seq for c in checkpoints), default=0))
    except _Broken as broken:
        checked = min(walk.last_seq, broken.seq - 1) if broken.seq else walk.last_seq
        return Verification(False, checked, broken.seq, broken.reason, str(broken.kind), legacy=walk.legacy,
                            checkpoints=len(checkpoints), witnessed_seq=max((c.seq for c in checkpoints), default=0))
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
    head = store.head()
    last = walk.last_seq
    if head is None:
        raise _Broken(Tampering.HEAD, last, "the chain head row is missing or damaged")
    head_seq, head_hash = head
    if (head_seq == last and head_hash != walk.previous_hash) or head_seq < last:
        raise _Broken(Tampering.HEAD, last, f"the chain head (event {head_seq}) does not match the last event ({last})")
    if head_seq > last:
        after = store.list(after=last, limit=1)
        if not after:
            raise _Broken(Tampering.TRUNCATED, last + 1,
                          f"the chain ends at {last} but its head says {head_seq} — events were cut")
        if after[0]["seq"] != last + 1:
            raise _Broken(Tampering.MISSING, last + 1, f"event {last + 1} is missing: deleted from the chain")


def _check_witnessed(walk: _Walk, witnessed_seq: int) -> None:
    """Every checkpoint has been held against its event by now; the latest one must cover every keyed event old
    enough to have been witnessed. Legacy events have no trustworthy time: the first keyed event covers them."""
    if walk.must_be_witnessed > witnessed_seq:
        first = witnessed_seq + 1
        raise _Broken(Tampering.UNWITNESSED, first,
                      f"events {first} to {walk.must_be_witnessed} were made over {WITNESS_GRACE_SECONDS} s ago but the"
                      f" witness holds no checkpoint of them (its latest is of event {witnessed_seq}): the witness was "
                      "deleted, emptied or cut, or cannot be written (see the log). Find out which before running "
                      "`goldenpath audit checkpoint`, which witnesses the chain as it now stands")


def export_jsonl(store: AuditStore) -> Iterator[str]:
    for event in store.iterate():
        yield json.dumps(event, sort_keys=True) + "\n"
