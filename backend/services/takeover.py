"""Each serving replica sweeps, every few seconds, for runs whose replica stopped renewing their lease."""

from __future__ import annotations

import logging
import threading

from backend.services.runner import Runner

_log = logging.getLogger("goldenpath.takeover")


class TakeoverSweeper:
    def __init__(self, runner: Runner, *, interval: float) -> None:
        self._runner, self._interval = runner, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TakeoverSweeper:
        if self._interval > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="goldenpath-takeover", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                taken = self._runner.take_over_lapsed()
            except Exception as exc:  # the database is away: the next sweep tries again
                _log.warning("could not look for runs to take over: %s", type(exc).__name__)
                continue
            if taken:
                _log.info("took over %d run(s) whose replica stopped", taken)
