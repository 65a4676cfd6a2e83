"""SQLAlchemy models. Schema changes go through an alembic migration (tests compare the two)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        UniqueConstraint("action_id", "idempotency_key", name="uq_runs_action_idempotency_key"),
        Index("ix_runs_created_at", "created_at"),
        Index("ix_runs_status_lease_until", "status", "lease_until"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    action_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    dry_run: Mapped[bool] = mapped_column(Boolean)
    input: Mapped[dict[str, Any]]
    input_digest: Mapped[str] = mapped_column(String(64))
    output: Mapped[dict[str, Any] | None]
    error: Mapped[dict[str, Any] | None]
    changes: Mapped[list[Any]]
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    requested_by: Mapped[str | None] = mapped_column(String(300))
    caller: Mapped[str] = mapped_column(String(200))
    context: Mapped[dict[str, Any]]
    created_at: Mapped[str] = mapped_column(String(32))
    finished_at: Mapped[str | None] = mapped_column(String(32))
    # A running run's replica renews its lease; once it lapses, any replica may take the run over as a new attempt.
    attempt: Mapped[int] = mapped_column(Integer, server_default="1")
    lease_holder: Mapped[str | None] = mapped_column(String(120))
    lease_until: Mapped[str | None] = mapped_column(String(32))
    # who asked, as authorized at acceptance, and a MAC (audit key) over it, the input digest and the action: a
    # row the database's administrators wrote themselves is never taken over
    requester: Mapped[dict[str, Any] | None]
    seal: Mapped[str | None] = mapped_column(String(200))
    seal_key_id: Mapped[str | None] = mapped_column(String(200))


class RunLog(Base):
    __tablename__ = "run_logs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    at: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(10))
    message: Mapped[str] = mapped_column(Text)
    fields: Mapped[dict[str, Any]]


class RunIntent(Base):
    """Written ahead: a change a run is about to make to an external object, committed before the backend call.
    A run that crashes after the call leaves the intent, which the attempt that takes it over resolves."""

    __tablename__ = "run_intents"
    __table_args__ = (Index("ix_run_intents_kind_locator", "kind", "locator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(100))
    locator: Mapped[str] = mapped_column(String(500))
    outcome: Mapped[str] = mapped_column(String(20))
    at: Mapped[str] = mapped_column(String(32))
    # a MAC (audit key) over run, attempt, change and time: an intent a database administrator wrote, copied or
    # changed is never turned into audit evidence
    seal: Mapped[str | None] = mapped_column(String(200))
    seal_key_id: Mapped[str | None] = mapped_column(String(200))


class AuditEvent(Base):
    """Append-only; each row's hash is a MAC (under key_id, kept outside the database) of its content and the
    previous row's hash. Rows with key_id NULL predate keyed chaining and carry a plain SHA-256."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_run_id", "run_id"),)  # a take-over asks whether a run has one

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    at: Mapped[str] = mapped_column(String(32))
    actor_user: Mapped[str | None] = mapped_column(String(300))
    actor_claim: Mapped[str | None] = mapped_column(String(300))  # a user the caller named, not verified
    actor_caller: Mapped[str] = mapped_column(String(200))
    action_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str | None] = mapped_column(String(36))
    input_digest: Mapped[str] = mapped_column(String(64))
    changes: Mapped[list[Any]]
    result: Mapped[str] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str | None] = mapped_column(String(200))


class AuditHead(Base):
    """One row: the chain's tip. Appends lock it, so the chain stays linear across workers."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class Resource(Base):
    """Inventory: what Golden Path provisioned, one row per external object it manages."""

    __tablename__ = "resources"
    __table_args__ = (UniqueConstraint("kind", "locator", name="uq_resources_kind_locator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(100))
    locator: Mapped[str] = mapped_column(String(500))
    service: Mapped[str | None] = mapped_column(String(100), index=True)
    system: Mapped[str | None] = mapped_column(String(100))
    owner: Mapped[str | None] = mapped_column(String(300))
    environment: Mapped[str | None] = mapped_column(String(63))
    attributes: Mapped[dict[str, Any]]
    action_id: Mapped[str] = mapped_column(String(200))
    run_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[str] = mapped_column(String(32))
    updated_at: Mapped[str] = mapped_column(String(32))
    revision: Mapped[int] = mapped_column(Integer, index=True, server_default="0")  # the inventory's, at last change


class InventoryRevision(Base):
    """One row: bumped with every inventory change (the catalog feed's cache key)."""

    __tablename__ = "inventory_revision"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(Integer)


class NameClaim(Base):
    """A name Golden Path derived for one request (a Vault policy, a namespace, a service...), held by its owner.

    Unique per (kind, name): a second request that derives the same name for another subject or another owner
    is refused before it writes anything."""

    __tablename__ = "name_claims"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_name_claims_kind_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(500))
    owner: Mapped[str] = mapped_column(String(300))
    subject: Mapped[str] = mapped_column(String(500))
    run_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[str] = mapped_column(String(32))


class Conformance(Base):
    """The last conformance check of one inventory resource, or of a whole service (kind `service`): its status,
    since when it holds, when it was last checked, and (for a service) the whole report."""

    __tablename__ = "conformance"
    __table_args__ = (UniqueConstraint("kind", "locator", name="uq_conformance_kind_locator"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(100))
    locator: Mapped[str] = mapped_column(String(500))
    service: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20))
    since: Mapped[str] = mapped_column(String(32))  # the check that found this status (the catalog's checked-at)
    checked_at: Mapped[str] = mapped_column(String(32))  # the latest check, whatever it found
    findings: Mapped[list[Any]]
    report: Mapped[dict[str, Any] | None]
