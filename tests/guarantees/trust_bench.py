"""A runner on a real database, built through the app's own factory, with no OpenBao: the Vault action writes to
the in-memory FakeSecretsStore (which counts writes), and tests may add their own out-of-tree actions. Fast enough
to guard mutants of the runner's trust, idempotency, redaction and audit rules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from backend.app import Services, build_services
from backend.plugin_api import Action, Requester
from backend.services.registry import ActionRegistry
from backend.services.runner import RunRequest
from backend.settings import settings_from_dict
from backend.store.models import NameClaim
from tests.conftest import VAULT_ACTION, vault_input
from tests.fakes.secrets import FakeSecretsStore

PAYMENTS, LEDGER = "group:default/team-payments", "group:default/team-ledger"
ALICE, BOB, MALLORY = "user:default/alice", "user:default/bob", "user:default/mallory"
PLUGIN = "backstage:scaffolder"
ADMIN_TOKEN = "admin-token-" + "a" * 24

__all__ = ["ADMIN_TOKEN", "ALICE", "BOB", "LEDGER", "MALLORY", "PAYMENTS", "PLUGIN", "VAULT_ACTION", "Bench",
           "make_bench", "person", "vault_input"]


def person(user: str, *groups: str, caller: str = PLUGIN) -> Requester:
    return Requester(user=user, caller=caller, groups=frozenset(groups))


@dataclass
class Bench:
    services: Services
    vault: FakeSecretsStore

    def run(self, requester: Requester, data: dict[str, Any], *, action: str = VAULT_ACTION,
            **request: Any) -> dict[str, Any]:
        return self.services.runner.run(RunRequest(action_id=action, input=data, requester=requester, **request))

    def runs(self) -> list[dict[str, Any]]:
        return self.services.stores.runs.list(limit=1000)

    def audit(self) -> list[dict[str, Any]]:
        return self.services.stores.audit.list(limit=1000)

    def inventory(self) -> list[dict[str, Any]]:
        return self.services.stores.inventory.list()

    def claims(self) -> list[tuple[str, str, str]]:
        with self.services.database.transaction() as session:
            return sorted((c.kind, c.name, c.owner) for c in session.scalars(select(NameClaim)))


def make_bench(database_url: str, tmp_path: Path, *actions: Action, **sections: Any) -> Bench:
    raw: dict[str, Any] = {
        "database": {"url": database_url},
        "auth": {"token": ADMIN_TOKEN},
        "repositories": {"local_root": str(tmp_path / "git")},
        "audit": {"key_file": str(tmp_path / "audit.key"), "witness_file": str(tmp_path / "witness.jsonl")},
        "kubernetes": {"clusters": {"local": {"mode": "gitops", "remote": str(tmp_path / "gitops.git"),
                                              "workdir": str(tmp_path / "gitops-work")}}},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    vault = FakeSecretsStore()
    registry = ActionRegistry([*ActionRegistry.discover().all(), *actions])
    return Bench(build_services(settings_from_dict(raw), secrets_store=vault, registry=registry,
                                upgrade_schema=True), vault)
