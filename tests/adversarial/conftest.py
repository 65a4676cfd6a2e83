"""An attacker's bench: one app with real OpenBao, a real database and local git/GitOps repositories; Backstage's
keys and catalog (alice in team-payments, mallory in team-ledger, pat a platform admin); team-scoped static tokens;
and a snapshot of every place a run can write, so an attack that is refused can be shown to have written nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
from connexion import FlaskApp
from sqlalchemy import select
from starlette.testclient import TestClient

from backend.app import Services
from backend.embedded import EmbeddedOpenBao
from backend.store.models import NameClaim
from tests.api.jwks_server import BackstageKeys
from tests.conftest import API_TOKEN

PAYMENTS, LEDGER, PLATFORM = "group:default/team-payments", "group:default/team-ledger", "group:default/platform"
ALICE, MALLORY, PAT, NOBODY = "user:default/alice", "user:default/mallory", "user:default/pat", "user:default/nobody"
PAYMENTS_TOKEN = "payments-ci-" + "p" * 24
LEDGER_TOKEN = "ledger-ci-" + "l" * 24
VAULT = "goldenpath:vault:secrets-path:create"
NAMESPACES = "goldenpath:kubernetes:namespace:create"
REGISTER = "goldenpath:catalog:service:register"
REPOSITORY = "goldenpath:git:repository:create"
PLAN = "goldenpath:platform:service:plan"
ORG = "acme"


def runs_url(action: str) -> str:
    return f"/api/v1/actions/{action}/runs"


def invoke_url(action: str) -> str:
    return f"/api/goldenpath/.backstage/actions/v1/actions/{action.replace(':', '%3A')}/invoke"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class Bench:
    client: TestClient  # no credentials: every call names its own
    app: FlaskApp
    services: Services
    keys: BackstageKeys
    root: hvac.Client
    tmp: Path

    def as_user(self, user: str, **obo_claims: Any) -> dict[str, str]:
        return bearer(self.keys.token(obo=self.keys.user_token(user, **obo_claims)))

    def admin(self) -> dict[str, str]:
        return bearer(API_TOKEN)

    def invoke(self, action: str, data: dict[str, Any], user: str) -> Any:
        return self.client.post(invoke_url(action), json=data, headers=self.as_user(user))

    def run(self, action: str, data: dict[str, Any], headers: dict[str, str], **body: Any) -> Any:
        return self.client.post(runs_url(action), json={"input": data, **body}, headers=headers)

    # -- everything a run can write ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        stores = self.services.stores
        with stores.database.transaction() as session:
            claims = sorted((c.kind, c.name, c.owner, c.subject) for c in session.scalars(select(NameClaim)))
        return {
            "runs": sorted((r["id"], r["status"]) for r in stores.runs.list(limit=10_000)),
            "inventory": sorted((r["kind"], r["locator"], r["owner"], r["updatedAt"]) for r in stores.inventory.list()),
            "audit": [(e["seq"], e["result"], e["actor_user"], e["actor_caller"])
                      for e in stores.audit.list(limit=10_000)],
            "claims": claims,
            "policies": sorted(self.root.sys.list_policies()["data"]["policies"]),
            "roles": self._roles(),
            "kv": self._kv_tree(""),
            "repositories": self._repositories(),
            "gitops": self._gitops_head(),
        }

    def _roles(self) -> list[str]:
        try:
            return sorted(self.root.auth.kubernetes.list_roles()["keys"])
        except hvac.exceptions.InvalidPath:
            return []

    def _kv_tree(self, prefix: str) -> list[tuple[str, Any]]:
        try:
            keys = self.root.secrets.kv.v2.list_secrets(prefix, mount_point="secret")["data"]["keys"]
        except hvac.exceptions.InvalidPath:
            return []
        out: list[tuple[str, Any]] = []
        for key in keys:
            path = f"{prefix}{key}"
            if key.endswith("/"):
                out.extend(self._kv_tree(path))
            else:
                meta = self.root.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")["data"]
                out.append((path, meta["current_version"], meta.get("custom_metadata")))
        return out

    def _repositories(self) -> list[tuple[str, str]]:
        root = self.tmp / "git" / ORG
        if not root.exists():
            return []
        out = []
        for repo in sorted(root.glob("*.git")):
            config = subprocess.run(["git", f"--git-dir={repo}", "config", "--list", "--local"], capture_output=True,
                                    text=True, check=True).stdout
            refs = subprocess.run(["git", f"--git-dir={repo}", "show-ref"], capture_output=True, text=True,
                                  check=False).stdout
            out.append((repo.name, config + refs))
        return out

    def _gitops_head(self) -> str:
        remote = self.tmp / "gitops" / "local.git"
        if not remote.exists():
            return ""
        return subprocess.run(["git", f"--git-dir={remote}", "show-ref"], capture_output=True, text=True,
                              check=False).stdout

    def assert_only_evidence(self, before: dict[str, Any], *, result: str | None,
                             held: tuple[tuple[str, str, str, str], ...] = ()) -> dict[str, Any]:
        """Nothing changed but, when `result` is given, one more run and one audit event with that result (a
        refusal's evidence); with `result` None, not even that. `held`: name claims (kind, name, owner, subject)
        the refused request may have added for its own owner (see test_attacks_names)."""
        after = self.snapshot()
        assert sorted({*before["claims"], *held}) == sorted({*after["claims"], *held}), (before["claims"],
                                                                                        after["claims"])
        assert set(after["claims"]) - set(before["claims"]) <= set(held)
        for place in ("inventory", "policies", "roles", "kv", "repositories", "gitops"):
            assert after[place] == before[place], f"{place} changed: {before[place]!r} -> {after[place]!r}"
        new_runs = [r for r in after["runs"] if r not in before["runs"]]
        new_events = after["audit"][len(before["audit"]):]
        assert after["audit"][:len(before["audit"])] == before["audit"]
        if result is None:
            assert (new_runs, new_events) == ([], []), (new_runs, new_events)
        else:
            assert [status for _, status in new_runs] == [result], new_runs
            assert [event[1] for event in new_events] == [result], new_events
        return after


@pytest.fixture
def keys() -> Iterator[BackstageKeys]:
    server = BackstageKeys()
    server.members.update({ALICE: [PAYMENTS], MALLORY: [LEDGER], PAT: [PLATFORM], NOBODY: []})
    yield server
    server.stop()


def auth_settings(keys: BackstageKeys, **extra: Any) -> dict[str, Any]:
    return {
        "backstage_url": keys.url, "catalog_token": keys.catalog_token, "admin_groups": [PLATFORM],
        "backstage_plugins": ["scaffolder", "mcp-actions"], "plugin_groups": {"mcp-actions": ["team-ledger"]},
        "static_tokens": [{"name": "payments-ci", "token": PAYMENTS_TOKEN, "groups": [PAYMENTS]},
                          {"name": "ledger-ci", "token": LEDGER_TOKEN, "groups": ["team-ledger"]}],
        **extra,
    }


MakeBench = Callable[..., Bench]


@pytest.fixture
def make_bench(make_app: Callable[..., tuple[FlaskApp, Services]], keys: BackstageKeys, openbao: EmbeddedOpenBao,
               tmp_path: Path) -> MakeBench:
    def make(*, database_url: str | None = None, auth: dict[str, Any] | None = None, **sections: Any) -> Bench:
        sections.setdefault("repositories", {"local_root": str(tmp_path / "git"), "org": ORG})
        app, services = make_app(database_url=database_url, auth=auth_settings(keys, **(auth or {})), **sections)
        return Bench(client=app.test_client(), app=app, services=services, keys=keys,
                     root=hvac.Client(url=openbao.addr, token=openbao.token), tmp=tmp_path)

    return make


@pytest.fixture
def bench(make_bench: MakeBench) -> Bench:
    return make_bench()
