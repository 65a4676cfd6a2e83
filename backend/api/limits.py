"""ASGI middleware that refuses request bodies over the configured size, before anything parses them."""

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
