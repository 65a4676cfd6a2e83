"""Run leases: while a replica runs a run, it renews the run's lease; a run whose lease lapsed (its replica died,
or stalled past it) may be taken over by any replica, as its next attempt."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from backend.store.runs import Lease, RunStore

_log = logging.getLogger("goldenpath.leases")


def replica_id() -> str:
    """Names this process in the runs it holds (host and pid, for people; a random part, for uniqueness)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class LeaseKeeper:
    """Renews, every third of the lease, the lease of each run this process is running."""

    def __init__(self, runs: RunStore, *, seconds: float) -> None:
        self._runs, self.seconds = runs, seconds
        self._held: dict[str, Lease] = {}
        self._lost: set[str] = set()
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._holder = ""

    @property
    def holder(self) -> str:
        if self._pid != os.getpid():  # a forked worker is another replica
            self._pid, self._holder, self._thread = os.getpid(), replica_id(), None
        return self._holder

    @contextmanager
    def holding(self, lease: Lease) -> Iterator[None]:
        with self._guard:
            self._held[lease.run_id] = lease
            self._lost.discard(lease.run_id)
            self._start()
        try:
            yield
        finally:
            with self._guard:
                self._held.pop(lease.run_id, None)
                self._lost.discard(lease.run_id)

    def lost(self, run_id: str) -> bool:
        with self._guard:
            return run_id in self._lost

    def renew_now(self) -> None:
        with self._guard:
            leases = list(self._held.values())
        if not leases:
            return
        lost = self._runs.renew(leases, seconds=self.seconds)
        if lost:
            _log.warning("lost the lease of %d run(s): another replica took them over", len(lost),
                         extra={"runs": sorted(lost)})
            with self._guard:
                self._lost |= lost

    def _start(self) -> None:
        self.holder  # noqa: B018 - resets the thread after a fork
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="goldenpath-leases", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            time.sleep(self.seconds / 3)
            try:
                self.renew_now()
            except Exception as exc:  # the database is away: the next tick tries again, the lease may lapse
                _log.warning("could not renew run leases: %s", type(exc).__name__)
