"""The audit key: a secret kept outside the database that MACs every audit event and witness checkpoint,
so whoever can edit the database still cannot recompute the chain. A port, with a local-file adapter here
and a Vault/OpenBao transit adapter in `backend.providers.audit_transit`."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import stat
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path

KEY_BYTES = 32
# whoever may read the key can recompute the chain; whoever may write it can swap it: only its owner (and at
# most read by its group, as a Kubernetes secret mounted with a group id is)
_OTHERS_MAY = stat.S_IWGRP | stat.S_IXGRP | stat.S_IRWXO
_MAX_KEY_FILE_BYTES = 4 * KEY_BYTES  # the hex, a newline and some spaces; anything longer is not a key


class AuditKeyError(Exception):
    """The audit key cannot be loaded (a malformed key file); the message names the file, never the key."""


class AuditKey(ABC):
    """HMAC-SHA256 under one key, named by `key_id` (stored beside every MAC, so verification knows the key)."""

    @property
    @abstractmethod
    def key_id(self) -> str:
        """Names the key (and its version); never reveals it."""

    @abstractmethod
    def mac(self, data: bytes) -> str:
        """The HMAC-SHA256 of `data` under `key_id`, as 64 hex digits."""

    def knows(self, key_id: str) -> bool:
        """Whether MACs made under `key_id` can be checked with this key (a key may know its earlier versions)."""
        return key_id == self.key_id

    def check(self, key_id: str, data: bytes, mac: str) -> bool:
        """Whether `mac` is the MAC of `data` under `key_id`."""
        return self.knows(key_id) and hmac.compare_digest(self.mac(data).encode(), mac.encode())


class FileAuditKey(AuditKey):
    """32 random bytes (hex) in a file of mode 0600, made on first use. Mount the same file into every replica;
    keep it away from database backups and from anyone who administers the database."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._key: bytes | None = None  # read (or made) on first use: commands that audit nothing touch no file

    @property
    def key_id(self) -> str:
        return "file:" + hmac.new(self._secret(), b"goldenpath audit key id", hashlib.sha256).hexdigest()[:16]

    def mac(self, data: bytes) -> str:
        return hmac.new(self._secret(), data, hashlib.sha256).hexdigest()

    def load(self) -> None:
        """Read (or make) the key now: AuditKeyError for a damaged key file or one open to other users."""
        self._secret()

    def _secret(self) -> bytes:
        if self._key is None:
            self._key = _load_or_create(self._path)
        return self._key


def _load_or_create(path: Path) -> bytes:
    if not path.exists():
        _create(path)
    try:
        found = path.stat()
        if not stat.S_ISREG(found.st_mode):  # a FIFO would block every reader; a directory is no key
            raise AuditKeyError(f"the audit key file {path} is not a regular file")
        if found.st_mode & _OTHERS_MAY:
            raise AuditKeyError(f"the audit key file {path} is open to other users (mode "
                                f"{stat.S_IMODE(found.st_mode):04o}): make it 0600 (0640 or 0440 for a group that "
                                "runs the service), and make a new key if anyone else may have read it")
        with path.open("rb") as handle:
            text = handle.read(_MAX_KEY_FILE_BYTES).decode("ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditKeyError(f"the audit key file {path} cannot be read ({type(exc).__name__})") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise AuditKeyError(f"the audit key file {path} does not hold {KEY_BYTES} bytes as hex")
    return key


def _create(path: Path) -> None:
    """Write the key to a private temporary file, then link it into place: the link fails if another process
    made the key first (like O_CREAT|O_EXCL), and no reader ever sees a half-written key."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".audit-key-")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(secrets.token_hex(KEY_BYTES) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # another process made the key first: use theirs
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
