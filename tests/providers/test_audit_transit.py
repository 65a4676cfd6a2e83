"""TransitAuditKey against a real OpenBao: transit HMACs chain the audit trail; the key never leaves OpenBao."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import hvac
import pytest
from sqlalchemy import update

from backend.app import build_services
from backend.audit_witness import FileWitness
from backend.embedded import EmbeddedOpenBao
from backend.errors import UpstreamError
from backend.providers.audit_transit import TransitAuditKey
from backend.services.audit import verify
from backend.store.audit import AuditStore
from backend.store.database import Database
from backend.store.models import AuditEvent
from tests.audit_chains import new_event
from tests.conftest import SettingsFactory


@pytest.fixture
def transit(openbao: EmbeddedOpenBao) -> Iterator[tuple[hvac.Client, str, str]]:
    client = hvac.Client(url=openbao.addr, token=openbao.token)
    mount, name = f"transit-{secrets.token_hex(4)}", "audit"
    client.sys.enable_secrets_engine("transit", path=mount)
    client.secrets.transit.create_key(name, mount_point=mount)
    yield client, mount, name
    client.sys.disable_secrets_engine(mount)


def _key(openbao: EmbeddedOpenBao, mount: str, name: str) -> TransitAuditKey:
    return TransitAuditKey(addr=openbao.addr, token=openbao.token, mount=mount, key=name)


def test_transit_macs_are_stable_and_checked_by_transit(openbao: EmbeddedOpenBao,
                                                        transit: tuple[hvac.Client, str, str]) -> None:
    _, mount, name = transit
    key = _key(openbao, mount, name)
    assert key.key_id == f"transit:{mount}/{name}:v1"
    mac = key.mac(b"event 1")
    assert len(mac) == 64 and int(mac, 16) >= 0
    assert key.mac(b"event 1") == mac != key.mac(b"event 2")
    assert key.check(key.key_id, b"event 1", mac)
    assert not key.check(key.key_id, b"event 2", mac)
    assert not key.check(f"transit:{mount}/{name}:v9", b"event 1", mac)  # a version the key does not have
    assert not key.check("file:0123456789abcdef", b"event 1", mac)
    assert not key.check(key.key_id, b"event 1", "not hex")


def test_after_a_rotation_old_macs_still_verify(openbao: EmbeddedOpenBao,
                                                transit: tuple[hvac.Client, str, str]) -> None:
    client, mount, name = transit
    before = _key(openbao, mount, name)
    mac = before.mac(b"event 1")
    client.secrets.transit.rotate_key(name, mount_point=mount)
    after = _key(openbao, mount, name)
    assert after.key_id == f"transit:{mount}/{name}:v2"
    assert after.mac(b"event 1") != mac
    assert after.check(before.key_id, b"event 1", mac)


def test_a_transit_keyed_chain_verifies_and_shows_an_edit(openbao: EmbeddedOpenBao, sqlite_url: str,
                                                          transit: tuple[hvac.Client, str, str],
                                                          tmp_path: Path) -> None:
    _, mount, name = transit
    database = Database(sqlite_url)
    database.migrate()
    store = AuditStore(database, key=_key(openbao, mount, name), witness=FileWitness(tmp_path / "witness.jsonl"))
    for n in range(3):
        store.append(new_event(n))
    result = verify(store)
    assert (result.ok, result.checked, result.checkpoints) == (True, 3, 3)
    with database.transaction() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(result="failed"))
    result = verify(store)
    assert (result.ok, result.kind, result.first_bad_seq) == (False, "edited", 2)
    database.dispose()


def test_a_missing_transit_key_is_an_upstream_error(openbao: EmbeddedOpenBao,
                                                    transit: tuple[hvac.Client, str, str]) -> None:
    _, mount, _ = transit
    with pytest.raises(UpstreamError, match=f"transit key {mount}/nope"):
        _ = _key(openbao, mount, "nope").key_id


def test_settings_choose_transit(make_settings: SettingsFactory, transit: tuple[hvac.Client, str, str],
                                 tmp_path: Path) -> None:
    _, mount, name = transit
    services = build_services(make_settings(audit={"transit_mount": mount, "transit_key": name}), upgrade_schema=True)
    assert services.stores.audit.key.key_id == f"transit:{mount}/{name}:v1"
    assert not (tmp_path / "audit.key").exists()  # no local key is made when transit holds it
    with pytest.raises(ValueError, match="need each other"):
        build_services(make_settings(audit={"transit_mount": mount}), upgrade_schema=True)
