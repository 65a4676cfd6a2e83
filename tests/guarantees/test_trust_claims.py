"""A name derived for one owner and subject is never given to another, on a real database: the first run to hold it
keeps it, other spellings of the same owner are that owner, a run's names are held all or none and only once the
platform's rules pass, a dry-run holds nothing, and a service's inventory belongs to the owner it was made for."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from backend.errors import ConflictError, PolicyViolation
from backend.plugin_api import SERVICE_KIND, ActionContext, Providers, Requester, RunLogger, claim_service
from backend.policy import Policy
from backend.redaction import Redactor
from backend.store.claims import Claim, ClaimStore
from backend.store.database import Database
from backend.store.inventory import InventoryStore, ResourceRecord
from backend.store.models import NameClaim

PAYMENTS, LEDGER = "group:default/team-payments", "group:default/team-ledger"
POLICY = "vault.policy"


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    db.migrate()
    yield db
    db.dispose()


@pytest.fixture
def claims(database: Database) -> ClaimStore:
    return ClaimStore(database)


def held(database: Database) -> list[tuple[str, str, str, str]]:
    with database.transaction() as session:
        return sorted((c.kind, c.name, c.owner, c.subject) for c in session.scalars(select(NameClaim)))


def context(database: Database, *, owner: str = PAYMENTS, service: str = "payments-api", dry_run: bool = False,
            run_id: str = "run-2", **data: Any) -> ActionContext:
    values = {"service": service, "system": "payments", "owner": owner, "costCenter": "cc-1", "environments": ["dev"],
              **data}
    return ActionContext(
        input=values, dry_run=dry_run, run_id=run_id,
        requester=Requester(user="user:default/alice", caller="token:ci", groups=frozenset({owner})),
        log=RunLogger(Redactor(), run_id), policy=Policy(), owner=owner, service=service,
        providers=Providers(claims=ClaimStore(database), inventory=InventoryStore(database)),
    )


# -- the claim store -------------------------------------------------------------------------------------------------

def test_the_first_owner_keeps_a_name_and_another_owner_is_refused(claims: ClaimStore) -> None:
    name = "goldenpath.dev.payments.payments-api.workload"
    claims.hold([Claim(POLICY, name, PAYMENTS, "payments-api/dev")], run_id="run-1")
    with pytest.raises(ConflictError) as taken:
        claims.hold([Claim(POLICY, name, LEDGER, "payments-api/dev")], run_id="run-2")
    assert (taken.value.status, taken.value.owner) == (409, PAYMENTS)
    assert [str(c.detail) for c in claims.conflicts([Claim(POLICY, name, LEDGER, "payments-api/dev")])] == [
        f"{POLICY} {name!r} is owned by {PAYMENTS}"]


def test_the_same_name_for_another_subject_is_refused_even_to_its_owner(claims: ClaimStore) -> None:
    claims.hold([Claim("kubernetes.namespace", "a-b-dev", PAYMENTS, "a-b")], run_id="run-1")
    with pytest.raises(ConflictError, match="already used by a-b"):
        claims.hold([Claim("kubernetes.namespace", "a-b-dev", PAYMENTS, "a")], run_id="run-2")


def test_the_owner_in_any_spelling_holds_its_own_names_again(claims: ClaimStore, database: Database) -> None:
    claim = Claim(POLICY, "goldenpath.dev.payments.payments-api.owners", "team-payments", "payments-api/dev")
    claims.hold([claim], run_id="run-1")
    again = Claim(claim.kind, claim.name, "Group:Default/Team-Payments", claim.subject)
    assert claims.conflicts([again]) == []
    claims.hold([again], run_id="run-2")
    assert held(database) == [(POLICY, claim.name, PAYMENTS, "payments-api/dev")]  # stored canonical, held once


def test_a_name_counts_as_held_before_only_for_its_owner_and_subject(claims: ClaimStore) -> None:
    claim = Claim("repository", "acme/payments-api", PAYMENTS, "payments-api")
    assert claims.held_by(claim) is None
    claims.hold([claim], run_id="run-1")
    assert claims.held_by(Claim(claim.kind, claim.name, "team-payments", claim.subject)) == "run-1"
    assert claims.held_by(Claim(claim.kind, claim.name, LEDGER, claim.subject)) is None
    assert claims.held_by(Claim(claim.kind, claim.name, PAYMENTS, "other")) is None


# -- a run's claims ------------------------------------------------------------------------------------------------

def test_a_run_holds_its_service_name_with_its_own_names(database: Database) -> None:
    context(database).claim_all([Claim(POLICY, "p", PAYMENTS, "payments-api/dev")])
    assert held(database) == [(SERVICE_KIND, "payments-api", PAYMENTS, "payments-api"),
                              (POLICY, "p", PAYMENTS, "payments-api/dev")]


def test_a_runs_names_are_held_all_or_none(database: Database) -> None:
    ClaimStore(database).hold([Claim(POLICY, "taken", LEDGER, "payments-api/dev")], run_id="run-1")
    ctx = context(database)
    wanted = [ctx.claim_for(POLICY, "free", subject="payments-api/dev"),
              ctx.claim_for(POLICY, "taken", subject="payments-api/dev")]
    with pytest.raises(ConflictError):
        ctx.claim_all(wanted)
    assert held(database) == [(POLICY, "taken", LEDGER, "payments-api/dev")]  # neither the service nor "free"


def test_a_dry_run_checks_names_but_holds_none(database: Database) -> None:
    ClaimStore(database).hold([Claim(POLICY, "taken", LEDGER, "payments-api/dev")], run_id="run-1")
    dry = context(database, dry_run=True)
    with pytest.raises(ConflictError):
        dry.claim_all([dry.claim_for(POLICY, "taken", subject="payments-api/dev")])
    dry.claim_all([dry.claim_for(POLICY, "free", subject="payments-api/dev")])
    assert held(database) == [(POLICY, "taken", LEDGER, "payments-api/dev")]


def test_a_request_the_rules_refuse_holds_no_name(database: Database) -> None:
    refused = context(database, environments=["nowhere"])
    with pytest.raises(PolicyViolation) as violation:
        refused.check_service_policy(claims=[refused.claim_for(POLICY, "p", subject="payments-api/nowhere")])
    assert violation.value.rule == "allowed-environments"
    assert held(database) == []
    context(database).check_service_policy(claims=[])
    assert held(database) == [(SERVICE_KIND, "payments-api", PAYMENTS, "payments-api")]


# -- a service's inventory -----------------------------------------------------------------------------------------

def record(database: Database, *records: ResourceRecord) -> InventoryStore:
    inventory = InventoryStore(database)
    inventory.upsert(list(records), action_id="goldenpath:test:thing:create", run_id="run-1")
    return inventory


def test_a_service_registered_to_another_team_is_refused(database: Database) -> None:
    inventory = record(database, ResourceRecord(SERVICE_KIND, "payments-api", "payments-api", "payments", LEDGER))
    with pytest.raises(ConflictError, match=f"registered to {LEDGER}") as taken:
        claim_service(inventory, "payments-api", PAYMENTS)
    assert taken.value.owner == LEDGER


def test_resources_made_for_another_team_refuse_an_unregistered_service(database: Database) -> None:
    inventory = record(database, ResourceRecord("vault.secrets-path", "secret/dev/payments/payments-api",
                                                "payments-api", "payments", LEDGER, "dev"))
    with pytest.raises(ConflictError, match=f"belong to {LEDGER}"):
        claim_service(inventory, "payments-api", PAYMENTS)


def test_the_owners_own_service_is_its_in_any_spelling(database: Database) -> None:
    inventory = record(
        database, ResourceRecord(SERVICE_KIND, "payments-api", "payments-api", "payments", "team-payments"),
        ResourceRecord("vault.secrets-path", "secret/dev/payments/payments-api", "payments-api", "payments",
                       PAYMENTS, "dev"))
    registration, made = claim_service(inventory, "payments-api", "Group:Default/Team-Payments")
    assert registration is not None and registration["owner"] == "team-payments"
    assert [row["kind"] for row in made] == ["vault.secrets-path"]
    assert claim_service(inventory, "ledger-api", LEDGER) == (None, [])
