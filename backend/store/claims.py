"""Name claims: each name derived from a request is held by one owner for one subject.

A claim is written, in its own transaction, before the external write it protects, so two requests racing for
one name cannot both pass: the database's unique constraint decides, and the loser gets a 409.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from backend.errors import ConflictError
from backend.ownership import canonical_ref, same_owner
from backend.store.clock import utc_now
from backend.store.database import Database
from backend.store.models import NameClaim


@dataclass(frozen=True)
class Claim:
    kind: str  # what the name names: "service", "vault.policy", "kubernetes.namespace", ...
    name: str
    owner: str  # a canonical entity ref
    subject: str  # what the request meant by it, e.g. "payments-api/prod": the same name for another is a clash


class ClaimStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    def conflicts(self, claims: Iterable[Claim]) -> list[ConflictError]:
        """Read only: why each of `claims` could not be held (empty: all free or already ours)."""
        found: list[ConflictError] = []
        for claim in claims:
            existing = self._find(claim)
            if existing is not None and (problem := _clash(claim, existing)) is not None:
                found.append(problem)
        return found

    def hold(self, claims: Iterable[Claim], *, run_id: str) -> None:
        """Hold every claim, or raise the first clash. Claims already held for the same subject and owner are
        kept as they are; nothing is released on a later failure (the names stay the owner's)."""
        for claim in claims:
            existing = self._find(claim)
            if existing is None:
                try:
                    with self._db.transaction() as session:
                        session.add(NameClaim(kind=claim.kind, name=claim.name, owner=canonical_ref(claim.owner),
                                              subject=claim.subject, run_id=run_id, created_at=utc_now()))
                    continue
                except IntegrityError:  # another run took it between our read and our insert
                    existing = self._find(claim)
                    if existing is None:
                        raise
            if (problem := _clash(claim, existing)) is not None:
                raise problem

    def held_by(self, claim: Claim) -> str | None:
        """The run that first held `claim` for its owner and subject; None when the name is free or another's."""
        query = select(NameClaim.owner, NameClaim.subject, NameClaim.run_id).where(NameClaim.kind == claim.kind,
                                                                                   NameClaim.name == claim.name)
        with self._db.transaction() as session:
            row = session.execute(query).first()
        if row is None or row.subject != claim.subject or not same_owner(row.owner, claim.owner):
            return None
        return str(row.run_id)

    def _find(self, claim: Claim) -> tuple[str, str] | None:
        query = select(NameClaim.owner, NameClaim.subject).where(NameClaim.kind == claim.kind,
                                                                 NameClaim.name == claim.name)
        with self._db.transaction() as session:
            row = session.execute(query).first()
        return None if row is None else (row.owner, row.subject)


def _clash(claim: Claim, existing: tuple[str, str]) -> ConflictError | None:
    owner, subject = existing
    if subject != claim.subject:
        return ConflictError(f"{claim.kind} name {claim.name!r} is already used by {subject} (owner {owner}); "
                             "choose another service or system name", owner=owner)
    if not same_owner(owner, claim.owner):
        return ConflictError(f"{claim.kind} {claim.name!r} is owned by {owner}", owner=owner)
    return None
