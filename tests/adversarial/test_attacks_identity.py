"""Forging who calls: header tricks in both tokens (jku, x5u, an embedded jwk, a kid naming another key, alg
confusion), a plugin named `auth`, one plugin's token presented as another's, audiences of other plugins, tokens
from the future or the past, odd user subjects (case, newline, paths, Unicode that folds to ASCII), odd group refs
from the catalog, and credentials that mix a plugin's groups with a person's. Each forgery is a 401 (or a 403) and
writes nothing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.adversarial.conftest import (
    ALICE,
    LEDGER,
    LEDGER_TOKEN,
    MALLORY,
    PAYMENTS,
    VAULT,
    Bench,
    MakeBench,
    bearer,
    invoke_url,
)
from tests.api.jwks_server import BackstageKeys
from tests.conftest import vault_input

USER_TYP, PLUGIN_TYP = "vnd.backstage.limited-user", "vnd.backstage.plugin"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with(secret: bytes, header: dict[str, Any], payload: dict[str, Any]) -> str:
    """An HMAC token made by hand (PyJWT refuses to use a public key as an HMAC secret, an attacker does not)."""
    signing = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    return f"{signing}.{_b64(hmac.new(secret, signing.encode(), hashlib.sha256).digest())}"


def public_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _claims(sub: str, ttl: int = 600, **extra: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + ttl, **extra}


def _attempt(bench: Bench, token: str, *, owner: str = PAYMENTS) -> Any:
    return bench.client.post(invoke_url(VAULT), json=vault_input(owner=owner), headers=bearer(token))


@pytest.fixture
def attacker_keys() -> Iterator[BackstageKeys]:
    """The attacker's own JWKS server, to point jku/x5u at."""
    server = BackstageKeys()
    yield server
    server.stop()


# -- the person's token (obo) ----------------------------------------------------------------------------------------

def _person_forgeries(bench: Bench, attacker: BackstageKeys) -> dict[str, str]:
    keys, mine = bench.keys, attacker.auth_key
    mine_jwk = {**json.loads(ECAlgorithm.to_jwk(mine.public_key())), "kid": "auth-1"}

    def signed(key: ec.EllipticCurvePrivateKey, **header: Any) -> str:
        return jwt.encode(_claims(ALICE), key, algorithm="ES256", headers={"typ": USER_TYP, **header})

    return {
        "jku to the attacker's keys": signed(mine, kid="auth-1", jku=f"{attacker.url}/api/auth/.well-known/jwks.json"),
        "x5u to the attacker": signed(mine, kid="auth-1", x5u=f"{attacker.url}/cert.pem"),
        "embedded jwk": signed(mine, kid="auth-1", jwk=mine_jwk),
        "no kid": signed(mine),
        "kid of a plugin key, signed with it": signed(keys.keys[keys.current], kid=keys.current),
        "HS256 keyed with the auth backend's public key": hs256_with(
            public_pem(keys.auth_key), {"alg": "HS256", "typ": USER_TYP, "kid": "auth-1"}, _claims(ALICE)),
        "alg none": jwt.encode(_claims(ALICE), None, algorithm="none", headers={"typ": USER_TYP}),
        "ES512 by the attacker": jwt.encode(_claims(ALICE), ec.generate_private_key(ec.SECP521R1()),
                                            algorithm="ES512", headers={"typ": USER_TYP, "kid": "auth-1"}),
        "expired": keys.user_token(ALICE, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600),
        "issued an hour from now": keys.user_token(ALICE, iat=int(time.time()) + 3600),
        "no exp": jwt.encode({"sub": ALICE, "iat": int(time.time())}, keys.auth_key, algorithm="ES256",
                             headers={"typ": USER_TYP, "kid": "auth-1"}),
        "a plugin token as the person": keys.token(),
        "no typ": jwt.encode(_claims(ALICE), keys.auth_key, algorithm="ES256", headers={"kid": "auth-1"}),
    }


PERSON_FORGERIES = ("jku to the attacker's keys", "x5u to the attacker", "embedded jwk", "no kid",
                    "kid of a plugin key, signed with it", "HS256 keyed with the auth backend's public key", "alg none",
                    "ES512 by the attacker", "expired", "issued an hour from now", "no exp",
                    "a plugin token as the person", "no typ")


@pytest.mark.parametrize("forgery", PERSON_FORGERIES)
def test_forged_person_tokens_are_401_and_write_nothing(
    bench: Bench, attacker_keys: BackstageKeys, forgery: str
) -> None:
    obo = _person_forgeries(bench, attacker_keys)[forgery]
    before = bench.snapshot()
    answer = _attempt(bench, bench.keys.token(obo=obo))
    assert answer.status_code == 401, (forgery, answer.text)
    bench.assert_only_evidence(before, result=None)


@pytest.mark.parametrize("obo", [{"token": "x"}, ["x"], 42, ""])
def test_an_obo_claim_that_is_not_a_token_is_401(bench: Bench, obo: Any) -> None:
    answer = _attempt(bench, bench.keys.token(obo=obo))
    assert answer.status_code == 401, answer.text


# -- the plugin's token -------------------------------------------------------------------------------------------

def _plugin_forgeries(bench: Bench, attacker: BackstageKeys) -> dict[str, str]:
    keys, mine = bench.keys, attacker.keys[attacker.current]
    obo = keys.user_token(ALICE)
    claims = _claims("scaffolder", aud="goldenpath", obo=obo)
    mine_jwk = {**json.loads(ECAlgorithm.to_jwk(mine.public_key())), "kid": keys.current}

    def signed(key: ec.EllipticCurvePrivateKey, payload: dict[str, Any] = claims, **header: Any) -> str:
        return jwt.encode(payload, key, algorithm="ES256", headers={"typ": PLUGIN_TYP, **header})

    return {
        "jku to the attacker": signed(mine, kid=keys.current,
                                      jku=f"{attacker.url}/api/scaffolder/.backstage/auth/v1/jwks.json"),
        "embedded jwk": signed(mine, kid=keys.current, jwk=mine_jwk),
        "HS256 keyed with the plugin's public key": hs256_with(
            public_pem(keys.keys[keys.current]), {"alg": "HS256", "typ": PLUGIN_TYP, "kid": keys.current}, claims),
        "signed by the auth backend's user key": signed(keys.auth_key, kid="auth-1"),
        "audience of another plugin": keys.token(aud="catalog", obo=obo),
        "audience list without us": keys.token(aud=["catalog", "scaffolder"], obo=obo),
        "no audience": signed(keys.keys[keys.current], {k: v for k, v in claims.items() if k != "aud"},
                              kid=keys.current),
        "a plugin Golden Path does not allow": keys.token(sub="catalog", obo=obo),
        "a plugin id that is a path": keys.token(sub="scaffolder/../auth", obo=obo),
        "issued an hour from now": keys.token(iat=int(time.time()) + 3600, obo=obo),
        "expired": keys.token(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600, obo=obo),
        "the person's token as the bearer": obo,
        "the person's full user token as the bearer": keys.user_token(ALICE, typ="vnd.backstage.user"),
    }


PLUGIN_FORGERIES = ("jku to the attacker", "embedded jwk", "HS256 keyed with the plugin's public key",
                    "signed by the auth backend's user key", "audience of another plugin", "audience list without us",
                    "no audience", "a plugin Golden Path does not allow", "a plugin id that is a path",
                    "issued an hour from now", "expired", "the person's token as the bearer",
                    "the person's full user token as the bearer")


@pytest.mark.parametrize("forgery", PLUGIN_FORGERIES)
def test_forged_plugin_tokens_are_401_and_write_nothing(
    bench: Bench, attacker_keys: BackstageKeys, forgery: str
) -> None:
    token = _plugin_forgeries(bench, attacker_keys)[forgery]
    before = bench.snapshot()
    answer = _attempt(bench, token)
    assert answer.status_code == 401, (forgery, answer.text)
    bench.assert_only_evidence(before, result=None)


def test_a_plugin_named_auth_cannot_pass_user_keys_for_plugin_keys_or_back(make_bench: MakeBench) -> None:
    """The auth backend's user-signing keys and the `auth` plugin's own keys are cached apart: a token the user key
    signed is no plugin token of `auth`, and a plugin key of `auth` signs no person, whichever is fetched first."""
    bench = make_bench(auth={"backstage_plugins": ["scaffolder", "auth"]})
    keys = bench.keys
    assert _attempt(bench, keys.token(obo=keys.user_token(ALICE))).status_code == 200  # user keys now cached
    user_signed_as_auth_plugin = jwt.encode(_claims("auth", aud="goldenpath", obo=keys.user_token(ALICE)),
                                            keys.auth_key, algorithm="ES256",
                                            headers={"typ": PLUGIN_TYP, "kid": "auth-1"})
    before = bench.snapshot()
    assert _attempt(bench, user_signed_as_auth_plugin).status_code == 401
    # the auth plugin's own token (plugin keys) is fine, but its key signs no person
    person_by_auth_plugin_key = keys.user_token(ALICE, key=keys.keys[keys.current])
    assert _attempt(bench, keys.token(sub="auth", obo=person_by_auth_plugin_key)).status_code == 401
    bench.assert_only_evidence(before, result=None)


class PerPluginKeys(BackstageKeys):
    """Backstage gives each plugin its own signing keys; this stand-in serves scaffolder's and mcp-actions' apart."""

    def __init__(self) -> None:
        self.by_plugin = {"scaffolder": ec.generate_private_key(ec.SECP256R1()),
                          "mcp-actions": ec.generate_private_key(ec.SECP256R1())}
        super().__init__()

    def plugin_token(self, *, signer: str, sub: str, **claims: Any) -> str:
        payload = {**_claims(sub, aud="goldenpath"), **claims}
        return jwt.encode(payload, self.by_plugin[signer], algorithm="ES256",
                          headers={"typ": PLUGIN_TYP, "kid": f"{signer}-key"})

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        base = super()._handler()
        outer = self

        class Handler(base):  # type: ignore[valid-type,misc]
            def do_GET(self) -> None:
                parts = self.path.split("/")
                if len(parts) > 2 and parts[2] in outer.by_plugin and self.path.endswith("/auth/v1/jwks.json"):
                    key = outer.by_plugin[parts[2]]
                    jwk = json.loads(ECAlgorithm.to_jwk(key.public_key()))
                    self._send({"keys": [{**jwk, "kid": f"{parts[2]}-key", "alg": "ES256", "use": "sig"}]})
                    return
                super().do_GET()

        return Handler


def test_one_plugins_token_is_not_another_plugins(make_app: Any) -> None:
    """mcp-actions may act for team-ledger with no person; scaffolder's key cannot mint an mcp-actions token."""
    keys = PerPluginKeys()
    try:
        app, _ = make_app(auth={"backstage_url": keys.url, "catalog_token": keys.catalog_token,
                                "backstage_plugins": ["scaffolder", "mcp-actions"],
                                "plugin_groups": {"mcp-actions": [LEDGER]}})
        client = app.test_client()
        genuine = keys.plugin_token(signer="mcp-actions", sub="mcp-actions")
        forged = keys.plugin_token(signer="scaffolder", sub="mcp-actions")
        url = invoke_url(VAULT)
        assert client.post(url, json=vault_input(owner=LEDGER), headers=bearer(genuine)).status_code == 200
        assert client.post(url, json=vault_input(owner=LEDGER), headers=bearer(forged)).status_code == 401
    finally:
        keys.stop()


# -- who the person is -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subject", [
    "user:default/alice\n", "user:default/alice ", " user:default/alice", "user:default/alice/x", "alice",
    "user:default/", "user:/alice", "user:default/al\u212ace", "user:default/\u0430lice", "user:default/alice\x00",
    "group:default/team-payments", "user:default/alice:x",
])
def test_odd_user_subjects_are_401(bench: Bench, subject: str) -> None:
    """A subject that is not exactly a user entity ref names nobody, even one that folds to a real user's ref
    (the Kelvin sign K lowercases to 'k', 'user:default/alKce' to 'user:default/alkce')."""
    bench.keys.members["user:default/alkce"] = [PAYMENTS]
    before = bench.snapshot()
    answer = _attempt(bench, bench.keys.token(obo=bench.keys.user_token(subject)))
    assert answer.status_code == 401, (subject, answer.text)
    bench.assert_only_evidence(before, result=None)


def test_a_subject_in_other_case_is_the_same_person(bench: Bench) -> None:
    """Backstage compares entity refs case-insensitively, so User:Default/Alice is alice, audited as such."""
    answer = _attempt(bench, bench.keys.token(obo=bench.keys.user_token("User:Default/Alice")))
    assert answer.status_code == 200, answer.text
    [event] = bench.services.stores.audit.list()
    assert event["actor_user"] == ALICE


@pytest.mark.parametrize(("member_of", "status"), [
    (["group:Default/Team-Payments"], 200),  # one ref in another case
    (["GROUP:DEFAULT/TEAM-PAYMENTS"], 200),
    (["team-payments"], 403),  # not a full ref: Backstage never sends one, and it names nothing here
    (["group:default/team-payments/x"], 403),
    (["group:other/team-payments"], 403),  # a same-named group in another namespace is another group
    (["user:default/team-payments"], 403),
    (["group:default/team-payments "], 403),
    (["group:default/team-payment"], 403),
])
def test_odd_group_refs_from_the_catalog_count_only_when_they_name_the_owner(
    bench: Bench, member_of: list[str], status: int
) -> None:
    bench.keys.members["user:default/eve"] = member_of
    before = bench.snapshot()
    answer = bench.invoke(VAULT, vault_input(owner=PAYMENTS), "user:default/eve")
    assert answer.status_code == status, (member_of, answer.text)
    if status == 403:
        bench.assert_only_evidence(before, result="refused")


def test_a_plugins_groups_do_not_add_to_a_persons(bench: Bench) -> None:
    """mcp-actions acts for team-ledger with no person; with alice behind it, it acts as alice only."""
    keys = bench.keys
    with_alice = keys.token(sub="mcp-actions", obo=keys.user_token(ALICE))
    before = bench.snapshot()
    assert _attempt(bench, with_alice, owner=LEDGER).status_code == 403
    bench.assert_only_evidence(before, result="refused")
    assert _attempt(bench, with_alice, owner=PAYMENTS).status_code == 200


def test_a_person_in_no_group_acts_for_no_team(bench: Bench) -> None:
    before = bench.snapshot()
    for owner in (PAYMENTS, LEDGER, "group:default/nobody"):
        assert bench.invoke(VAULT, vault_input(owner=owner), "user:default/nobody").status_code == 403
    after = bench.snapshot()
    assert [s for _, s in after["runs"] if (_, s) not in before["runs"]].count("refused") == 3
    assert (after["claims"], after["inventory"], after["kv"]) == (before["claims"], before["inventory"], before["kv"])


@pytest.mark.parametrize("token", [LEDGER_TOKEN + "\n", LEDGER_TOKEN + " ", LEDGER_TOKEN[:-1], LEDGER_TOKEN.upper(),
                                   LEDGER_TOKEN + LEDGER_TOKEN, "x." + LEDGER_TOKEN + ".y"])
def test_near_misses_of_a_static_token_are_401(bench: Bench, token: str) -> None:
    before = bench.snapshot()
    answer = bench.run(VAULT, vault_input(owner=LEDGER), {"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401, (token, answer.text)
    bench.assert_only_evidence(before, result=None)


def test_a_team_token_and_a_claimed_user_cannot_act_for_another_team(bench: Bench) -> None:
    before = bench.snapshot()
    answer = bench.run(VAULT, vault_input(owner=PAYMENTS), bearer(LEDGER_TOKEN), context={"user": ALICE})
    assert answer.status_code == 403 and answer.json()["rule"] == "not-a-member-of-owner"
    bench.assert_only_evidence(before, result="refused")
    [event] = bench.services.stores.audit.list()
    assert (event["actor_user"], event["actor_claim"]) == (None, ALICE)


def test_mallory_cannot_borrow_alices_person_token_under_her_own_subject(bench: Bench) -> None:
    """The obo's subject is what counts; a plugin token's own claims (a `user`, an `actor`) name nobody."""
    keys = bench.keys
    token = keys.token(obo=keys.user_token(MALLORY), user=ALICE, actor=ALICE, sub_user=ALICE)
    before = bench.snapshot()
    assert _attempt(bench, token).status_code == 403
    bench.assert_only_evidence(before, result="refused")
