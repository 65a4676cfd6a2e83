"""Read-only git smart HTTP for the local repository provider: `git clone <base>/git/<org>/<repo>.git`.

Pushes are refused: repositories change through actions (and their audit trail), not by pushing here.
Reads follow the repository's visibility (see `backend.api.git_access`); the credential is a Golden Path
token, as the password of HTTP Basic (any username, so git's credential prompt works) or as a Bearer token.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from dulwich.errors import GitProtocolError
from dulwich.server import FileSystemBackend
from dulwich.web import make_wsgi_chain

from backend.api.git_access import Decision, ReadCheck, decide, locate, repository_access
from backend.errors import AuthenticationError, GoldenPathError, NotAllowedError
from backend.services.auth import Principal

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
Authenticate = Callable[[str], Principal]
Reader = Callable[[Principal], Callable[[str], bool]]  # a credential -> whether it may read an owner's repositories
CHALLENGE = 'Basic realm="Golden Path git"'
_log = logging.getLogger("goldenpath.git")


class _RootedBackend(FileSystemBackend):
    """dulwich passes '/org/repo.git': without the leading slash it resolves inside the root."""

    def open_repository(self, path: str | bytes) -> Any:
        text = path.decode() if isinstance(path, bytes) else path
        return super().open_repository(text.lstrip("/"))


def read_only_git_app(root: Path, *, authenticate: Authenticate, reader: Reader) -> WsgiApp:
    """`reader(principal)`: which owners' private repositories a credential may read, as a check of an owner ref.
    It is asked for every credential on a private repository and on a name no repository has alike, so reading a
    person's groups costs the same and fails the same way (503 if Backstage's catalog cannot be read) for both."""
    served: WsgiApp = make_wsgi_chain(_RootedBackend(str(root)))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path_info = environ.get("PATH_INFO", "")
        if "git-receive-pack" in path_info or _asks_to_push(environ.get("QUERY_STRING", "")):
            return _answer(start_response, "403 Forbidden",
                           b"pushes are not accepted here: change repositories through Golden Path actions\n")
        target = locate(path_info)
        if target is None:
            return _answer(start_response, "404 Not Found", b"repository not found\n")
        repository = repository_access(root, target)
        principal = None
        may_read: ReadCheck = _nobody
        if repository is None or repository.visibility != "public":  # public: served to anyone, unasked
            principal = _principal(environ.get("HTTP_AUTHORIZATION"), authenticate, path_info)
        if repository is None or repository.visibility == "private":  # a missing one looks private: asked alike
            try:
                may_read = _owners_readable_by(principal, reader)
            except GoldenPathError as failed:  # e.g. Backstage's catalog unreachable
                _log.warning("git read: the caller's groups could not be read (%s): %s", failed.detail, path_info)
                return _answer(start_response, "503 Service Unavailable", b"try again later\n",
                               [("Retry-After", "5")])
        decision = decide(repository, principal, may_read)
        if decision is Decision.CHALLENGE:
            return _answer(start_response, "401 Unauthorized", b"authentication required\n",
                           [("WWW-Authenticate", CHALLENGE)])
        if decision is Decision.HIDE:
            return _answer(start_response, "404 Not Found", b"repository not found\n")
        return _ended_quietly(served(environ, start_response), path_info)

    return app


def _asks_to_push(query: str) -> bool:
    """dulwich reads `service` percent-decoded: so must the refusal (`git%2Dreceive-pack` is receive-pack too)."""
    return any("receive-pack" in value for value in parse_qs(query, keep_blank_values=True).get("service", []))


def _nobody(_principal: Principal, _owner: str) -> bool:
    return False


def _owners_readable_by(principal: Principal | None, reader: Reader) -> ReadCheck:
    if principal is None:
        return _nobody
    try:
        check = reader(principal)
    except NotAllowedError:  # e.g. no catalog token configured: a person whose groups are unknown reads no owner's
        return _nobody
    return lambda _principal, owner: check(owner)


def _ended_quietly(body: Iterable[bytes], path: str) -> Iterator[bytes]:
    """dulwich answers 200 and then reads the request: a malformed one (from anyone who may read, anonymous on a
    public repository) ends the answer early, logged in one line rather than as a server error."""
    try:
        yield from body
    except GitProtocolError as refused:
        _log.info("git request refused by the protocol (%s): %s", refused, path)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


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
