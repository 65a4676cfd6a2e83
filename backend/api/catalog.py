"""Handlers: the catalog entity feed (a Backstage `url` location), as YAML documents or as JSON."""

from __future__ import annotations

from flask import Response, request

from backend.api.context import services
from backend.services.catalog_feed import Rendered


def entities_yaml() -> Response:
    return _conditional(services().catalog_feed.yaml(), "application/yaml")


def entities_json() -> Response:
    return _conditional(services().catalog_feed.json(), "application/json")


def _conditional(rendered: Rendered, content_type: str) -> Response:
    """The cached body as it is (already serialised), or 304 when the caller holds the same ETag."""
    headers = {"ETag": rendered.etag, "Cache-Control": "no-cache", "X-Entity-Count": str(rendered.count)}
    wanted = request.headers.get("If-None-Match", "")
    if rendered.etag in {tag.strip() for tag in wanted.split(",")} or wanted.strip() == "*":
        return Response(b"", 304, headers=headers, content_type=content_type)
    return Response(rendered.body, 200, headers=headers, content_type=content_type)
