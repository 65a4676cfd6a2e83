"""BackstageCatalog: asks a Backstage catalog to refresh the `url` location that reads Golden Path's feed.

Backstage names the Location entity of a registered location `generated-<sha1 of "type:target">`
(catalog-backend `locationSpecToMetadataName`); `POST /api/catalog/refresh` with that ref makes the catalog
read the feed now instead of at its next processing interval (100-150 s by default), and the entities that
changed are processed right after. The token is a Backstage external-access token; it never leaves this module.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from urllib.parse import quote

import requests

from backend.errors import UpstreamError, UpstreamUnavailable, cap

PROVIDER = "backstage"


def location_entity_ref(target: str, location_type: str = "url") -> str:
    digest = hashlib.sha1(f"{location_type}:{target}".encode(), usedforsecurity=False).hexdigest()
    return f"location:default/generated-{digest}"


class BackstageCatalog:
    def __init__(self, *, base_url: str, token: Callable[[], str | None], timeout: float = 5.0) -> None:
        self._url = base_url.rstrip("/") + "/api/catalog/refresh"
        self._token = token  # asked at each call: a token file may be rotated, or written after we start
        self._timeout = timeout
        self._session = requests.Session()

    def refresh_location(self, target: str) -> str:
        """Ask for the location of `target` to be refreshed; returns the entity ref asked for."""
        ref = location_entity_ref(target)
        token = self._token()
        if not token:
            raise UpstreamError("no Backstage token to ask for a catalog refresh with (catalog.backstage_token "
                                "or an existing catalog.backstage_token_file)", provider=PROVIDER)
        _answer(lambda: self._session.post(self._url, json={"entityRef": ref}, timeout=self._timeout,
                                           headers={"Authorization": f"Bearer {token}"}),
                what=f"the catalog refresh of {ref}")
        return ref


def _answer(send: Callable[[], requests.Response], *, what: str, missing_ok: bool = False) -> requests.Response:
    """Backstage's answer to `send()`, its failures translated once: 5xx and no answer are retryable."""
    try:
        response = send()
    except requests.RequestException as exc:
        raise UpstreamUnavailable(f"Backstage did not answer {what} ({type(exc).__name__})",
                                  provider=PROVIDER) from None
    if response.status_code >= 500:
        raise UpstreamUnavailable(f"Backstage answered {what} with {response.status_code}", provider=PROVIDER)
    if response.status_code >= 400 and not (missing_ok and response.status_code == 404):
        raise UpstreamError(f"Backstage refused {what} ({response.status_code}): {cap(_message(response), 200)}",
                            provider=PROVIDER)
    return response


def _message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.reason or ""


class BackstageDirectory:
    """Reads a person's groups from Backstage's catalog: the `memberOf` relations of their User entity.

    The token needs only `catalog.entity.read` (Backstage's externalAccess accessRestrictions can say so)."""

    def __init__(self, *, base_url: str, token: Callable[[], str | None], timeout: float = 5.0) -> None:
        self._base = base_url.rstrip("/") + "/api/catalog/entities/by-name/user"
        self._token = token
        self._timeout = timeout
        self._session = requests.Session()

    def groups_of(self, user_ref: str) -> frozenset[str]:
        """Group refs the user is a direct member of; none for a user the catalog does not know."""
        namespace, name = user_ref.split(":", 1)[1].split("/", 1)
        token = self._token()
        if not token:
            raise UpstreamUnavailable("Golden Path has no Backstage token to read group memberships with "
                                      "(auth.catalog_token)", provider=PROVIDER)
        url = f"{self._base}/{quote(namespace, safe='')}/{quote(name, safe='')}"
        response = _answer(lambda: self._session.get(url, timeout=self._timeout,
                                                     headers={"Authorization": f"Bearer {token}"}),
                           what=f"the catalog read of {user_ref}", missing_ok=True)
        if response.status_code == 404:
            return frozenset()
        try:
            relations = response.json().get("relations") or []
        except ValueError:
            raise UpstreamError(f"Backstage's catalog sent no JSON for {user_ref}", provider=PROVIDER) from None
        return frozenset(str(r["targetRef"]).lower() for r in relations
                         if isinstance(r, dict) and r.get("type") == "memberOf" and isinstance(r.get("targetRef"), str))
