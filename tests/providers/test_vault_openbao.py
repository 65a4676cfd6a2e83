"""HvacSecretsStore against a real OpenBao dev server: convergence, conflicts, least privilege."""

from __future__ import annotations

import hvac
import hvac.exceptions
import pytest

from backend.embedded import EmbeddedOpenBao
from backend.errors import ConflictError, UpstreamError, UpstreamUnavailable
from backend.providers.changes import Outcome
from backend.providers.secrets import InitialValues, KubernetesRoleSpec, SecretPathSpec
from backend.providers.vault import HvacSecretsStore
from scaffolder_actions.vault_secrets_path_create import owners_policy, workload_policy
from tests.conftest import unique


@pytest.fixture
def store(openbao: EmbeddedOpenBao) -> HvacSecretsStore:
    return HvacSecretsStore(addr=openbao.addr, token=openbao.token)


@pytest.fixture
def root(openbao: EmbeddedOpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.token)


def _spec(path: str, owner: str = "group:default/team-a", keys: tuple[str, ...] = ("API_KEY",)) -> SecretPathSpec:
    return SecretPathSpec(mount="secret", path=path, custom_metadata={"owner": owner, "cost-center": "cc-1"},
                          max_versions=7, keys=keys)


def test_secret_path_converges(store: HvacSecretsStore, root: hvac.Client) -> None:
    path = f"dev/payments/{unique()}"
    assert store.ensure_secret_path(_spec(path), dry_run=False).outcome is Outcome.CREATED
    assert store.ensure_secret_path(_spec(path), dry_run=False).outcome is Outcome.UNCHANGED
    metadata = root.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")["data"]
    assert metadata["custom_metadata"]["owner"] == "group:default/team-a"
    assert metadata["custom_metadata"]["managed-by"] == "goldenpath"
    assert (metadata["max_versions"], metadata["current_version"]) == (7, 1)


def test_a_new_key_is_added_without_touching_owner_values(store: HvacSecretsStore, root: hvac.Client) -> None:
    path = f"dev/payments/{unique()}"
    store.ensure_secret_path(_spec(path), dry_run=False)
    root.secrets.kv.v2.patch(path, secret={"API_KEY": "set-by-owner"}, mount_point="secret")
    change = store.ensure_secret_path(_spec(path, keys=("API_KEY", "DB_PASSWORD")), dry_run=False)
    assert (change.outcome, change.fields) == (Outcome.UPDATED, ("key:DB_PASSWORD",))
    data = root.secrets.kv.v2.read_secret_version(path, mount_point="secret", raise_on_deleted_version=True)
    assert data["data"]["data"]["API_KEY"] == "set-by-owner"
    assert len(data["data"]["data"]["DB_PASSWORD"]) >= 32


def test_empty_initial_values(store: HvacSecretsStore, root: hvac.Client) -> None:
    path = f"dev/payments/{unique()}"
    spec = SecretPathSpec(mount="secret", path=path, custom_metadata={"owner": "team-a"}, max_versions=5,
                          keys=("TOKEN",), initial_values=InitialValues.EMPTY)
    store.ensure_secret_path(spec, dry_run=False)
    data = root.secrets.kv.v2.read_secret_version(path, mount_point="secret", raise_on_deleted_version=True)
    assert data["data"]["data"] == {"TOKEN": ""}


def test_dry_run_reports_and_writes_nothing(store: HvacSecretsStore, root: hvac.Client) -> None:
    path = f"dev/payments/{unique()}"
    assert store.ensure_secret_path(_spec(path), dry_run=True).outcome is Outcome.CREATED
    assert store.ensure_policy(f"p-{unique()}", 'path "x" { capabilities = ["read"] }', dry_run=True).is_write
    with pytest.raises(hvac.exceptions.InvalidPath):
        root.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")


def test_a_path_owned_by_another_team_is_a_conflict_naming_the_owner(store: HvacSecretsStore) -> None:
    path = f"dev/payments/{unique()}"
    store.ensure_secret_path(_spec(path, owner="group:default/team-a"), dry_run=False)
    with pytest.raises(ConflictError, match="group:default/team-a") as error:
        store.ensure_secret_path(_spec(path, owner="group:default/team-b"), dry_run=False)
    assert error.value.owner == "group:default/team-a"


@pytest.mark.parametrize("intruder", ["user:default/team-a", "group:other/team-a"])
def test_owners_are_full_entity_refs(store: HvacSecretsStore, root: hvac.Client, intruder: str) -> None:
    path = f"dev/payments/{unique()}"
    store.ensure_secret_path(_spec(path, owner="group:default/team-a"), dry_run=False)
    before = root.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")["data"]
    with pytest.raises(ConflictError) as refused:
        store.ensure_secret_path(_spec(path, owner=intruder, keys=("API_KEY", "STOLEN")), dry_run=False)
    assert refused.value.owner == "group:default/team-a"
    with pytest.raises(ConflictError):
        store.check_secret_path("secret", path, owner=intruder)
    assert root.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")["data"] == before
    assert store.check_secret_path("secret", path, owner="team-a")  # the short form names the same group


def test_an_owner_recorded_in_short_form_is_its_group(store: HvacSecretsStore) -> None:
    """Earlier runs may have recorded `team-a`: that is group:default/team-a, and not user:default/team-a."""
    path = f"dev/payments/{unique()}"
    store.ensure_secret_path(_spec(path, owner="team-a"), dry_run=False)
    assert store.check_secret_path("secret", path, owner="group:default/team-a")
    with pytest.raises(ConflictError) as refused:
        store.check_secret_path("secret", path, owner="user:default/team-a")
    assert refused.value.owner == "team-a"


def test_a_path_made_outside_golden_path_is_not_taken_over(store: HvacSecretsStore, root: hvac.Client) -> None:
    path = f"dev/payments/{unique()}"
    root.secrets.kv.v2.create_or_update_secret(path, secret={"x": "y"}, mount_point="secret")
    with pytest.raises(ConflictError, match="not managed by Golden Path"):
        store.ensure_secret_path(_spec(path), dry_run=False)


def test_policy_and_role_converge_and_drift_is_restored(store: HvacSecretsStore, root: hvac.Client) -> None:
    store.ensure_auth_method("kubernetes", "kubernetes", create=True, dry_run=False)
    name = unique("role")
    spec = KubernetesRoleSpec(mount="kubernetes", name=name, service_account_names=("app",),
                              namespaces=("app-dev",), policies=("p1",), token_ttl="1h")
    assert store.ensure_kubernetes_role(spec, dry_run=False).outcome is Outcome.CREATED
    assert store.ensure_kubernetes_role(spec, dry_run=False).outcome is Outcome.UNCHANGED
    root.auth.kubernetes.create_role(name, bound_service_account_names=["intruder"],
                                     bound_service_account_namespaces=["app-dev"], policies=["p1"], ttl="1h")
    restored = store.ensure_kubernetes_role(spec, dry_run=False)
    assert (restored.outcome, restored.fields) == (Outcome.UPDATED, ("bound_service_account_names",))
    assert root.auth.kubernetes.read_role(name)["bound_service_account_names"] == ["app"]


def test_missing_mount_is_explained_unless_creation_is_on(store: HvacSecretsStore) -> None:
    mount = unique("kv")
    with pytest.raises(UpstreamError, match="create_kv_mount"):
        store.ensure_kv_mount(mount, create=False, dry_run=False)
    assert store.ensure_kv_mount(mount, create=True, dry_run=False).outcome is Outcome.CREATED
    assert store.ensure_kv_mount(mount, create=True, dry_run=False).outcome is Outcome.UNCHANGED


def test_least_privilege_of_the_generated_policies(
    store: HvacSecretsStore, root: hvac.Client, openbao: EmbeddedOpenBao
) -> None:
    service, sibling = unique(), unique()
    path, sibling_path = f"prod/payments/{service}", f"prod/payments/{sibling}"
    for p in (path, sibling_path):
        store.ensure_secret_path(_spec(p), dry_run=False)
    store.ensure_policy(f"wl-{service}", workload_policy("secret", path), dry_run=False)
    store.ensure_policy(f"own-{service}", owners_policy("secret", path), dry_run=False)
    workload = _client_with(root, openbao, f"wl-{service}")
    owners = _client_with(root, openbao, f"own-{service}")

    read = workload.secrets.kv.v2.read_secret_version(path, mount_point="secret", raise_on_deleted_version=True)
    assert "API_KEY" in read["data"]["data"]
    with pytest.raises(hvac.exceptions.Forbidden):
        workload.secrets.kv.v2.read_secret_version(sibling_path, mount_point="secret",
                                                   raise_on_deleted_version=True)
    with pytest.raises(hvac.exceptions.Forbidden):
        workload.secrets.kv.v2.create_or_update_secret(path, secret={"API_KEY": "x"}, mount_point="secret")
    with pytest.raises(hvac.exceptions.Forbidden):
        workload.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")

    owners.secrets.kv.v2.create_or_update_secret(path, secret={"API_KEY": "rotated"}, mount_point="secret")
    with pytest.raises(hvac.exceptions.Forbidden):
        owners.secrets.kv.v2.update_metadata(path, custom_metadata={"owner": "team-x"}, mount_point="secret")
    with pytest.raises(hvac.exceptions.Forbidden):
        owners.secrets.kv.v2.read_secret_version(sibling_path, mount_point="secret",
                                                 raise_on_deleted_version=True)


def test_unreachable_vault_is_retryable_and_names_no_token() -> None:
    store = HvacSecretsStore(addr="http://127.0.0.1:9", token="s.canary-token-value", timeout=1)
    with pytest.raises(UpstreamUnavailable) as error:
        store.ping()
    problem = error.value.to_problem()
    assert problem["retryable"] is True and "canary-token-value" not in str(problem)


def _client_with(root: hvac.Client, openbao: EmbeddedOpenBao, policy: str) -> hvac.Client:
    token = root.auth.token.create(policies=[policy], no_default_policy=True)["auth"]["client_token"]
    return hvac.Client(url=openbao.addr, token=token)
