"""The embedded OpenBao dev server keeps its root token to its owner: not on the command line, not in the log,
and the log itself is readable by its owner only."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import requests

from backend.embedded import MASK, EmbeddedOpenBao, mask_line

BANNER_END = "Development mode should NOT be used"


def _wait_for(path: Path, text: str, timeout: float = 10.0) -> str:
    """The banner is printed just after the server turns healthy: wait for it, so the check sees it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        content = path.read_text(encoding="utf-8", errors="replace")
        if text in content:
            return content
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never reached {path}: {content[-2000:]}")


def test_the_root_token_is_neither_in_ps_nor_in_the_log(tmp_path: Path) -> None:
    log = tmp_path / "openbao.log"
    with EmbeddedOpenBao(log_path=log) as bao:
        assert bao.pid is not None
        cmdline = Path(f"/proc/{bao.pid}/cmdline").read_bytes()
        assert b"bao" in cmdline and b"-dev" in cmdline
        assert bao.token.encode() not in cmdline
        assert stat.S_IMODE(os.stat(f"/proc/{bao.pid}/environ").st_mode) & 0o077 == 0

        content = _wait_for(log, BANNER_END)
        assert bao.token not in content
        assert f"Root Token: {MASK.decode()}" in content and f"Unseal Key: {MASK.decode()}" in content
        assert stat.S_IMODE(log.stat().st_mode) == 0o600

        lookup = requests.get(f"{bao.addr}/v1/auth/token/lookup-self", headers={"X-Vault-Token": bao.token},
                              timeout=5)
        assert lookup.status_code == 200, lookup.text
        assert lookup.json()["data"]["id"] == bao.token and "root" in lookup.json()["data"]["policies"]
    assert "OpenBao shutdown triggered" in log.read_text(encoding="utf-8")  # the copy ran to the server's end


def test_an_existing_world_readable_log_is_narrowed_and_appended_to(tmp_path: Path) -> None:
    log = tmp_path / "openbao.log"
    log.write_text("an earlier run\n")
    log.chmod(0o644)
    with EmbeddedOpenBao(log_path=log) as bao:
        content = _wait_for(log, BANNER_END)
        assert stat.S_IMODE(log.stat().st_mode) == 0o600
        assert content.startswith("an earlier run\n") and bao.token not in content


def test_the_token_is_masked_wherever_a_line_repeats_it() -> None:
    secret = b"s3cr3t-token"
    assert mask_line(b"    Root Token: s3cr3t-token\n", secret) == b"    Root Token: <masked>\n"
    assert mask_line(b"Unseal Key: abc/def=\n", secret) == b"Unseal Key: <masked>\n"
    assert mask_line(b"export BAO_TOKEN=s3cr3t-token\n", secret) == b"export BAO_TOKEN=<masked>\n"
    assert mask_line(b"core: vault is unsealed\n", secret) == b"core: vault is unsealed\n"
