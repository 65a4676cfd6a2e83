"""Structured JSON logs on stderr; every line passes through the app's Redactor first."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from backend.redaction import Redactor

_HANDLER_NAME = "goldenpath"


def configure_logging(level: str, redactor: Redactor) -> None:
    def redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Mapping[str, Any]:
        redacted: dict[str, Any] = redactor.data(dict(event))
        return redacted

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            redact,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if h.get_name() != _HANDLER_NAME] + [handler]
    root.setLevel(level)
    # PyGithub's DEBUG lines carry response bodies, and those hold minted GitHub App installation tokens
    # that no redactor knows in advance: these loggers never go below WARNING
    for noisy in ("urllib3", "hvac", "github"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
