"""The feed renders again only the services that changed, and its body is byte for byte what a full render
gives, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import yaml

from backend.services.catalog_feed import CatalogFeed
from backend.store.database import Database
from backend.store.inventory import InventoryStore, ResourceRecord


def service(name: str, *, description: str = "A service", owner: str = "group:default/team-a") -> list[ResourceRecord]:
    common: dict[str, Any] = {"service": name, "system": "payments", "owner": owner}
    return [
        ResourceRecord("service", name, **common, attributes={"description": description, "costCenter": "cc-1",
                                                              "environments": ["dev"]}),
        ResourceRecord("vault.secrets-path", f"secret/dev/payments/{name}", **common, environment="dev",
                       attributes={"mount": "secret", "path": f"dev/payments/{name}"}),
    ]


def test_incremental_renders_match_a_full_render(database_url: str) -> None:
    database = Database(database_url)
    database.migrate()
    inventory = InventoryStore(database)
    feed = CatalogFeed(inventory)

    def change(records: list[ResourceRecord]) -> None:
        assert inventory.upsert(records, action_id="test", run_id="r" * 36)

    for name in ("svc-b", "svc-d", "svc-a"):
        change(service(name))
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(feed.yaml().body)] == [
        "svc-a", "svc-a.secrets.dev", "svc-b", "svc-b.secrets.dev", "svc-d", "svc-d.secrets.dev"]
    feed.json()

    change(service("svc-c"))  # a new service lands between the others
    change(service("svc-b", description="Changed"))  # an existing one changes
    change([ResourceRecord("kubernetes.namespace", "eu/svc-d-dev", service="svc-d", system="payments",
                           owner="group:default/team-a", environment="dev",
                           attributes={"cluster": "eu", "namespace": "svc-d-dev"})])  # one gains a resource
    assert_same_as_a_full_render(feed, inventory, count=9)

    # a row can pass to another service (a namespace pattern without {service}): it leaves the old one's page
    change([ResourceRecord("kubernetes.namespace", "eu/svc-d-dev", service="svc-a", system="payments",
                           owner="group:default/team-a", environment="dev",
                           attributes={"cluster": "eu", "namespace": "svc-d-dev"})])
    assert_same_as_a_full_render(feed, inventory, count=9)
    change([ResourceRecord("vault.secrets-path", "secret/dev/payments/orphan", service="svc-e", system="payments",
                           owner="group:default/team-a", environment="dev", attributes={"path": "x"})])
    assert_same_as_a_full_render(feed, inventory, count=10)  # svc-e: one Resource, no Component
    change([ResourceRecord("vault.secrets-path", "secret/dev/payments/orphan", service="svc-a", system="payments",
                           owner="group:default/team-a", environment="dev", attributes={"path": "x"})])
    assert_same_as_a_full_render(feed, inventory, count=10)  # svc-e has nothing left, and is gone
    documents = list(yaml.safe_load_all(feed.yaml().body))
    assert [d["metadata"].get("description") for d in documents if d["kind"] == "Component"] == [
        "A service", "Changed", "A service", "A service"]
    assert "svc-e" not in feed.yaml().body.decode()
    assert not inventory.upsert(service("svc-c"), action_id="test", run_id="r" * 36)  # no change, no revision
    assert feed.yaml().revision == inventory.revision()


def assert_same_as_a_full_render(feed: CatalogFeed, inventory: InventoryStore, *, count: int) -> None:
    fresh = CatalogFeed(inventory)
    for form in ("yaml", "json"):
        incremental, full = getattr(feed, form)(), getattr(fresh, form)()
        assert incremental.body == full.body and incremental.etag == full.etag and incremental.count == count
