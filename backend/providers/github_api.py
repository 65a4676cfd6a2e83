"""GitHubApi: REST calls by their documented paths, through GitHubTransport, within GitHub's limits.

Calls name the documented path (`/repos/{owner}/{repo}/...`) rather than following `url` fields, so every
request is one GitHub's OpenAPI description lists.

- **Rate limits**, as GitHub's guidance orders them: a 403/429 carrying `retry-after` waits that long;
  `x-ratelimit-remaining: 0` waits until `x-ratelimit-reset`; a secondary limit that names no wait waits a
  minute, then twice as long each time. A limit pauses every run of the process (`RateGate`), not just the
  one that met it. Waits are taken while the run's total fits its budget; beyond it the call fails as
  UpstreamUnavailable (503, retryable) whose Retry-After is the wait GitHub asked for.
- **Conditional reads**: a GET whose answer is cached is sent with `If-None-Match`; GitHub answers 304,
  which does not count against the rate limit, when nothing changed (`ConditionalCache`).
- **Pagination**: `get_all` follows the `Link` header's `rel="next"`, taking only its query: the token is
  never sent to an address GitHub's answer names.
- **Redirects**: GitHub answers 301 (reads) or 307 (writes) for a renamed or transferred repository. A read
  follows at most 3 redirects that stay on the API (its filters kept); the provider notices a rename by the
  repository's `full_name`. A redirected write is a named, retryable problem: a re-run reads the repository
  afresh. A 202 (GitHub still computing an answer) is retried like a 5xx, within the run's limits.

Nothing from a request's headers reaches an error or a log line, and GitHub's own `message` is the only
part of a response body that does.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlparse

import requests
from github import GithubException
from github.Requester import Requester
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base

from backend.errors import UpstreamError, UpstreamUnavailable, cap
from backend.providers.github_http import GitHubTransport

PROVIDER = "github"
WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SECONDARY_LIMIT_FIRST_WAIT = 60.0  # GitHub: "wait for at least one minute", then exponentially longer
LONGEST_WAIT = 3600.0  # GitHub's primary limit resets hourly: a longer wait is not GitHub's to ask
MAX_PAGES = 100
MAX_REDIRECTS = 3
REPOSITORY_IN_PATH = re.compile(r"/repos/([A-Za-z0-9-]{1,39})/([A-Za-z0-9._-]{1,100})(?:/|$)")
NEXT_LINK = re.compile(r'<([^>]*)>\s*;\s*rel="next"')
HINTS = {
    403: "Golden Path's token or GitHub App lacks the permission for this, or an organization policy forbids it",
    404: "it does not exist, or Golden Path's token or GitHub App cannot see it",
    409: "GitHub's state conflicts with the request; a re-run reads it afresh",
    422: "GitHub did not accept the values asked for",
}


class RateLimited(Exception):
    """GitHub asked us to wait `wait` seconds before the next request."""

    def __init__(self, wait: float, kind: str) -> None:
        super().__init__(f"rate limited for {wait:.0f} s")
        self.wait = wait
        self.kind = kind  # "primary", "secondary" or "paused" (another run of this process met a limit)


class Transient(Exception):
    """A 5xx or a dropped connection on a read: worth one more try."""


class RateGate:
    """Until when every request of this process holds back: GitHub asks clients to stop while limited."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._until = 0.0
        self._lock = threading.Lock()

    def remaining(self) -> float:
        return max(0.0, self._until - self._clock())

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, self._clock() + seconds)


@dataclass(frozen=True)
class _Cached:
    etag: str
    data: Any
    next_link: str | None


class ConditionalCache:
    """The last answer to each GET (by path, query and Accept) with its ETag, least recently used first out."""

    def __init__(self, max_entries: int = 4096, max_body_bytes: int = 256 * 1024,
                 max_total_bytes: int = 32 * 1024 * 1024) -> None:
        self._entries: OrderedDict[str, tuple[_Cached, int]] = OrderedDict()
        self._max_entries = max_entries
        self._max_body_bytes = max_body_bytes
        self._max_total_bytes = max_total_bytes
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> _Cached | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            self._entries.move_to_end(key)
            return found[0]

    def put(self, key: str, entry: _Cached, size: int) -> None:
        with self._lock:
            if (old := self._entries.pop(key, None)) is not None:
                self._total -= old[1]
            if size > self._max_body_bytes:
                return
            self._entries[key] = (entry, size)
            self._total += size
            while len(self._entries) > self._max_entries or self._total > self._max_total_bytes:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._total -= dropped

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class _Answer:
    status: int
    data: Any
    next_link: str | None = None


class GitHubApi:
    """One run's view of the API: counts its calls, shares one rate-limit budget across them."""

    def __init__(self, transport: GitHubTransport, *, budget_seconds: float, max_attempts: int = 6,
                 cache: ConditionalCache | None = None, gate: RateGate | None = None,
                 clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
                 secrets: tuple[str, ...] = ()) -> None:
        self._transport = transport
        self._secrets = secrets
        self._budget = budget_seconds
        self._max_attempts = max_attempts
        self._cache = cache
        self._gate = gate or RateGate(clock)
        self._clock = clock
        self._sleep = sleep
        self._waited = 0.0
        self._secondary_waits = 0
        self.writes = 0
        self.reads = 0
        self.not_modified = 0

    def get(self, path: str, *, what: str, params: dict[str, Any] | None = None, missing_ok: bool = False,
            headers: dict[str, str] | None = None) -> Any:
        """The JSON body, or None when `missing_ok` and GitHub answers 404."""
        answer = self._request("GET", path, what=what, params=params, accept=(404,) if missing_ok else (),
                               headers=headers)
        return None if answer.status == 404 else answer.data

    def get_all(self, path: str, *, what: str, params: dict[str, Any] | None = None,
                absent: Collection[int] = ()) -> list[Any] | None:
        """Every item of a paginated list, page after page as GitHub's `Link` header leads; None when GitHub
        answers a status in `absent`."""
        query: dict[str, Any] = {"per_page": 100, **(params or {})}
        items: list[Any] = []
        for _ in range(MAX_PAGES):
            answer = self._request("GET", path, what=what, params=query, accept=absent)
            if answer.status in absent:
                return None
            if not isinstance(answer.data, list):
                raise UpstreamError(f"GitHub answered {what} with something other than a list", provider=PROVIDER,
                                    retryable=True)
            items.extend(answer.data)
            if answer.next_link is None:
                return items
            # the link's page or cursor, with the filters asked for kept (a next page cannot widen the list)
            query = {**_query_of_next(answer.next_link, path, what), **{k: v for k, v in query.items()
                                                                        if k not in {"page", "after", "before"}}}
        raise UpstreamError(f"GitHub's answer to {what} runs past {MAX_PAGES} pages", provider=PROVIDER)

    def call(self, verb: str, path: str, *, what: str, body: Any = None, params: dict[str, Any] | None = None,
             accept: Collection[int] = (), headers: dict[str, str] | None = None) -> tuple[int, Any]:
        """(status, JSON body). An error status in `accept` is returned; any other refusal raises
        UpstreamError naming `what`."""
        answer = self._request(verb, path, what=what, body=body, params=params, accept=accept, headers=headers)
        return answer.status, answer.data

    def _request(self, verb: str, path: str, *, what: str, body: Any = None, params: dict[str, Any] | None = None,
                 accept: Collection[int] = (), headers: dict[str, str] | None = None) -> _Answer:
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, RateLimited | Transient)),
            stop=stop_after_attempt(self._max_attempts) | stop_when(self._beyond_budget),
            wait=_wait_asked_for,
            sleep=self._wait,
            reraise=True,
        )
        try:
            return retrying(self._once, verb, path, what=what, body=body, params=params, accept=accept,
                            headers=headers)
        except RateLimited as limited:
            kind = {"paused": "secondary"}.get(limited.kind, limited.kind)
            raise UpstreamUnavailable(
                f"GitHub's {kind} rate limit stops {what}: it asks for {limited.wait:.0f} s more, beyond the "
                f"{self._budget:.0f} s budget (github.rate_limit_budget_seconds); retry after that",
                provider=PROVIDER, retry_after=max(1, math.ceil(limited.wait))) from None
        except Transient as failure:
            raise UpstreamUnavailable(f"GitHub is unavailable for {what}: {failure}", provider=PROVIDER) from None

    def _beyond_budget(self, state: RetryCallState) -> bool:
        return self._waited + state.upcoming_sleep > self._budget

    def _wait(self, seconds: float) -> None:
        self._waited += seconds
        self._sleep(seconds)

    def _once(self, verb: str, path: str, *, what: str, body: Any, params: dict[str, Any] | None,
              accept: Collection[int], headers: dict[str, str] | None) -> _Answer:
        if (paused := self._gate.remaining()) > 0:
            raise RateLimited(paused, "paused")
        key = _cache_key(path, params, headers) if verb == "GET" and self._cache is not None else None
        cached = self._cache.get(key) if key is not None and self._cache is not None else None
        sent_headers = dict(headers or {})
        if cached is not None:
            sent_headers["If-None-Match"] = cached.etag
        status, lowered, output = self._send(verb, path, what=what, body=body, params=params, headers=sent_headers)
        for _ in range(MAX_REDIRECTS):  # a read follows a renamed repository, on this API only, filters kept
            target = self._transport.follow(lowered.get("location", "")) if verb == "GET" else None
            if status not in REDIRECT_STATUSES or target is None:
                break
            status, lowered, output = self._send(verb, target[0], what=what, body=body,
                                                 params={**target[1], **(params or {})}, headers=sent_headers)
        if status == 304:
            if cached is None:  # nothing was asked conditionally: a 304 says nothing about what is there
                raise UpstreamError(f"GitHub answered {what} with 304 Not Modified to a plain request; re-run",
                                    provider=PROVIDER, retryable=True)
            self.not_modified += 1
            return _Answer(200, cached.data, cached.next_link)
        data = _json(output)
        if status in REDIRECT_STATUSES:
            raise _moved(status, lowered.get("location", ""), what)
        if status < 400:
            next_link = _next_link(lowered.get("link", ""))
            if key is not None and self._cache is not None and status == 200 and lowered.get("etag"):
                self._cache.put(key, _Cached(lowered["etag"], data, next_link), len(output or ""))
            return _Answer(status, data, next_link)
        message = _masked(_message(data), self._secrets)
        if status in (403, 429) and (limited := self._rate_limit(status, lowered, message)) is not None:
            self._gate.pause(limited.wait)
            raise limited
        if status in accept:
            return _Answer(status, data)
        if status in TRANSIENT_STATUSES and verb not in WRITE_VERBS:
            raise Transient(f"HTTP {status}")
        raise _refusal(status, what, message)

    def _send(self, verb: str, path: str, *, what: str, body: Any, params: dict[str, Any] | None,
              headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
        """(status, headers lower-cased, body text): one request, its failures named."""
        if verb in WRITE_VERBS:
            self.writes += 1
        else:
            self.reads += 1
        try:
            status, response_headers, output = self._transport.request(verb, path, params=params, headers=headers,
                                                                       body=body)
        except GithubException as error:  # raised by credential handling: a GitHub App's installation token
            raise _refusal(error.status, what, _masked(_message(error.data), self._secrets)) from None
        except requests.RequestException as error:
            if verb in WRITE_VERBS:  # a write may have landed: let the run's re-run converge instead
                raise UpstreamUnavailable(f"GitHub did not answer {what} ({type(error).__name__})",
                                          provider=PROVIDER) from None
            raise Transient(type(error).__name__) from None
        if status == 202 and verb == "GET":  # GitHub is still computing the answer: ask again, within limits
            raise Transient("HTTP 202, still computing")
        return status, response_headers, output

    def _rate_limit(self, status: int, headers: dict[str, str], message: str) -> RateLimited | None:
        if (after := _seconds(headers.get("retry-after"))) is not None:
            return RateLimited(min(after, LONGEST_WAIT), "secondary")
        reset = _seconds(headers.get("x-ratelimit-reset"))
        if headers.get("x-ratelimit-remaining") == "0" and reset is not None:
            return RateLimited(min(max(1.0, reset - self._clock()), LONGEST_WAIT), "primary")
        if status == 429 or Requester.isRateLimitError(message.lower()):  # a limit that names no wait
            self._secondary_waits += 1
            return RateLimited(SECONDARY_LIMIT_FIRST_WAIT * 2 ** (self._secondary_waits - 1), "secondary")
        return None


class stop_when(stop_base):  # noqa: N801 (tenacity's naming)
    """Stop when `decide` says so: tenacity combines stops with `|` only as its own classes."""

    def __init__(self, decide: Callable[[RetryCallState], bool]) -> None:
        self._decide = decide

    def __call__(self, retry_state: RetryCallState) -> bool:
        return self._decide(retry_state)


def _wait_asked_for(state: RetryCallState) -> float:
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, RateLimited):
        return float(error.wait)
    backoff: float = 0.25 * 2 ** (state.attempt_number - 1)
    return min(4.0, backoff)


def _cache_key(path: str, params: dict[str, Any] | None, headers: dict[str, str] | None) -> str:
    query = sorted((str(k), str(v)) for k, v in (params or {}).items())
    accept = (headers or {}).get("Accept", "")
    return json.dumps([path, query, accept])


def _next_link(link: str) -> str | None:
    found = NEXT_LINK.search(link)
    return found.group(1) if found else None


def _query_of_next(link: str, path: str, what: str) -> dict[str, Any]:
    """The next page's query. Only a link to the same operation is followed, and only its query is used."""
    parsed = urlparse(link)
    if not parsed.path.endswith(path):
        raise UpstreamError(f"GitHub's next page of {what} points elsewhere (a repository renamed meanwhile?); "
                            "Golden Path does not follow it: re-run", provider=PROVIDER, retryable=True)
    return dict(parse_qsl(parsed.query))


def _moved(status: int, location: str, what: str) -> UpstreamError:
    found = REPOSITORY_IN_PATH.search(urlparse(location).path)
    where = f" to {found.group(1)}/{found.group(2)}" if found else ""
    return UpstreamError(f"GitHub redirected {what} (HTTP {status}): the repository was renamed or transferred"
                         f"{where}. Re-run: Golden Path follows a rename of a repository it manages",
                         provider=PROVIDER, retryable=True)


def _refusal(status: int, what: str, message: str) -> UpstreamError:
    reason = f": {cap(message, 300)}" if message else ""
    if status == 401:
        return UpstreamError(f"GitHub rejected Golden Path's credentials while trying to {what} (401): check "
                             "github.token or the GitHub App's key", provider=PROVIDER)
    if status in TRANSIENT_STATUSES:
        return UpstreamUnavailable(f"GitHub failed to {what} (HTTP {status}){reason}", provider=PROVIDER)
    hint = f" ({HINTS[status]})" if status in HINTS else ""
    return UpstreamError(f"GitHub refused to {what} (HTTP {status}){reason}{hint}", provider=PROVIDER,
                         retryable=status == 409)


def field_of(data: Any, key: str, what: str) -> Any:
    """`data[key]`, or a named problem when GitHub's answer lacks it (never a bare KeyError)."""
    if isinstance(data, dict) and data.get(key) is not None:
        return data[key]
    raise UpstreamError(f"GitHub's answer to {what} has no {key}; re-run, and check what GitHub reports for it",
                        provider=PROVIDER, retryable=True)


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
        listed = data.get("errors")
        errors: list[Any] = listed if isinstance(listed, list) else []
        details = [str(e.get("message") or e.get("code") or "") for e in errors if isinstance(e, dict)]
        return "; ".join(part for part in [message, *details] if part)
    return ""


def _masked(message: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        message = message.replace(secret, "***")
    return message


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None
