"""A service's repository (goldenpath:git:repository:create): GitHub or local git."""

from __future__ import annotations

from collections.abc import Sequence

from backend.kinds.base import Links, ResourceKind, Row


def _web(row: Row) -> str:
    attributes = row.get("attributes") or {}
    return str(attributes.get("webUrl") or attributes.get("remoteUrl") or "")


def _links(row: Row) -> Links:
    return [{"url": web, "title": "Repository"}] if (web := _web(row)) else []


def _component(_: str, rows: Sequence[Row]) -> tuple[dict[str, str], Links]:
    annotations: dict[str, str] = {}
    links: Links = []
    for row in rows:
        if web := _web(row):
            annotations["backstage.io/source-location"] = f"url:{web.rstrip('/')}/"
            annotations["backstage.io/techdocs-ref"] = "dir:."
            links.append({"url": web, "title": "Repository"})
        if (row.get("attributes") or {}).get("provider") == "github":
            annotations["github.com/project-slug"] = str(row["locator"])
    return annotations, links


KIND = ResourceKind(
    id="repository", catalog_type="git-repository", main_object="repository.repo",
    name_parts=lambda row: ("repository",), title=lambda row: f"Repository {row['locator']}",
    links=_links, component=_component,
)
