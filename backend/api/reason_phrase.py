"""Our own HTTP reason phrase, so a failed step in Backstage shows Golden Path's message.

Backstage reports a failed distributed action only as "Request failed with <status> <reason phrase>":
ResponseError.fromResponse (@backstage/errors) keeps our error body in `cause`, which the scaffolder never
prints. The status line is the one channel to the task log. ASGI has no field for it, so the app names the
phrase in a response header, ReasonPhraseMiddleware moves it into a context variable, and the uvicorn h11
protocol below writes it into the status line (uvicorn takes a protocol class: `--http`, `Config(http=...)`).
Elsewhere (another server, the test client) the standard phrase stays, and nothing else changes.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

REASON_HEADER = "x-goldenpath-reason"
MAX_REASON_CHARS = 300
_HEADER_KEY = REASON_HEADER.encode()
_reason: ContextVar[bytes | None] = ContextVar("goldenpath_reason_phrase", default=None)
_NOT_PRINTABLE = re.compile(r"[^\x20-\x7e]+")


def reason_phrase(text: str) -> str:
    """One line of printable ASCII, at most MAX_REASON_CHARS: what a status line may carry."""
    phrase = " ".join(_NOT_PRINTABLE.sub(" ", text).split())
    return phrase if len(phrase) <= MAX_REASON_CHARS else phrase[: MAX_REASON_CHARS - 3] + "..."


class ReasonPhraseMiddleware:
    """Takes the reason header off the response and leaves the phrase for the protocol to write."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_reason(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                phrase = next((value for key, value in headers if key.lower() == _HEADER_KEY), None)
                if phrase is not None:
                    _reason.set(bytes(phrase))
                    message = {**message, "headers": [(k, v) for k, v in headers if k.lower() != _HEADER_KEY]}
            await send(message)

        await self.app(scope, receive, send_with_reason)


class _ReasonPhraseConnection(h11.Connection):
    def send_with_data_passthrough(self, event: h11.Event) -> list[bytes] | None:  # what send() calls
        phrase = _reason.get()
        if phrase is not None and isinstance(event, h11.Response):
            _reason.set(None)
            event = h11.Response(status_code=event.status_code, headers=event.headers.raw_items(), reason=phrase,
                                 http_version=event.http_version)
        return super().send_with_data_passthrough(event)


class ReasonPhraseH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, writing the reason phrase the app asked for."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the same connection, set up as uvicorn configured it, with one method more: the subclass has no state
        self.conn.__class__ = _ReasonPhraseConnection
