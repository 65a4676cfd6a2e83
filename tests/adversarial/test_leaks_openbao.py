"""The embedded OpenBao's root token, used hard (failing calls, a token that merely starts like it, a shutdown):
never on a command line of the server or of anything it starts, never in its log, and its environment is its
owner's alone."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import requests

from backend.embedded import EmbeddedOpenBao


def _cmdlines() -> bytes:
    lines = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes())
            except OSError:
                continue
    return b"\n".join(lines)


def test_the_root_token_stays_out_of_every_cmdline_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "openbao.log"
    with EmbeddedOpenBao(log_path=log) as bao:
        token = bao.token
        assert bao.pid is not None
        assert stat.S_IMODE(os.stat(f"/proc/{bao.pid}/environ").st_mode) & 0o077 == 0
        headers = {"X-Vault-Token": token}
        for method, path, body in (("GET", "/v1/secret/data/nothing/here", None), ("POST", "/v1/sys/mounts/x y", {}),
                                   ("GET", "/v1/auth/token/lookup-self", None), ("POST", "/v1/sys/policy/p",
                                                                                  {"policy": "path {"}),
                                   ("GET", "/v1/sys/raw/../../etc", None)):
            requests.request(method, bao.addr + path, headers=headers, json=body, timeout=5)
        requests.get(bao.addr + "/v1/auth/token/lookup-self", headers={"X-Vault-Token": token + "x"}, timeout=5)
        requests.get(bao.addr + "/v1/auth/token/lookup-self", headers={"X-Vault-Token": token[:-1]}, timeout=5)
        assert token.encode() not in _cmdlines()
        time.sleep(0.2)
    content = log.read_bytes()
    assert b"OpenBao shutdown triggered" in content
    assert token.encode() not in content and token[:-1].encode() not in content
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
