"""Checks HTTP traffic against GitHub's official OpenAPI description (npm `@octokit/openapi`).

The description is installed by `npm ci` from tests/github_emulator/openapi (lock file committed), cached
outside the clone. openapi-core validates each request (path, query, body) and each response (status,
body) against the operation the emulator routed it to. The description's own servers are replaced
by the emulator's address; its paths, parameters and schemas are used as published.
"""

from __future__ import annotations

import functools
import json
import threading
from pathlib import Path
from typing import Any

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from backstage import npm_cache

PACKAGE_DIR = Path(__file__).parent / "openapi"
SERVER = "http://github.emulator"
VARIANTS = ("api.github.com", "ghec", "ghes-3.19")


class SpecUnavailable(RuntimeError):
    """The description could not be installed (no npm, or `npm ci` failed)."""


@functools.cache
def description_path(variant: str) -> Path:
    if variant not in VARIANTS:
        raise ValueError(f"unknown GitHub description {variant!r}; known: {', '.join(VARIANTS)}")
    try:
        root, _how = npm_cache.installed(PACKAGE_DIR, prefix="octokit-openapi")
    except (npm_cache.NpmUnavailable, npm_cache.NpmInstallFailed) as error:
        raise SpecUnavailable(str(error)) from error
    return root / "node_modules" / "@octokit" / "openapi" / "generated" / f"{variant}.json"


class SpecCheck:
    """One variant of the description, loaded once; thread-safe."""

    def __init__(self, variant: str = "api.github.com") -> None:
        self.variant = variant
        document = json.loads(description_path(variant).read_text(encoding="utf-8"))
        self.version = str(document.get("info", {}).get("version", "?"))
        self.operations = {(method.upper(), path) for path, item in document["paths"].items()
                           for method in item if method in {"get", "put", "post", "patch", "delete"}}
        document["servers"] = [{"url": SERVER}]
        # The description is GitHub's published artefact: checking the 13 MB document itself would take 12 s.
        self._api = OpenAPI.from_dict(document, config=Config(spec_validator_cls=None))
        self._lock = threading.Lock()  # openapi-core caches compiled validators lazily

    def documents(self, method: str, template: str) -> bool:
        return (method.upper(), template) in self.operations

    def request_problems(self, method: str, path: str, template: str, path_args: dict[str, str],
                         query: dict[str, str], body: bytes, content_type: str | None) -> list[str]:
        request = self._request(method, path, template, path_args, query, body, content_type)
        with self._lock:
            result = self._api.unmarshal_request(request)
        return [_describe(error) for error in result.errors]

    def response_problems(self, method: str, path: str, template: str, path_args: dict[str, str],
                          status: int, body: bytes, content_type: str | None) -> list[str]:
        request = self._request(method, path, template, path_args, {}, b"", None)
        response = MockResponse(body, status_code=status, content_type=content_type)
        with self._lock:
            result = self._api.unmarshal_response(request, response)
        return [_describe(error) for error in result.errors]

    @staticmethod
    def _request(method: str, path: str, template: str, path_args: dict[str, str], query: dict[str, str],
                 body: bytes, content_type: str | None) -> Any:
        return MockRequest(SERVER, method.lower(), path, path_pattern=template, view_args=path_args, args=query,
                           data=body or None, content_type=content_type or "application/json")


def _describe(error: Exception) -> str:
    cause = error.__cause__
    details = [str(e.message) for e in getattr(cause, "schema_errors", ()) or ()]
    text = f"{type(error).__name__}: {error}"
    if details:
        text += " (" + "; ".join(details[:5]) + ")"
    elif cause is not None:
        text += f" ({cause})"
    return text
