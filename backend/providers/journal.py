"""Write-ahead evidence: a provider names each change right before it calls the backend to make it.

The runner binds a journal to the running attempt (a context variable, so concurrent runs in one process keep
theirs apart); the journal commits the intent before returning. If the process dies after the backend call, the
intent survives, and the attempt that takes the run over resolves it by reading the object back. Outside a run
(a test calling a provider directly, a dry-run) there is no journal and `intend` does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from backend.crashpoints import crashpoint
from backend.providers.changes import Change

_journal: ContextVar[Callable[[Change], None] | None] = ContextVar("goldenpath_journal", default=None)


def intend(change: Change) -> None:
    """Record, before the write, that `change` is about to be made. Raises if it cannot be recorded: a write
    with no evidence must not happen."""
    journal = _journal.get()
    if journal is not None and change.is_write:
        journal(change)
        crashpoint(f"after-intent:{change.kind}")


@contextmanager
def journaling(journal: Callable[[Change], None] | None) -> Iterator[None]:
    token = _journal.set(journal)
    try:
        yield
    finally:
        _journal.reset(token)
