"""Handlers: liveness, readiness and metrics."""

from typing import Any

from flask import Response

from backend.api.context import services


def healthz() -> tuple[dict[str, Any], int]:
    return {"status": "ok"}, 200


def readyz() -> tuple[dict[str, Any], int]:
    checks = services().readiness()
    ready = all(value == "ok" for value in checks.values())
    return {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503


def metrics() -> Response:
    return Response(services().metrics.render(), status=200, mimetype="text/plain")
