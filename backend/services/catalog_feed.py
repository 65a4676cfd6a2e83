"""The catalog feed: the inventory's entities as Backstage reads them, rendered once per inventory revision.

A request costs one small read (the revision) when nothing changed. After a change, only the services whose
rows changed are rendered again (each service's documents are kept as bytes), and the body is their
concatenation in service order: byte for byte what rendering everything would give. The ETag is a digest of
the exact body, so it is a strong validator.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from backend.catalog import entities
from backend.store.inventory import InventoryStore

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: about 10x faster
FULL_RENDER_ABOVE = 500  # changed services; past this, one pass over every row is cheaper than many queries


@dataclass(frozen=True)
class Rendered:
    revision: int
    body: bytes
    etag: str
    count: int


@dataclass
class _Chunks:
    """One form's rendered services (name → bytes, entity count), and which service each row was rendered in."""

    revision: int = -1
    by_service: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    placed: dict[tuple[str, str], str] = field(default_factory=dict)

    def stale(self, changed: list[tuple[str, str, str | None]]) -> set[str]:
        """The services to render again: those of the changed rows, and those the rows were in before."""
        services = {service for _, _, service in changed if service}
        return services | {self.placed[(kind, locator)] for kind, locator, _ in changed
                           if (kind, locator) in self.placed}


class CatalogFeed:
    def __init__(self, inventory: InventoryStore) -> None:
        self._inventory = inventory
        self._cache: dict[str, Rendered] = {}
        self._chunks: dict[str, _Chunks] = {"yaml": _Chunks(), "json": _Chunks()}
        self._lock = threading.Lock()

    def yaml(self) -> Rendered:
        return self._current("yaml")

    def json(self) -> Rendered:
        return self._current("json")

    def _current(self, form: str) -> Rendered:
        revision = self._inventory.revision()
        cached = self._cache.get(form)
        if cached is not None and cached.revision == revision:
            return cached
        with self._lock:  # one render per change, however many readers arrive at once
            cached = self._cache.get(form)
            if cached is None or cached.revision != revision:
                cached = self._render(form, revision)
                self._cache[form] = cached
            return cached

    def _render(self, form: str, revision: int) -> Rendered:
        chunks = self._chunks[form]
        stale = chunks.stale(self._inventory.changed_since(chunks.revision)) if chunks.revision >= 0 else None
        if stale is None or len(stale) > FULL_RENDER_ABOVE:
            rows = self._inventory.rows()
            chunks.by_service, chunks.placed = _render_services(form, rows), {}
        else:
            rows = self._inventory.rows(stale)
            for name in stale:  # a service whose last row moved away has nothing left to show
                chunks.by_service.pop(name, None)
            chunks.by_service.update(_render_services(form, rows))
        chunks.placed.update({(row["kind"], row["locator"]): row["service"] for row in rows if row.get("service")})
        chunks.revision = revision  # rows committed after `revision` was read are rendered again next time
        ordered = [chunks.by_service[name] for name in sorted(chunks.by_service)]
        count = sum(n for _, n in ordered)
        if form == "yaml":
            body = b"".join(data for data, _ in ordered)
        else:
            body = b'{"items":[' + b",".join(data for data, n in ordered if n) + b"]}"
        return Rendered(revision=revision, body=body, count=count,
                        etag='"' + hashlib.sha256(body).hexdigest()[:40] + '"')


def _render_services(form: str, rows: Iterable[dict[str, Any]]) -> dict[str, tuple[bytes, int]]:
    by_service: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row.get("service"):
            by_service[row["service"]].append(row)
    return {name: _render(form, entities(service_rows)) for name, service_rows in by_service.items()}


def _render(form: str, items: list[dict[str, Any]]) -> tuple[bytes, int]:
    if not items:
        return b"", 0
    if form == "yaml":
        text = yaml.dump_all(items, Dumper=_Dumper, explicit_start=True, sort_keys=False, allow_unicode=True,
                             width=10_000)
        return text.encode("utf-8"), len(items)
    inner = json.dumps(items, ensure_ascii=False, separators=(",", ":"))[1:-1]  # the list's items, no brackets
    return inner.encode("utf-8"), len(items)
