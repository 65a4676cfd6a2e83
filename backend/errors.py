"""The one error taxonomy of Golden Path.

Every error a caller can see is one of these; `to_problem()` renders it as RFC 9457
problem details. Details name the field, rule or resource at fault, never a secret.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, ClassVar

PROBLEM_BASE = "https://goldenpath.dev/problems/"
MAX_DETAIL_CHARS = 500


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str
    rule: str | None = None  # the platform rule at fault, for policy problems

    def to_dict(self) -> dict[str, str]:
        out = {"field": self.field, "message": self.message}
        if self.rule:
            out["rule"] = self.rule
        return out


class GoldenPathError(Exception):
    """Base class: a problem we can explain to the caller."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = cap(detail)
        self.run_id: str | None = None
        self.errors: list[FieldError] = []

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later: what the problem's `retryable` says, and nothing else."""
        return False

    def redact(self, mask: Callable[[str], str]) -> None:
        """Mask secrets in everything the caller will see: the detail and each error's message."""
        self.detail = mask(self.detail)
        self.errors = [replace(error, message=mask(error.message)) for error in self.errors]

    def extensions(self) -> dict[str, Any]:
        return {}

    def to_problem(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "retryable": self.retryable,
        }
        body.update(self.extensions())
        if self.run_id:
            body["runId"] = self.run_id
        return body

    def headers(self) -> dict[str, str]:
        return {}


class InputError(GoldenPathError):
    status = 400
    slug = "invalid-input"
    title = "The request is not valid"

    def __init__(self, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.errors = errors or []

    @classmethod
    def for_field(cls, field: str, message: str) -> InputError:
        return cls(f"{field}: {message}", [FieldError(field, message)])

    def extensions(self) -> dict[str, Any]:
        return {"errors": [e.to_dict() for e in self.errors]}


class AuthenticationError(GoldenPathError):
    status = 401
    slug = "unauthenticated"
    title = "Authentication required"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="goldenpath"'}


class NotAllowedError(GoldenPathError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"

    def __init__(self, detail: str, *, rule: str = "forbidden", field: str | None = None) -> None:
        super().__init__(detail)
        self.rule, self.field = rule, field
        self.errors = [FieldError(field, self.detail, rule)] if field else []

    def extensions(self) -> dict[str, Any]:
        ext: dict[str, Any] = {"rule": self.rule}
        if self.errors:
            ext["errors"] = [e.to_dict() for e in self.errors]
        return ext


class NotFoundError(GoldenPathError):
    status = 404
    slug = "not-found"
    title = "Not found"


class ConflictError(GoldenPathError):
    status = 409
    slug = "conflict"
    title = "Conflicts with existing state"

    def __init__(self, detail: str, *, owner: str | None = None) -> None:
        super().__init__(detail)
        self.owner = owner

    def extensions(self) -> dict[str, Any]:
        return {"owner": self.owner} if self.owner else {}


class BusyError(ConflictError):
    """Another run is working on the same thing right now: the same request will succeed once it is done."""

    slug = "busy"
    title = "Another run is in progress"

    def __init__(self, detail: str, *, retry_after: int = 5) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return True

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class InterruptedRunError(GoldenPathError):
    """The replica running the run died and the run could not be finished without the caller: retry it (with
    the same idempotency key, which the interrupted run released)."""

    status = 503
    slug = "interrupted"
    title = "The run was interrupted"

    @property
    def retryable(self) -> bool:
        return True


class PolicyViolation(GoldenPathError):
    status = 422
    slug = "policy-violation"
    title = "The request breaks a platform policy"

    def __init__(self, detail: str, *, rule: str, field: str | None = None) -> None:
        super().__init__(detail)
        self.rule, self.field = rule, field
        self.errors = [FieldError(field, self.detail, rule)] if field else []

    @classmethod
    def of(cls, problems: list[FieldError]) -> PolicyViolation:
        """Every problem at once; `rule` is the first one's, each error names its own field and rule."""
        count = f"{len(problems)} problems: " if len(problems) > 1 else ""
        summary = "; ".join(f"{p.field}: {p.message}" for p in problems[:5])
        error = cls(count + summary, rule=problems[0].rule or "policy", field=problems[0].field)
        error.errors = list(problems)
        return error

    def extensions(self) -> dict[str, Any]:
        ext: dict[str, Any] = {"rule": self.rule}
        if self.errors:
            ext["errors"] = [e.to_dict() for e in self.errors]
        return ext


class UpstreamError(GoldenPathError):
    status = 502
    slug = "upstream-error"
    title = "An upstream system refused the request"

    def __init__(self, detail: str, *, provider: str, retryable: bool = False) -> None:
        super().__init__(detail)
        self.provider = provider
        self._retryable = retryable

    def to_problem(self) -> dict[str, Any]:
        body = super().to_problem()
        body["provider"] = self.provider
        return body

    @property
    def retryable(self) -> bool:
        return self._retryable

    @property
    def is_retryable(self) -> bool:
        return self._retryable


class UpstreamUnavailable(UpstreamError):
    status = 503
    slug = "upstream-unavailable"
    title = "An upstream system is unavailable"

    def __init__(self, detail: str, *, provider: str, retry_after: int = 5) -> None:
        super().__init__(detail, provider=provider, retryable=True)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class RunFailedError(GoldenPathError):
    """Unexpected failure inside an action: the details stay in the server log."""

    slug = "action-failed"
    title = "The action failed unexpectedly"


def cap(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    """Upstream texts can be long or carry echoes of requests: keep the first line, bounded."""
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return first_line if len(first_line) <= limit else first_line[: limit - 1] + "…"
