"""What a kind of resource declares: how the catalog shows it, what the Component it belongs to gains from it, and
which object's absence makes it missing. One module per kind (backend/kinds/, or the `goldenpath.resource_kinds`
entry point group), so the next kind (a database, a DNS name) is one module."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Row = Mapping[str, Any]  # an inventory row: kind, locator, service, system, owner, environment, attributes
Links = list[dict[str, str]]


def _none(_: Row) -> dict[str, str]:
    return {}


def _no_links(_: Row) -> Links:
    return []


def _nothing(_: str, __: Sequence[Row]) -> tuple[dict[str, str], Links]:
    return {}, []


@dataclass(frozen=True)
class ResourceKind:
    id: str  # the inventory kind an action records (ResourceRecord.kind)
    catalog_type: str  # spec.type of its Resource entity
    main_object: str  # the Change.kind whose creation, in a check, means the resource itself was gone
    name_parts: Callable[[Row], tuple[str, ...]]  # its entity name, after the service's
    title: Callable[[Row], str]
    annotations: Callable[[Row], dict[str, str]] = _none  # on its Resource entity
    links: Callable[[Row], Links] = _no_links
    # what the service's Component gains from all its resources of this kind (plugin annotations, links)
    component: Callable[[str, Sequence[Row]], tuple[dict[str, str], Links]] = _nothing

    def attributes(self, row: Row) -> Mapping[str, Any]:
        return row.get("attributes") or {}
