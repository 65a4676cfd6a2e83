"""Prometheus metrics, one registry per app (so several apps can live in one test process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
