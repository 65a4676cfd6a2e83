"""Least privilege of the two Vault policies the secrets action writes, proven on the real OpenBao by trying, with a
token that holds only that one policy, everything the policy must not allow: listing, a path that shares the prefix
(`svc-x` vs `svc-xy` and `svc-x/sub`), another environment's path, writing, deleting, destroying, the metadata.
Vault's own answer to "what may this token do here" (sys/capabilities) pins the exact capability sets besides."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import hvac
import hvac.exceptions
import pytest

from backend.embedded import EmbeddedOpenBao
from tests.conftest import unique, vault_input
from tests.guarantees.secrets_bench import (
    MOUNT,
    RUNS,
    app_client,
    capabilities,
    metadata,
    root_client,
    token_holding,
)


@dataclass(frozen=True)
class World:
    root: hvac.Client
    own: str  # dev/payments/<service>: the path both policies are about
    sibling: str  # dev/payments/<service>y: another service whose name starts with this one's
    nested: str  # dev/payments/<service>/sub: a path under this one, made outside Golden Path
    other_env: str  # prod/payments/<service>: the same service in another environment
    workload_token: str
    owners_token: str
    workload: hvac.Client
    owners: hvac.Client

    def paths(self) -> dict[str, str]:
        """Every API path a policy could wrongly reach, by what it is (sys/capabilities drops a trailing slash, so
        listing under the own path is tried, not asked)."""
        own, sibling, nested, other = (f"{MOUNT}/{{}}/{p}" for p in (self.own, self.sibling, self.nested,
                                                                        self.other_env))
        return {
            "own data": own.format("data"), "own metadata": own.format("metadata"),
            "own delete": own.format("delete"), "own undelete": own.format("undelete"),
            "own destroy": own.format("destroy"),
            "siblings (list)": f"{MOUNT}/metadata/dev/payments/",
            "sibling data": sibling.format("data"), "sibling metadata": sibling.format("metadata"),
            "sibling delete": sibling.format("delete"), "sibling undelete": sibling.format("undelete"),
            "nested data": nested.format("data"), "nested metadata": nested.format("metadata"),
            "nested delete": nested.format("delete"),
            "other environment data": other.format("data"), "other environment metadata": other.format("metadata"),
            "other environment delete": other.format("delete"),
        }


@pytest.fixture(scope="module")
def world(openbao: EmbeddedOpenBao, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    client = app_client(openbao, tmp_path_factory.mktemp("least-privilege"))
    service = unique()
    made = client.post(RUNS, json={"input": vault_input(service=service, environments=["dev", "prod"])})
    assert made.status_code == 201, made.text
    sibling = client.post(RUNS, json={"input": vault_input(service=f"{service}y")})
    assert sibling.status_code == 201, sibling.text
    root = root_client(openbao)
    nested = f"dev/payments/{service}/sub"
    root.secrets.kv.v2.create_or_update_secret(nested, secret={"NESTED": "not-yours"}, mount_point=MOUNT)
    dev = made.json()["output"]["paths"][0]
    workload_token = token_holding(root, dev["workloadPolicy"])
    owners_token = token_holding(root, dev["ownersPolicy"])
    yield World(root=root, own=dev["path"], sibling=f"dev/payments/{service}y", nested=nested,
                other_env=made.json()["output"]["paths"][1]["path"], workload_token=workload_token,
                owners_token=owners_token, workload=hvac.Client(url=openbao.addr, token=workload_token),
                owners=hvac.Client(url=openbao.addr, token=owners_token))


def _denied(attempt: Callable[[], Any], what: str) -> None:
    with pytest.raises(hvac.exceptions.Forbidden):
        attempt()
        pytest.fail(f"allowed: {what}")


def _read(client: hvac.Client, path: str) -> dict[str, Any]:
    answer = client.secrets.kv.v2.read_secret_version(path, mount_point=MOUNT, raise_on_deleted_version=True)
    return dict(answer["data"]["data"])


def _patch_metadata(client: hvac.Client, path: str) -> Any:
    return client.adapter.request("patch", f"/v1/{MOUNT}/metadata/{path}",
                                  json={"custom_metadata": {"owner": "group:default/team-mallory"}},
                                  headers={"Content-Type": "application/merge-patch+json"})


def test_every_path_of_the_world_exists(world: World) -> None:
    """So that each denial below is a denial, not a missing path."""
    for path in (world.own, world.sibling, world.nested, world.other_env):
        assert metadata(world.root, path) is not None, path


# -- the workload policy: read its own values, nothing else ----------------------------------------------------------

def test_the_workload_reads_its_own_values(world: World) -> None:
    assert set(_read(world.workload, world.own)) == {"DATABASE_PASSWORD"}


def test_the_workload_may_only_read_its_own_data_path(world: World) -> None:
    paths = world.paths()
    granted = capabilities(world.root, world.workload_token, list(paths.values()))
    assert {what: granted[path] for what, path in paths.items()} == {
        what: ["read"] if what == "own data" else ["deny"] for what in paths}


def test_the_workload_cannot_list(world: World) -> None:
    kv = world.workload.secrets.kv.v2
    _denied(lambda: kv.list_secrets("dev/payments", mount_point=MOUNT), "listing its siblings")
    _denied(lambda: kv.list_secrets(world.own, mount_point=MOUNT), "listing under its own path")


def test_the_workload_cannot_read_a_path_sharing_its_prefix(world: World) -> None:
    for path in (world.sibling, world.nested):
        _denied(lambda path=path: _read(world.workload, path), f"reading {path}")


def test_the_workload_cannot_read_another_environments_path(world: World) -> None:
    _denied(lambda: _read(world.workload, world.other_env), "reading the prod path with the dev policy")


def test_the_workload_cannot_write_its_values(world: World) -> None:
    kv, before = world.workload.secrets.kv.v2, _read(world.root, world.own)
    _denied(lambda: kv.create_or_update_secret(world.own, secret={"DATABASE_PASSWORD": "x"}, mount_point=MOUNT),
            "writing a new version")
    _denied(lambda: kv.patch(world.own, secret={"EXTRA": "x"}, mount_point=MOUNT), "patching")
    assert _read(world.root, world.own) == before


def test_the_workload_cannot_delete_undelete_or_destroy(world: World) -> None:
    kv = world.workload.secrets.kv.v2
    _denied(lambda: kv.delete_latest_version_of_secret(world.own, mount_point=MOUNT), "deleting the latest version")
    _denied(lambda: kv.delete_secret_versions(world.own, versions=[1], mount_point=MOUNT), "deleting versions")
    _denied(lambda: kv.undelete_secret_versions(world.own, versions=[1], mount_point=MOUNT), "undeleting")
    _denied(lambda: kv.destroy_secret_versions(world.own, versions=[1], mount_point=MOUNT), "destroying versions")
    _denied(lambda: kv.delete_metadata_and_all_versions(world.own, mount_point=MOUNT), "deleting everything")


def test_the_workload_cannot_read_or_change_the_metadata(world: World) -> None:
    kv = world.workload.secrets.kv.v2
    _denied(lambda: kv.read_secret_metadata(world.own, mount_point=MOUNT), "reading the metadata")
    _denied(lambda: kv.update_metadata(world.own, custom_metadata={"owner": "x"}, mount_point=MOUNT),
            "updating the metadata")
    _denied(lambda: _patch_metadata(world.workload, world.own), "patching the metadata")


# -- the owners policy: manage the values, never the ownership -------------------------------------------------------

def test_the_owners_policy_grants_exactly_value_management(world: World) -> None:
    paths = world.paths()
    granted = capabilities(world.root, world.owners_token, list(paths.values()))
    allowed = {"own data": ["create", "delete", "patch", "read", "update"], "own metadata": ["read"],
               "own delete": ["update"], "own undelete": ["update"]}
    assert {what: granted[path] for what, path in paths.items()} == {
        what: allowed.get(what, ["deny"]) for what in paths}


def test_the_owners_manage_their_values(world: World) -> None:
    kv = world.owners.secrets.kv.v2
    assert "DATABASE_PASSWORD" in _read(world.owners, world.own)
    kv.create_or_update_secret(world.own, secret={"DATABASE_PASSWORD": "rotated"}, mount_point=MOUNT)
    kv.patch(world.own, secret={"API_KEY": "added"}, mount_point=MOUNT)
    assert _read(world.owners, world.own) == {"DATABASE_PASSWORD": "rotated", "API_KEY": "added"}
    latest = kv.read_secret_metadata(world.own, mount_point=MOUNT)["data"]["current_version"]
    kv.delete_latest_version_of_secret(world.own, mount_point=MOUNT)
    kv.undelete_secret_versions(world.own, versions=[latest], mount_point=MOUNT)
    kv.delete_secret_versions(world.own, versions=[latest], mount_point=MOUNT)
    kv.undelete_secret_versions(world.own, versions=[latest], mount_point=MOUNT)
    assert _read(world.owners, world.own) == {"DATABASE_PASSWORD": "rotated", "API_KEY": "added"}


def test_the_owners_cannot_change_the_ownership_metadata(world: World) -> None:
    kv, before = world.owners.secrets.kv.v2, metadata(world.root, world.own)
    _denied(lambda: kv.update_metadata(world.own, custom_metadata={"owner": "group:default/team-mallory"},
                                       mount_point=MOUNT), "updating the metadata")
    _denied(lambda: _patch_metadata(world.owners, world.own), "patching the metadata")
    _denied(lambda: kv.delete_metadata_and_all_versions(world.own, mount_point=MOUNT), "deleting the metadata")
    assert metadata(world.root, world.own) == before


def test_the_owners_cannot_destroy_versions(world: World) -> None:
    kv = world.owners.secrets.kv.v2
    _denied(lambda: kv.destroy_secret_versions(world.own, versions=[1], mount_point=MOUNT), "destroying versions")
    assert not metadata(world.root, world.own)["versions"]["1"]["destroyed"]  # type: ignore[index]


def test_the_owners_cannot_list(world: World) -> None:
    kv = world.owners.secrets.kv.v2
    _denied(lambda: kv.list_secrets("dev/payments", mount_point=MOUNT), "listing other services' paths")
    _denied(lambda: kv.list_secrets(world.own, mount_point=MOUNT), "listing under their own path")


def test_the_owners_cannot_touch_a_path_sharing_the_prefix_or_another_environment(world: World) -> None:
    kv = world.owners.secrets.kv.v2
    for path in (world.sibling, world.nested, world.other_env):
        before = metadata(world.root, path)
        _denied(lambda path=path: _read(world.owners, path), f"reading {path}")
        _denied(lambda path=path: kv.create_or_update_secret(path, secret={"K": "v"}, mount_point=MOUNT),
                f"writing {path}")
        _denied(lambda path=path: kv.delete_secret_versions(path, versions=[1], mount_point=MOUNT),
                f"deleting versions of {path}")
        _denied(lambda path=path: kv.undelete_secret_versions(path, versions=[1], mount_point=MOUNT),
                f"undeleting {path}")
        _denied(lambda path=path: kv.read_secret_metadata(path, mount_point=MOUNT), f"reading metadata of {path}")
        assert metadata(world.root, path) == before

