"""GitHubApi: REST calls by their documented paths, through PyGithub's requester, within GitHub's limits.

PyGithub gives authentication (token or GitHub App installation, refreshed), the base URL (GitHub.com or
Enterprise Server) and connection pooling. Calls name the documented path (`/repos/{owner}/{repo}/...`)
rather than following `url` fields, so every request is one GitHub's OpenAPI description lists.

Rate limits: a 403/429 carrying `retry-after`, or `x-ratelimit-remaining: 0` with `x-ratelimit-reset`,
is waited out while the wait fits the call's budget; otherwise the call fails as UpstreamUnavailable
(503, retryable, Retry-After). Nothing from a request's headers reaches an error or a log line, and
GitHub's own `message` is the only part of a response body that does.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Collection
from typing import Any

import requests
from github import GithubException
from github.Requester import Requester
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, stop_before_delay

from backend.errors import UpstreamError, UpstreamUnavailable, cap

PROVIDER = "github"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
SECONDARY_LIMIT_FALLBACK_SECONDS = 60.0  # GitHub's advice when a secondary limit names no retry-after


class RateLimited(Exception):
    """GitHub asked us to wait `wait` seconds before the next request."""

    def __init__(self, wait: float, primary: bool) -> None:
        super().__init__(f"rate limited for {wait:.0f} s")
        self.wait = wait
        self.primary = primary


class Transient(Exception):
    """A 5xx or a dropped connection on a read: worth one more try."""


class GitHubApi:
    """One run's view of the API: counts its write calls, shares one rate-limit budget across them."""

    def __init__(self, requester: Requester, *, budget_seconds: float, max_attempts: int = 5,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep) -> None:
        self._requester = requester
        self._budget = budget_seconds
        self._max_attempts = max_attempts
        self._clock = clock
        self._sleep = sleep
        self.writes = 0
        self.reads = 0

    def get(self, path: str, *, what: str, params: dict[str, Any] | None = None, missing_ok: bool = False,
            headers: dict[str, str] | None = None) -> Any:
        """The JSON body, or None when `missing_ok` and GitHub answers 404."""
        status, data = self.call("GET", path, what=what, params=params, accept=(404,) if missing_ok else (),
                                 headers=headers)
        return None if status == 404 else data

    def call(self, verb: str, path: str, *, what: str, body: Any = None, params: dict[str, Any] | None = None,
             accept: Collection[int] = (), headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, JSON body). An error status in `accept` is returned; any other refusal raises
        UpstreamError naming `what`."""
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, RateLimited | Transient)),
            stop=stop_after_attempt(self._max_attempts) | stop_before_delay(self._budget),
            wait=_wait_asked_for,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._once, verb, path, what=what, body=body, params=params, accept=accept,
                            headers=headers)
        except RateLimited as limited:
            raise UpstreamUnavailable(
                f"GitHub's {'primary' if limited.primary else 'secondary'} rate limit stops {what}: it asks for "
                f"{limited.wait:.0f} s, more than the {self._budget:.0f} s budget", provider=PROVIDER,
                retry_after=max(1, math.ceil(limited.wait))) from None
        except Transient as failure:
            raise UpstreamUnavailable(f"GitHub is unavailable for {what}: {failure}", provider=PROVIDER) from None

    def _once(self, verb: str, path: str, *, what: str, body: Any, params: dict[str, Any] | None,
              accept: Collection[int], headers: dict[str, str] | None) -> tuple[int, Any]:
        if verb in WRITE_VERBS:
            self.writes += 1
        else:
            self.reads += 1
        try:
            status, response_headers, output = self._requester.requestJson(
                verb, path, parameters=params, headers=headers, input=body)
        except GithubException as error:  # raised by credential handling: a GitHub App's installation token
            raise _refusal(error.status, what, _message(error.data)) from None
        except requests.RequestException as error:
            if verb in WRITE_VERBS:  # a write may have landed: let the run's re-run converge instead
                raise UpstreamUnavailable(f"GitHub did not answer {what} ({type(error).__name__})",
                                          provider=PROVIDER) from None
            raise Transient(type(error).__name__) from None
        lowered = {k.lower(): v for k, v in response_headers.items()}
        data = _json(output)
        if status < 400:
            return status, data
        message = _message(data)
        if status in (403, 429) and (limited := self._rate_limit(status, lowered, message)) is not None:
            raise limited
        if status in accept:
            return status, data
        if status in TRANSIENT_STATUSES and verb not in WRITE_VERBS:
            raise Transient(f"HTTP {status}")
        raise _refusal(status, what, message)

    def _rate_limit(self, status: int, headers: dict[str, str], message: str) -> RateLimited | None:
        if "retry-after" in headers:
            return RateLimited(_seconds(headers["retry-after"]), primary=False)
        if headers.get("x-ratelimit-remaining") == "0" and "x-ratelimit-reset" in headers:
            return RateLimited(max(0.0, _seconds(headers["x-ratelimit-reset"]) - self._clock()), primary=True)
        if status == 429 or Requester.isRateLimitError(message.lower()):  # a limit that names no wait
            return RateLimited(SECONDARY_LIMIT_FALLBACK_SECONDS, primary=False)
        return None


def _wait_asked_for(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimited):
        return float(error.wait)
    backoff: float = 0.25 * 2 ** (state.attempt_number - 1)
    return min(4.0, backoff)


def _refusal(status: int, what: str, message: str) -> UpstreamError:
    reason = f": {cap(message, 300)}" if message else ""
    if status == 401:
        return UpstreamError(f"GitHub rejected Golden Path's credentials while trying to {what} (401)",
                             provider=PROVIDER)
    if status in TRANSIENT_STATUSES:
        return UpstreamUnavailable(f"GitHub failed to {what} (HTTP {status}){reason}", provider=PROVIDER)
    return UpstreamError(f"GitHub refused to {what} (HTTP {status}){reason}", provider=PROVIDER)


def _json(output: str) -> Any:
    if not output:
        return None
    try:
        return json.loads(output)
    except ValueError:
        return None


def _message(data: Any) -> str:
    if isinstance(data, dict):
        message = str(data.get("message") or "")
        details = [str(e.get("message") or e.get("code") or "") for e in data.get("errors") or []
                   if isinstance(e, dict)]
        return "; ".join(part for part in [message, *details] if part)
    return ""


def _seconds(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        return SECONDARY_LIMIT_FALLBACK_SECONDS

