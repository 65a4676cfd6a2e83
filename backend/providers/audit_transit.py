"""TransitAuditKey: the AuditKey port over Vault/OpenBao transit `hmac`, so the key never leaves Vault.

The key id names the transit key and the version MACs are made with (`transit:<mount>/<key>:v<n>`), resolved on
first use; events made under earlier versions are checked with transit's `verify` after a rotation.
"""

from __future__ import annotations

import base64
import re

import hvac
import hvac.exceptions

from backend.audit_keys import AuditKey
from backend.errors import UpstreamError
from backend.providers.vault import PROVIDER, _vault_call  # one translation of hvac errors for all of Vault

_HMAC = re.compile(r"vault:v([1-9][0-9]*):([A-Za-z0-9+/=]+)")
_VERSION = re.compile(r"[1-9][0-9]*")


class TransitAuditKey(AuditKey):
    def __init__(self, *, addr: str, token: str, mount: str, key: str, timeout: float = 10.0) -> None:
        self._client = hvac.Client(url=addr, token=token, timeout=timeout)
        self._mount, self._key = mount, key
        self._prefix = f"transit:{mount}/{key}:v"
        self._version: int | None = None

    @property
    def key_id(self) -> str:
        if self._version is None:
            with _vault_call(f"read transit key {self._mount}/{self._key}"):
                data = self._client.secrets.transit.read_key(self._key, mount_point=self._mount)["data"]
            self._version = int(data["latest_version"])
        return f"{self._prefix}{self._version}"

    def mac(self, data: bytes) -> str:
        version = int(self.key_id.removeprefix(self._prefix))
        with _vault_call(f"compute an HMAC with transit key {self._mount}/{self._key}"):
            response = self._client.secrets.transit.generate_hmac(
                self._key, _b64(data), key_version=version, algorithm="sha2-256", mount_point=self._mount)
        match = _HMAC.fullmatch(str(response["data"]["hmac"]))
        if match is None or int(match.group(1)) != version:
            raise UpstreamError(f"transit key {self._mount}/{self._key} answered an unexpected HMAC",
                                provider=PROVIDER)
        return base64.b64decode(match.group(2)).hex()

    def knows(self, key_id: str) -> bool:
        return key_id.startswith(self._prefix) and _VERSION.fullmatch(key_id.removeprefix(self._prefix)) is not None

    def check(self, key_id: str, data: bytes, mac: str) -> bool:
        if not self.knows(key_id):
            return False
        try:
            digest = bytes.fromhex(mac)
        except ValueError:
            return False
        version = key_id.removeprefix(self._prefix)
        try:
            with _vault_call(f"verify an HMAC with transit key {self._mount}/{self._key}"):
                response = self._client.secrets.transit.verify_signed_data(
                    self._key, _b64(data), hmac=f"vault:v{version}:{_b64(digest)}", mount_point=self._mount)
        except UpstreamError as exc:
            if isinstance(exc.__cause__, hvac.exceptions.InvalidRequest):
                return False  # e.g. a version the key does not have: that MAC was not made by this key
            raise
        return response["data"]["valid"] is True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
