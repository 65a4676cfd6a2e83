"""Named points where a test can make this process die exactly as `kill -9` would, to prove that a crash
between two writes loses no run and no evidence. Inert unless GOLDENPATH_CRASHPOINTS names the point (a
comma-separated list, set by the operator's environment only)."""

from __future__ import annotations

import os
import signal

ENV = "GOLDENPATH_CRASHPOINTS"


def crashpoint(name: str) -> None:
    wanted = os.environ.get(ENV)
    if wanted and name in {part.strip() for part in wanted.split(",")}:
        os.kill(os.getpid(), signal.SIGKILL)
