"""The catalog feed: the inventory's entities as Backstage reads them, rendered once per inventory revision.

A request costs one small read (the revision) when nothing changed; the body is rendered again only after
the inventory changes. The ETag is a digest of the exact body, so it is a strong validator.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

import yaml

from backend.catalog import entities
from backend.store.inventory import InventoryStore

_Dumper: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # libyaml when present: about 10x faster


@dataclass(frozen=True)
class Rendered:
    revision: int
    body: bytes
    etag: str
    count: int


class CatalogFeed:
    def __init__(self, inventory: InventoryStore) -> None:
        self._inventory = inventory
        self._cache: dict[str, Rendered] = {}
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
        items = entities(self._inventory.rows())
        if form == "yaml":
            text = yaml.dump_all(items, Dumper=_Dumper, explicit_start=True, sort_keys=False, allow_unicode=True,
                                 width=10_000) if items else ""
            body = text.encode("utf-8")
        else:
            body = json.dumps({"items": items}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        return Rendered(revision=revision, body=body, count=len(items),
                        etag='"' + hashlib.sha256(body).hexdigest()[:40] + '"')
