"""npm packages (the local Backstage, the GitHub OpenAPI description), installed by `npm ci` from a committed lock
file into a cache outside the clone.

CI runs each time in a fresh clone, and a repeated `npm ci` would buy nothing: an install is kept under
~/.cache/goldenpath-e2e (or GOLDENPATH_E2E_CACHE), keyed by the lock file and the Node.js version.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

CACHE_ROOT = Path(os.environ.get("GOLDENPATH_E2E_CACHE") or Path.home() / ".cache" / "goldenpath-e2e")
STAMP_NAME = ".goldenpath-e2e-stamp"
NPM_INSTALL_TIMEOUT = 900.0
LOG_TAIL_BYTES = 6000


class NpmUnavailable(RuntimeError):
    """node or npm is not on PATH."""


class NpmInstallFailed(RuntimeError):
    """`npm ci` failed; the message carries the end of its log."""


def installed(source: Path, *, prefix: str, extra_files: Iterable[str] = ()) -> tuple[Path, str]:
    """A directory holding `source`'s package.json, lock file and node_modules; and how it got there."""
    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        raise NpmUnavailable("Node.js and npm are needed on PATH (`node`/`npm` not found)")
    fingerprint = _fingerprint(source)
    target = CACHE_ROOT / f"{prefix}-{fingerprint[:16]}"
    if (target / STAMP_NAME).exists():
        return target, f"reused {target}"
    started = time.monotonic()
    _npm_ci(npm, source, target, fingerprint, ("package.json", "package-lock.json", *extra_files))
    return target, f"`npm ci` took {time.monotonic() - started:.1f} s into {target}"


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def _fingerprint(source: Path) -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update(name.encode() + b"\0" + (source / name).read_bytes())
    digest.update(subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.encode())
    return digest.hexdigest()


def _npm_ci(npm: str, source: Path, target: Path, fingerprint: str, files: Iterable[str]) -> None:
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=CACHE_ROOT))
    for name in files:
        shutil.copy2(source / name, staging / name)
    log_path = staging / "npm-install.log"
    with open(log_path, "wb") as log:
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=warn"], cwd=staging, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=NPM_INSTALL_TIMEOUT,
                                check=False)
    if result.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_BYTES:]
        shutil.rmtree(staging, ignore_errors=True)
        raise NpmInstallFailed(f"`npm ci` in {source.name} failed with status {result.returncode}:\n{tail}")
    (staging / STAMP_NAME).write_text(fingerprint + "\n", encoding="utf-8")
    try:
        staging.rename(target)
    except OSError:  # another run installed it first
        shutil.rmtree(staging, ignore_errors=True)
