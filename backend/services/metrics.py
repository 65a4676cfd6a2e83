"""Prometheus metrics, one registry per app (so several apps can live in one test process)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_log = logging.getLogger("goldenpath.metrics")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "goldenpath_runs", "Action runs by action, status and dry-run flag",
            ["action", "status", "dry_run"], registry=self.registry,
        )
        self.run_seconds = Histogram(
            "goldenpath_run_duration_seconds", "Action run duration", ["action"], registry=self.registry,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.upstream_errors = Counter(
            "goldenpath_upstream_errors", "Errors from upstream systems by provider and retryability",
            ["provider", "retryable"], registry=self.registry,
        )
        self.replays = Counter(
            "goldenpath_idempotent_replays", "Runs answered from a stored result", ["action"],
            registry=self.registry,
        )

        self.catalog_refreshes = Counter(
            "goldenpath_catalog_refreshes", "Requests to Backstage to refresh the catalog feed's location, by result",
            ["result"], registry=self.registry,
        )

    def count_conformance(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        """Resources (and services, kind `service`) per conformance status, read from the database at each scrape,
        so every replica reports the last pass whichever replica ran it."""
        self.registry.register(_ConformanceCollector(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _ConformanceCollector(Collector):
    def __init__(self, counts: Callable[[], dict[tuple[str, str], int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("goldenpath_conformance_resources",
                                   "Resources (kind `service`: whole services) by kind and last conformance status",
                                   labels=["kind", "status"])
        try:
            counts = self._counts()
        except Exception as exc:  # the database is away: the scrape still answers, without these
            _log.warning("could not count conformance statuses: %s", type(exc).__name__)
            counts = {}
        for (kind, status), count in sorted(counts.items()):
            family.add_metric([kind, status], count)
        yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())
