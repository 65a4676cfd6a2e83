"""People in the end-to-end Backstage: user tokens from the guest auth provider, for the users of backstage/org.yaml.

The guest provider signs in whoever `auth.providers.guest.userEntityRef` names, one person per configuration.
Backstage watches its configuration files and the guest provider reads that key on every sign-in, so naming
another user in a small config file of its own switches the person in well under a second, without the
restart (and the lost in-memory database) another Backstage process would cost. Tokens issued before a switch
stay valid: the signing keys do not change.
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
import requests
import yaml

ALICE = "user:default/alice"  # team-payments
MALLORY = "user:default/mallory"  # team-ledger, not team-payments
PAT = "user:default/pat"  # platform: Golden Path's admin group
SWITCH_TIMEOUT = 20.0


def write_guest_config(path: Path, user: str) -> None:
    """One write() of a few bytes: Backstage's watcher never reads half a file (a parse error would end it)."""
    path.write_text(yaml.safe_dump({"auth": {"providers": {"guest": {"userEntityRef": user}}}}), encoding="utf-8")


class Guests:
    """User tokens, one per person, from `POST {backstage}/api/auth/guest/refresh`."""

    def __init__(self, *, base_url: str, config: Path) -> None:
        self._base_url, self._config = base_url, config
        self._tokens: dict[str, str] = {}
        self.switches: list[float] = []  # seconds each switch of person took

    def token(self, user: str) -> str:
        if user not in self._tokens:
            self._tokens[user] = self._sign_in(user)
        return self._tokens[user]

    def sign_in_now(self) -> tuple[str, str]:
        """(the person the guest provider signs in now, their token)."""
        answer = requests.post(f"{self._base_url}/api/auth/guest/refresh", timeout=10,
                               headers={"X-Requested-With": "XMLHttpRequest"})
        assert answer.status_code == 200, answer.text[:500]
        token = str(answer.json()["backstageIdentity"]["token"])
        return str(jwt.decode(token, options={"verify_signature": False})["sub"]), token

    def _sign_in(self, user: str) -> str:
        started = time.monotonic()
        write_guest_config(self._config, user)
        while True:
            subject, token = self.sign_in_now()
            if subject == user:
                self.switches.append(time.monotonic() - started)
                return token
            if time.monotonic() - started > SWITCH_TIMEOUT:
                pytest.fail(f"the guest provider still signs in {subject}, not {user}, {SWITCH_TIMEOUT:.0f} s after "
                            f"{self._config} named {user}")
            time.sleep(0.1)
