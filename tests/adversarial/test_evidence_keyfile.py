"""The audit key file: made private, and refused (never shown, never used) when others may read or write it, when
it is no regular file, or when it does not hold exactly 32 bytes of hex."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backend.audit_keys import AuditKeyError, FileAuditKey
from tests.audit_chains import audit_store, new_event
from tests.test_cli import _cli

KEY_HEX = secrets.token_hex(32)


def _key_file(tmp_path: Path, content: str | bytes = KEY_HEX + "\n", mode: int = 0o600) -> Path:
    path = tmp_path / "audit.key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    path.chmod(mode)
    return path


def test_the_key_is_made_0600_in_a_0700_folder_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        key = FileAuditKey(tmp_path / "new" / "audit.key")
        key.load()
    finally:
        os.umask(old)
    assert (tmp_path / "new" / "audit.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "new").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o606, 0o660, 0o620, 0o666, 0o777, 0o610], ids=oct)
def test_a_key_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = _key_file(tmp_path, mode=mode)
    with pytest.raises(AuditKeyError, match="open to other users") as refused:
        FileAuditKey(path).mac(b"event")
    assert KEY_HEX not in str(refused.value)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o440], ids=oct)
def test_a_private_key_file_is_used(tmp_path: Path, mode: int) -> None:
    key = FileAuditKey(_key_file(tmp_path, mode=mode))
    assert len(key.mac(b"event")) == 64


def test_a_link_to_a_world_readable_key_is_refused(tmp_path: Path) -> None:
    target = _key_file(tmp_path, mode=0o644)
    link = tmp_path / "linked.key"
    link.symlink_to(target)
    with pytest.raises(AuditKeyError, match="open to other users"):
        FileAuditKey(link).mac(b"event")


@pytest.mark.parametrize("content", [
    secrets.token_hex(31), secrets.token_hex(33), secrets.token_hex(64), KEY_HEX + "zz", b"\xff" * 64,
    "0x" + KEY_HEX, KEY_HEX + "\n" + KEY_HEX, " " * 10_000 + KEY_HEX,
], ids=["31-bytes", "33-bytes", "64-bytes", "not-hex", "not-ascii", "0x", "twice", "padded"])
def test_a_key_of_the_wrong_size_or_form_is_refused(tmp_path: Path, content: str | bytes) -> None:
    with pytest.raises(AuditKeyError) as refused:
        FileAuditKey(_key_file(tmp_path, content)).mac(b"event")
    assert KEY_HEX not in str(refused.value)


def test_a_huge_key_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "audit.key"
    with path.open("wb") as handle:
        handle.truncate(256 * 1024 * 1024)  # sparse: costs nothing on disk, but would be read whole
    path.chmod(0o600)
    with pytest.raises(AuditKeyError):
        FileAuditKey(path).mac(b"event")


def _within(seconds: float, call: Callable[[], Any]) -> BaseException | None:
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # handed back to the test
            outcome.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"still blocked after {seconds} s"
    return outcome[0]


def test_a_fifo_or_a_folder_as_the_key_is_refused_not_a_hang(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo, 0o600)
    assert isinstance(_within(5, lambda: FileAuditKey(fifo).mac(b"x")), AuditKeyError)
    folder = tmp_path / "folder.key"
    folder.mkdir(mode=0o700)
    assert isinstance(_within(5, lambda: FileAuditKey(folder).mac(b"x")), AuditKeyError)


def test_the_service_does_not_start_with_a_world_readable_key(make_app: Callable[..., Any], tmp_path: Path) -> None:
    path = _key_file(tmp_path, mode=0o644)
    with pytest.raises(AuditKeyError, match="open to other users"):
        make_app(audit={"key_file": str(path), "witness_file": str(tmp_path / "w.jsonl")})


@pytest.mark.parametrize("command", ["verify", "checkpoint"])
def test_the_cli_says_it_cannot_check_with_a_world_readable_key(tmp_path: Path, command: str) -> None:
    """A chain made with a private key whose file someone then opened to everyone: exit 2, not a traceback."""
    path = _key_file(tmp_path)
    database, store = audit_store(f"sqlite:///{tmp_path}/cli.db", tmp_path, witness_file="witness.jsonl")
    store.append(new_event(1))
    database.dispose()
    path.chmod(0o644)
    env = {"GOLDENPATH_DATABASE_URL": f"sqlite:///{tmp_path}/cli.db", "GOLDENPATH_AUDIT__KEY_FILE": str(path),
           "GOLDENPATH_AUDIT__WITNESS_FILE": str(tmp_path / "witness.jsonl")}
    result = _cli("audit", command, env=env, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "open to other users" in result.stderr and "Traceback" not in result.stderr
    assert KEY_HEX not in result.stderr + result.stdout
