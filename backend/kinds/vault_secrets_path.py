"""A service's secrets path per environment (goldenpath:vault:secrets-path:create)."""

from __future__ import annotations

from collections.abc import Sequence

from backend.kinds.base import Links, ResourceKind, Row


def _path(row: Row) -> str:
    return str((row.get("attributes") or {}).get("path") or "")


def _ui(row: Row) -> str:
    return str((row.get("attributes") or {}).get("uiUrl") or "")


def _component(_: str, rows: Sequence[Row]) -> tuple[dict[str, str], Links]:
    annotations = {"vault.io/secrets-path": _path(rows[0])} if rows else {}  # the first environment's
    return annotations, [{"url": ui, "title": f"Secrets ({row.get('environment')})"} for row in rows
                         if (ui := _ui(row))]


KIND = ResourceKind(
    id="vault.secrets-path", catalog_type="vault-secrets-path", main_object="vault.secret-path",
    name_parts=lambda row: ("secrets", str(row.get("environment") or "")),
    title=lambda row: f"Secrets {row['locator']}",
    annotations=lambda row: {"vault.io/secrets-path": _path(row)},
    links=lambda row: [{"url": ui, "title": "Vault"}] if (ui := _ui(row)) else [],
    component=_component,
)
