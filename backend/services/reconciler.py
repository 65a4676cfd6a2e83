"""The reconciler: a pass checks every service's conformance (backend.services.conformance) and repairs what
`reconcile.repair` lists (backend.services.repair).

Every serving replica runs a loop that wakes each interval (plus jitter) and offers to run a pass; a database lock
lets one replica at a time run it, and the others skip that round. `goldenpath reconcile` runs one pass now.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from backend.services.conformance import ConformanceChecker
from backend.services.repair import Repair, Repairer
from backend.store.locks import Locks, LockTimeout

_log = logging.getLogger("goldenpath.reconciler")
RECONCILE_LOCK = "reconcile-pass"


@dataclass
class PassSummary:
    ran: bool  # False: another replica holds the pass
    services: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    failed: list[str] = field(default_factory=list)  # services whose check could not be stored
    repairs: list[Repair] = field(default_factory=list)


class Reconciler:
    def __init__(self, checker: ConformanceChecker, locks: Locks, *, interval: float, jitter: float,
                 repairer: Repairer | None = None,
                 batched_reads: Callable[[], AbstractContextManager[None]] = nullcontext) -> None:
        self._checker, self._locks, self._repairer = checker, locks, repairer
        self._batched_reads = batched_reads
        self._interval, self._jitter = interval, jitter
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_pass(self, services: Iterable[str] | None = None) -> PassSummary:
        try:
            with self._locks.hold(RECONCILE_LOCK, timeout=0):
                return self._pass(services)
        except LockTimeout:
            return PassSummary(ran=False)

    def _pass(self, services: Iterable[str] | None) -> PassSummary:
        started, summary = time.perf_counter(), PassSummary(ran=True)
        with self._batched_reads():
            self._check_each(sorted(services) if services is not None else self._checker.services(), summary)
        summary.seconds = time.perf_counter() - started
        _log.info("reconcile pass: %d services in %.1f s (%s); %d repair runs", summary.services, summary.seconds,
                  ", ".join(f"{count} {status}" for status, count in sorted(summary.statuses.items())) or "none",
                  sum(1 for r in summary.repairs if r.run_id))
        return summary

    def _check_each(self, names: list[str], summary: PassSummary) -> None:
        for name in names:
            try:
                report = self._check_and_repair(name, summary)
            except Exception as exc:  # the database went away mid-pass: the next pass tries again
                _log.warning("conformance of %s not stored: %s", name, type(exc).__name__)
                summary.failed.append(name)
                continue
            summary.services += 1
            summary.statuses[report["status"]] += 1

    def _check_and_repair(self, name: str, summary: PassSummary) -> dict[str, Any]:
        inspection = self._checker.inspect(name)
        if self._repairer is None:
            return inspection.report
        repairs = self._repairer.repair(name, inspection)
        summary.repairs.extend(repairs)
        if any(r.run_id for r in repairs):  # what the repair left, stored (and audited) now
            return self._checker.inspect(name).report
        return inspection.report

    def start(self) -> Reconciler:
        if self._interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="goldenpath-reconciler", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval + random.uniform(0, self._jitter)):  # noqa: S311 (not a secret)
            try:
                self.run_pass()
            except Exception as exc:  # the database is away: the next round tries again
                _log.warning("reconcile pass not run: %s", type(exc).__name__)
