"""What the secrets guarantees share: the real app on the real OpenBao (built once per module where a test only
reads), Vault tokens that hold exactly one policy, and a root client to look at (and tamper with) Vault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
from starlette.testclient import TestClient

from backend.app import build_services, create_app
from backend.embedded import EmbeddedOpenBao
from backend.settings import settings_from_dict
from tests.conftest import API_TOKEN, VAULT_ACTION

RUNS = f"/api/v1/actions/{VAULT_ACTION}/runs"
MOUNT = "secret"


def app_client(openbao: EmbeddedOpenBao, folder: Path, **sections: Any) -> TestClient:
    """The whole service, as tests/conftest.py's make_app builds it, in `folder` (any scope)."""
    raw: dict[str, Any] = {
        "database": {"url": f"sqlite:///{folder}/goldenpath.db"},
        "auth": {"token": API_TOKEN},
        "vault": {"addr": openbao.addr, "token": openbao.token, "enable_kubernetes_auth": True},
        "kubernetes": {"clusters": {"local": {"mode": "gitops", "remote": str(folder / "gitops" / "local.git"),
                                              "workdir": str(folder / "gitops" / "local-work")}}},
        "repositories": {"local_root": str(folder / "git")},
        "audit": {"key_file": str(folder / "audit.key"), "witness_file": str(folder / "audit-witness.jsonl")},
    }
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    settings = settings_from_dict(raw)
    app = create_app(settings, services=build_services(settings, upgrade_schema=True), validate_responses=True)
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def root_client(openbao: EmbeddedOpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.token)


def token_holding(root: hvac.Client, policy: str) -> str:
    """A token with this one policy and nothing else (not even Vault's `default` policy)."""
    created = root.auth.token.create(policies=[policy], no_default_policy=True, ttl="10m")
    return str(created["auth"]["client_token"])


def client_holding(root: hvac.Client, openbao: EmbeddedOpenBao, policy: str) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=token_holding(root, policy))


def capabilities(root: hvac.Client, token: str, paths: list[str]) -> dict[str, list[str]]:
    """What Vault itself says the token may do on each path (root asks on its behalf)."""
    answer = root.sys.get_capabilities(paths, token=token)
    return {path: sorted(answer[path]) for path in paths}


def metadata(root: hvac.Client, path: str) -> dict[str, Any] | None:
    try:
        return dict(root.secrets.kv.v2.read_secret_metadata(path, mount_point=MOUNT)["data"])
    except hvac.exceptions.InvalidPath:
        return None


def policy_rules(root: hvac.Client, name: str) -> str | None:
    try:
        return str(root.sys.read_policy(name)["data"]["rules"])
    except hvac.exceptions.InvalidPath:
        return None


def role(root: hvac.Client, name: str) -> dict[str, Any] | None:
    try:
        return dict(root.auth.kubernetes.read_role(name, mount_point="kubernetes"))
    except hvac.exceptions.InvalidPath:
        return None
