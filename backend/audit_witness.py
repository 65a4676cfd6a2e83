"""Witnessed checkpoints: after each audit event commits, the chain head (seq, hash), MACed with the audit key,
is written to a witness outside the database, so cutting or rewriting the chain's tail shows. A port, with an
append-only local file adapter (a GitOps-repository witness can follow)."""

from __future__ import annotations

import json
import os
import stat
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from backend.audit_keys import AuditKey


class WitnessError(Exception):
    """The witness holds something that is not a checkpoint; the message says where."""


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    at: str
    key_id: str
    mac: str

    @classmethod
    def sign(cls, key: AuditKey, *, seq: int, hash: str, at: str) -> Checkpoint:
        key_id = key.key_id
        return cls(seq=seq, hash=hash, at=at, key_id=key_id, mac=key.mac(_content(seq, hash, at, key_id)))

    def is_genuine(self, key: AuditKey) -> bool:
        return key.check(self.key_id, _content(self.seq, self.hash, self.at, self.key_id), self.mac)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Checkpoint:
        data: Any = json.loads(line)
        if not isinstance(data, dict) or set(data) != {"seq", "hash", "at", "key_id", "mac"}:
            raise ValueError("not a checkpoint object")
        if not isinstance(data["seq"], int) or not all(isinstance(data[k], str) for k in ("hash", "at", "key_id",
                                                                                           "mac")):
            raise ValueError("a checkpoint field has the wrong type")
        return cls(**data)


def _content(seq: int, hash: str, at: str, key_id: str) -> bytes:
    body = {"checkpoint": {"seq": seq, "hash": hash, "at": at, "key_id": key_id}}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


class Witness(ABC):
    @abstractmethod
    def record(self, checkpoint: Checkpoint) -> None:
        """Keep the checkpoint; never change or drop earlier ones. Called after commit, possibly out of order."""

    @abstractmethod
    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint kept, in the order received; WitnessError if something else is there."""


class FileWitness(Witness):
    """JSON Lines appended to a file of mode 0600. Keep it where database administrators cannot write
    (another host's mount, an append-only volume) and back it up apart from the database."""

    def __init__(self, path: Path) -> None:
        self._path = path

    def record(self, checkpoint: Checkpoint) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # O_NONBLOCK: a FIFO put in the witness's place fails here instead of blocking every audited write
        fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
        try:
            os.write(fd, (checkpoint.to_json() + "\n").encode())  # one write: concurrent appends do not interleave
            os.fsync(fd)
        finally:
            os.close(fd)

    def checkpoints(self) -> list[Checkpoint]:
        if not self._path.exists():
            return []
        found = []
        try:
            if not stat.S_ISREG(self._path.stat().st_mode):  # a FIFO would block verification
                raise WitnessError(f"the witness {self._path} is not a regular file")
            with self._path.open(encoding="utf-8", errors="replace") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.endswith("\n"):
                        break  # a checkpoint being written right now: it is complete once its newline is
                    try:
                        found.append(Checkpoint.from_json(line))
                    except ValueError as exc:
                        raise WitnessError(f"line {number} of the witness {self._path} is not a checkpoint") from exc
        except OSError as exc:  # a folder, a file it may not read: no checkpoint can be shown
            raise WitnessError(f"the witness {self._path} cannot be read ({type(exc).__name__})") from None
        return found
