"""GitHubTransport: one HTTP exchange with GitHub's REST API, nothing done behind the caller's back.

PyGithub's requester follows a 301 by itself (dropping the query, up to Python's recursion limit) and re-asks
a 202 every 2 s without end, so a renamed repository or a misbehaving server could widen a filtered list or hold
a run for half an hour. Golden Path sends its own requests instead (requests, with redirects off) and uses
PyGithub for what it does well: credentials, a token or a GitHub App installation token refreshed before it
expires. The pacing GitHub asks integrators for (a gap between requests, a longer one between writes) is kept
here, for every run of the process.

`follow` turns a redirect's `Location` into the next path only when it stays on the API's own origin and
base path: the token is never sent anywhere else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlparse

import requests
from github import Auth

WRITE_VERBS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
API_VERSION = "2022-11-28"


class GitHubTransport:
    def __init__(self, *, api_url: str, auth: Callable[[], Auth.Auth], timeout_seconds: float,
                 seconds_between_requests: float, seconds_between_writes: float,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        parsed = urlparse(api_url.rstrip("/"))
        self._origin = f"{parsed.scheme}://{parsed.netloc}"
        self._prefix = parsed.path.rstrip("/")
        self._auth = auth
        self._timeout = timeout_seconds
        self._gaps = (seconds_between_requests, seconds_between_writes)
        self._clock, self._sleep = clock, sleep
        self._last: dict[str, float] = {}
        self._pace_lock = threading.Lock()
        self._local = threading.local()  # a requests.Session is not safe to share between threads

    def request(self, verb: str, path: str, *, params: dict[str, Any] | None, headers: dict[str, str],
                body: Any) -> tuple[int, dict[str, str], str]:
        """(status, headers lower-cased, body text) of one request to `path` under the API's base URL."""
        self._pace(verb)
        auth = self._auth()
        sent = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": API_VERSION,
                "User-Agent": "goldenpath", **headers}
        auth.authentication(sent)
        try:
            response = self._session().request(verb, self._origin + self._prefix + path, params=params,
                                               json=body, headers=sent, timeout=self._timeout,
                                               allow_redirects=False)
        finally:
            self._last[("write" if verb in WRITE_VERBS else "read")] = self._clock()
        return response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.text

    def follow(self, location: str) -> tuple[str, dict[str, str]] | None:
        """The (path, query) a redirect points to, when it stays on this API; None otherwise."""
        parsed = urlparse(location)
        if parsed.scheme and f"{parsed.scheme}://{parsed.netloc}" != self._origin:
            return None
        if not parsed.path.startswith(self._prefix + "/"):
            return None
        return parsed.path[len(self._prefix):], dict(parse_qsl(parsed.query, keep_blank_values=True))

    def _pace(self, verb: str) -> None:
        with self._pace_lock:
            gap_read, gap_write = self._gaps
            due = self._last.get("read", 0.0) + gap_read
            due = max(due, self._last.get("write", 0.0) + gap_read)
            if verb in WRITE_VERBS:
                due = max(due, self._last.get("write", 0.0) + gap_write)
            wait = due - self._clock()
            if wait > 0:
                self._sleep(wait)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session
