"""The local audit key file: made once, private, stable, and refused when damaged."""

from __future__ import annotations

import hashlib
import hmac
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from backend.audit_keys import AuditKeyError, FileAuditKey


def test_the_key_file_is_created_0600_with_32_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "var" / "audit.key"
    key = FileAuditKey(path)
    assert not path.exists()  # made on first use only
    assert key.key_id.startswith("file:")
    assert path.stat().st_mode & 0o777 == 0o600
    raw = bytes.fromhex(path.read_text().strip())
    assert len(raw) == 32
    assert key.mac(b"event") == hmac.new(raw, b"event", hashlib.sha256).hexdigest()
    assert key.key_id.startswith("file:") and path.read_text().strip() not in key.key_id
    assert [p.name for p in path.parent.iterdir()] == ["audit.key"]  # no temporary file left behind


def test_the_same_file_gives_the_same_key_and_another_file_another(tmp_path: Path) -> None:
    first, again = FileAuditKey(tmp_path / "audit.key"), FileAuditKey(tmp_path / "audit.key")
    other = FileAuditKey(tmp_path / "other.key")
    assert (again.key_id, again.mac(b"x")) == (first.key_id, first.mac(b"x"))
    assert other.key_id != first.key_id and other.mac(b"x") != first.mac(b"x")
    assert first.check(first.key_id, b"x", first.mac(b"x"))
    assert not first.check(first.key_id, b"y", first.mac(b"x"))
    assert not first.check(other.key_id, b"x", other.mac(b"x"))


def test_processes_starting_together_share_one_key(tmp_path: Path) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = list(pool.map(lambda _: FileAuditKey(tmp_path / "audit.key").key_id, range(16)))
    assert len(set(keys)) == 1


@pytest.mark.parametrize("content", ["", "not hex", "ab" * 16])
def test_a_damaged_key_file_is_refused_without_showing_it(tmp_path: Path, content: str) -> None:
    path = tmp_path / "audit.key"
    path.write_text(content)
    path.chmod(0o600)  # private, so what is refused is the content (a key open to others is refused first)
    with pytest.raises(AuditKeyError, match="does not hold 32 bytes") as caught:
        FileAuditKey(path).mac(b"event")
    assert content not in str(caught.value) or not content
