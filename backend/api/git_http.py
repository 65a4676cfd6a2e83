"""Read-only git smart HTTP for the local repository provider: `git clone <base>/git/<org>/<repo>.git`.

Pushes are refused: repositories change through actions (and their audit trail), not by pushing here.
Reads follow the repository's visibility (see `backend.api.git_access`); the credential is a Golden Path
token, as the password of HTTP Basic (any username, so git's credential prompt works) or as a Bearer token.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dulwich.server import FileSystemBackend
from dulwich.web import make_wsgi_chain

from backend.api.git_access import Decision, ReadCheck, decide, locate, repository_access
from backend.errors import AuthenticationError
from backend.services.auth import Principal

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Authenticate = Callable[[str], Principal]
CHALLENGE = 'Basic realm="Golden Path git"'
_log = logging.getLogger("goldenpath.git")


class _RootedBackend(FileSystemBackend):
    """dulwich passes '/org/repo.git': without the leading slash it resolves inside the root."""

    def open_repository(self, path: str | bytes) -> Any:
        text = path.decode() if isinstance(path, bytes) else path
        return super().open_repository(text.lstrip("/"))


def read_only_git_app(root: Path, *, authenticate: Authenticate, may_read: ReadCheck) -> WsgiApp:
    """`may_read(principal, owner_ref)`: whether a credential may read a private repository of that owner."""
    served: WsgiApp = make_wsgi_chain(_RootedBackend(str(root)))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path_info = environ.get("PATH_INFO", "")
        if "git-receive-pack" in path_info or "service=git-receive-pack" in environ.get("QUERY_STRING", ""):
            return _answer(start_response, "403 Forbidden",
                           b"pushes are not accepted here: change repositories through Golden Path actions\n")
        target = locate(path_info)
        if target is None:
            return _answer(start_response, "404 Not Found", b"repository not found\n")
        principal = _principal(environ.get("HTTP_AUTHORIZATION"), authenticate, path_info)
        decision = decide(repository_access(root, target), principal, may_read)
        if decision is Decision.CHALLENGE:
            return _answer(start_response, "401 Unauthorized", b"authentication required\n",
                           [("WWW-Authenticate", CHALLENGE)])
        if decision is Decision.HIDE:
            return _answer(start_response, "404 Not Found", b"repository not found\n")
        return served(environ, start_response)

    return app


def _principal(header: str | None, authenticate: Authenticate, path: str) -> Principal | None:
    """The caller, or None for anonymous. A credential that does not authenticate counts as none (logged
    without the token): public repositories stay readable, everything else answers with a challenge."""
    token = credential(header)
    if token is None:
        return None
    try:
        return authenticate(token)
    except AuthenticationError as refused:
        _log.info("git read with a credential that was refused (%s): %s", refused.detail, path)
        return None


def credential(header: str | None) -> str | None:
    """The token in an Authorization header: the password of HTTP Basic, or a Bearer token."""
    scheme, _, value = (header or "").strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon and password else None


def _answer(start_response: Callable[..., Any], status: str, body: bytes,
            headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                            ("Cache-Control", "no-store"), *(headers or [])])
    return [body]
