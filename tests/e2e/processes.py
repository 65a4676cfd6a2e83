"""Child processes for the end-to-end tests, each in its own process group with its output in a log file,
and a static file server (a git host's raw files, as Backstage's URL reader would fetch them)."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from backend.embedded import die_with_parent

LOG_TAIL_BYTES = 6000


@dataclass
class Service:
    """A child process in its own process group, with its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    base_url: str

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return data[-limit:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=10)
        _signal_group(self.process, signal.SIGKILL)  # children that outlived their leader: never leave any


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def spawn(name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, base_url: str) -> Service:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call
        )
    return Service(name=name, process=process, log_path=log_path, base_url=base_url)


def wait_until(service: Service, probe: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll `probe` until it is true; fail with the service's log if it exits or times out. Returns seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} exited with status {service.process.returncode} while waiting for {what}:\n"
                        f"{service.log_tail()}")
        try:
            if probe():
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{service.name}: {what} not reached within {timeout:.0f} s:\n{service.log_tail()}")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *_args: Any) -> None:
        pass


class StaticFiles:
    """Serves a folder read-only over HTTP on loopback, in a thread."""

    def __init__(self, root: Path) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(root)))
        self.host = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"http://{self.host}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="static-files", daemon=True)

    def start(self) -> StaticFiles:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
