"""Keeps Backstage's copy of the catalog feed fresh: after the inventory changes, the feed's location is
refreshed off the request path. Changes in quick succession share one refresh, and none is lost: a change
that arrives while a refresh is under way makes one more."""

from __future__ import annotations

import logging
import threading
import time

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from backend.errors import GoldenPathError, UpstreamUnavailable
from backend.providers.backstage import BackstageCatalog
from backend.services.metrics import Metrics

_log = logging.getLogger("goldenpath.catalog")


class CatalogRefresher:
    def __init__(self, catalog: BackstageCatalog, *, target: str, min_interval: float, metrics: Metrics) -> None:
        self._catalog, self._target, self._min_interval, self._metrics = catalog, target, min_interval, metrics
        self._pending = threading.Event()
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None

    def request(self) -> None:
        """Note that the inventory changed; returns at once."""
        self._pending.set()
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="goldenpath-catalog-refresh", daemon=True)
                self._worker.start()

    def _work(self) -> None:
        while True:
            self._pending.wait()
            self._pending.clear()  # before the refresh: a change made during it sets the flag for one more
            try:
                self._refresh()
            except Exception as exc:  # the worker must outlive any failure (e.g. an unreadable token file)
                self._failed(f"unexpected {type(exc).__name__}")
            time.sleep(self._min_interval)

    def _refresh(self) -> None:
        try:
            ref = _with_retries(self._catalog.refresh_location)(self._target)
        except GoldenPathError as exc:
            self._failed(exc.detail)
            return
        _log.info("asked Backstage to refresh %s", ref)
        self._metrics.catalog_refreshes.labels("ok").inc()

    def _failed(self, reason: str) -> None:
        _log.warning("catalog refresh failed: %s", reason)
        self._metrics.catalog_refreshes.labels("failed").inc()


_with_retries = retry(retry=retry_if_exception_type(UpstreamUnavailable), stop=stop_after_attempt(3),
                      wait=wait_exponential(multiplier=0.5, max=4), reraise=True)
