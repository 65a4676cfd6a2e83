"""Conditional requests: GitHub tags each 200 answer to a GET with a weak ETag, answers a request that names
the current one with 304 and no body, and does not count that 304 against the rate limit."""

from __future__ import annotations

import hashlib


def etag(body: bytes, accept: str) -> str:
    return 'W/"' + hashlib.sha256(body + b"\n" + accept.encode()).hexdigest() + '"'


def matches(if_none_match: str, current: str) -> bool:
    """Whether an If-None-Match header names `current` (weak comparison, as for GET)."""
    def opaque(tag: str) -> str:
        return tag.strip().removeprefix("W/")

    return any(tag.strip() == "*" or opaque(tag) == opaque(current) for tag in if_none_match.split(","))
