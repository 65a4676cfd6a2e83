"""Rendering errors: problem+json everywhere, Backstage's error shape on its distributed-actions routes."""

from __future__ import annotations

import json
import logging
from typing import Any

from connexion.exceptions import ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from starlette.exceptions import HTTPException

from backend.api.reason_phrase import REASON_HEADER, reason_phrase
from backend.errors import PROBLEM_BASE, GoldenPathError

BACKSTAGE_PREFIX = "/api/goldenpath/.backstage/"
_log = logging.getLogger("goldenpath.api")
_NAMES = {400: "InputError", 401: "AuthenticationError", 403: "NotAllowedError", 404: "NotFoundError",
          409: "ConflictError", 413: "InputError", 415: "InputError", 422: "InputError", 503: "ServiceUnavailableError"}


def render(request: ConnexionRequest, problem: dict[str, Any], headers: dict[str, str]) -> ConnexionResponse:
    status = int(problem["status"])
    if request.url.path.startswith(BACKSTAGE_PREFIX):
        message = problem.get("detail") or problem["title"]
        body = {
            "error": {"name": _NAMES.get(status, "Error"), "message": message, "problem": problem},
            "request": {"method": request.method, "url": request.url.path},
            "response": {"statusCode": status},
        }
        # the scaffolder's task log shows only the status line: carry the message there too
        headers = {**headers, REASON_HEADER: reason_phrase(f"{_NAMES.get(status, 'Error')}: {message}")}
        return ConnexionResponse(status, "application/json", "application/json", body=json.dumps(body),
                                 headers=headers)
    return ConnexionResponse(status, "application/problem+json", "application/problem+json",
                             body=json.dumps(problem), headers=headers)


def handle_goldenpath_error(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    assert isinstance(exc, GoldenPathError)
    return render(request, exc.to_problem(), exc.headers())


def handle_framework_problem(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    """connexion's and starlette's own errors (404 route, 405, 415, auth): same shape, stable types."""
    status = int(getattr(exc, "status", None) or getattr(exc, "status_code", None) or 500)
    title = getattr(exc, "title", None) or "Error"
    detail = getattr(exc, "detail", None) or title
    slug = {401: "unauthenticated", 403: "forbidden", 404: "not-found", 405: "method-not-allowed",
            415: "unsupported-media-type"}.get(int(status), "invalid-request")
    problem = {"type": PROBLEM_BASE + slug, "title": str(title), "status": int(status), "detail": str(detail),
               "retryable": False}
    headers = {"WWW-Authenticate": 'Bearer realm="goldenpath"'} if int(status) == 401 else {}
    return render(request, problem, headers)


def handle_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    _log.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    problem = {"type": PROBLEM_BASE + "internal", "title": "Internal error", "status": 500,
               "detail": "an unexpected error occurred; it has been logged", "retryable": True}
    return render(request, problem, {})


HANDLERS: list[tuple[type[Exception], Any]] = [
    (GoldenPathError, handle_goldenpath_error),
    (ProblemException, handle_framework_problem),
    (HTTPException, handle_framework_problem),
    (Exception, handle_unexpected),
]
