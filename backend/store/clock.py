"""Timestamps as fixed-width ISO 8601 UTC strings: sortable, and hashed identically on every database."""

from datetime import UTC, datetime

FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> str:
    return datetime.now(UTC).strftime(FORMAT)
