"""ASGI guards that run before routing and parsing: body size, and paths no route can hold."""

from __future__ import annotations

from typing import Any

from backend.errors import FieldError, InputError


class RequestTooLargeError(InputError):
    status = 413
    slug = "payload-too-large"
    title = "The request body is too large"


class BodyLimitMiddleware:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            raise self._error()
        seen = 0

        async def limited_receive() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise self._error()
            return message

        await self.app(scope, limited_receive, send)

    def _error(self) -> RequestTooLargeError:
        return RequestTooLargeError(
            f"the body is larger than {self.max_bytes} bytes",
            [FieldError("body", f"must be at most {self.max_bytes} bytes")],
        )


class ControlCharacterPathMiddleware:
    """connexion's router and Flask's disagree on paths with control characters (a trailing newline
    matches one and not the other, leaving a handler without its operation); no route of ours has them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and any(ord(c) < 32 or ord(c) == 127 for c in scope.get("path", "")):
            raise InputError("the request path contains control characters",
                             [FieldError("path", "must not contain control characters")])
        await self.app(scope, receive, send)
