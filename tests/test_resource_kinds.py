"""One declaration per kind of resource: the built-ins, one an installed package adds (entry point), and a kind
nothing declares, which the catalog does not draw (it used to be drawn as a namespace)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backend.catalog import entities
from backend.kinds import resource_kinds
from backend.services.conformance import main_object

OWNER = "group:default/team-payments"


def row(kind: str, locator: str, **attributes: Any) -> dict[str, Any]:
    return {"kind": kind, "locator": locator, "service": "payments-api", "system": "payments", "owner": OWNER,
            "environment": "dev", "attributes": attributes}


@pytest.fixture
def fresh_kinds() -> Iterator[None]:
    resource_kinds.cache_clear()
    yield
    resource_kinds.cache_clear()


def test_the_built_in_kinds_declare_their_catalog_type_and_main_object(fresh_kinds: None) -> None:
    kinds = resource_kinds()
    assert {k: (v.catalog_type, v.main_object) for k, v in kinds.items()} == {
        "repository": ("git-repository", "repository.repo"),
        "vault.secrets-path": ("vault-secrets-path", "vault.secret-path"),
        "kubernetes.namespace": ("kubernetes-namespace", "kubernetes.Namespace")}


def test_a_kind_an_installed_package_declares_is_drawn_and_checked(installed: Path, fresh_kinds: None) -> None:
    drawn = entities([row("dns.name", "payments.example.com", zone="example.com")])
    assert [(e["kind"], e["metadata"]["name"], e["spec"]["type"]) for e in drawn] == [
        ("Resource", "payments-api.dns.dev", "dns-name")]
    assert drawn[0]["metadata"]["annotations"]["example.com/zone"] == "example.com"
    assert main_object("dns.name") == "dns.record"


def test_a_kind_nothing_declares_is_not_drawn(fresh_kinds: None) -> None:
    drawn = entities([row("database.postgres", "pg-1", namespace="x"), row("kubernetes.namespace", "c/ns",
                                                                          namespace="ns", cluster="c")])
    assert [e["spec"]["type"] for e in drawn] == ["kubernetes-namespace"]


def test_a_repair_rule_for_a_kind_nothing_declares_is_refused(make_app: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match=r"reconcile\.repair\.0\.kind must be one of"):
        make_app(reconcile={"repair": [{"kind": "database"}]})
