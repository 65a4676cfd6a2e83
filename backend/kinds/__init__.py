"""The kinds of resource Golden Path makes: the built-in modules here and the `goldenpath.resource_kinds` entry
points, each a module with a `KIND` (backend.kinds.base.ResourceKind)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from importlib.metadata import entry_points

from backend.kinds.base import ResourceKind

ENTRY_POINT_GROUP = "goldenpath.resource_kinds"


@cache
def resource_kinds() -> dict[str, ResourceKind]:
    """Every declared kind by id; two declarations of one id are an error, not a silent override."""
    found: list[ResourceKind] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name != "base":
            found.append(importlib.import_module(f"{__name__}.{info.name}").KIND)
    found += [entry.load() for entry in entry_points(group=ENTRY_POINT_GROUP)]
    kinds: dict[str, ResourceKind] = {}
    for kind in found:
        if not isinstance(kind, ResourceKind):
            raise TypeError(f"a resource kind must be a ResourceKind, not {type(kind).__name__}")
        if kind.id in kinds:
            raise ValueError(f"resource kind {kind.id!r} is declared twice")
        kinds[kind.id] = kind
    return kinds
