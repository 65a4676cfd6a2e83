"""Who calls, pinned on the Authenticator itself against a live Backstage JWKS (no app, no OpenBao, so each mutant's
guard runs in seconds): only allow-listed plugins, only for our audience, only ES256 plugin-typed tokens of bounded
lifetime; the person only from a limited user token signed by the auth backend; static tokens only verbatim."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from backend.errors import AuthenticationError
from backend.services.auth import Authenticator, Principal
from backend.settings import settings_from_dict
from tests.api.jwks_server import BackstageKeys

PAYMENTS, LEDGER = "group:default/team-payments", "group:default/team-ledger"
ALICE = "user:default/alice"
CI_TOKEN = "payments-ci-" + "p" * 24
HOUR, DAY = 3600, 86400


@pytest.fixture(scope="module")
def keys() -> Iterator[BackstageKeys]:
    server = BackstageKeys()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def auth(keys: BackstageKeys, tmp_path_factory: pytest.TempPathFactory) -> Authenticator:
    folder = tmp_path_factory.mktemp("auth")
    settings = settings_from_dict({
        "database": {"url": f"sqlite:///{folder}/db"},
        "auth": {"backstage_url": keys.url, "backstage_plugins": ["scaffolder", "mcp-actions"],
                 "plugin_groups": {"mcp-actions": ["team-ledger"]},
                 "static_tokens": [{"name": "payments-ci", "token": CI_TOKEN, "groups": ["team-payments"]}]},
    })
    return Authenticator(settings.auth)


def refused(auth: Authenticator, token: str) -> str:
    with pytest.raises(AuthenticationError) as error:
        auth.authenticate(token)
    return str(error.value.detail)


def plugin_token(keys: BackstageKeys, *, typ: str | None = "vnd.backstage.plugin", **claims: Any) -> str:
    """A token signed with the plugin's current key, with any header type and claims."""
    now = int(time.time())
    payload = {"sub": "scaffolder", "aud": "goldenpath", "iat": now, "exp": now + 600, **claims}
    return jwt.encode(payload, keys.keys[keys.current], algorithm="ES256", headers={"typ": typ, "kid": keys.current})


# -- the calling plugin --------------------------------------------------------------------------------------------

def test_only_allow_listed_plugins_may_call(auth: Authenticator, keys: BackstageKeys) -> None:
    """A plugin Backstage really signed for (its JWKS verifies the token) is still refused unless configured."""
    assert auth.authenticate(keys.token()).caller == "backstage:scaffolder"
    assert auth.authenticate(keys.token(sub="mcp-actions")).caller == "backstage:mcp-actions"
    for plugin in ("catalog", "techdocs", "auth"):
        assert refused(auth, keys.token(sub=plugin)) == f"Backstage plugin {plugin!r} may not call Golden Path"


def test_a_plugin_token_must_name_golden_path_as_its_audience(auth: Authenticator, keys: BackstageKeys) -> None:
    for audience in ("catalog", "goldenpath-staging", ["catalog", "techdocs"]):
        assert refused(auth, plugin_token(keys, aud=audience)).endswith("rejected: InvalidAudienceError")
    now = int(time.time())
    no_audience = jwt.encode({"sub": "scaffolder", "iat": now, "exp": now + 600}, keys.keys[keys.current],
                             algorithm="ES256", headers={"typ": "vnd.backstage.plugin", "kid": keys.current})
    assert "MissingRequiredClaimError" in refused(auth, no_audience)


@pytest.mark.parametrize("typ", ["JWT", "vnd.backstage.limited-user", "vnd.backstage.user", None])
def test_a_plugin_token_must_be_typed_as_one(auth: Authenticator, keys: BackstageKeys, typ: str | None) -> None:
    """Signed by the plugin's key, but not a plugin token: a user token or a plain JWT is no plugin's credential."""
    token = plugin_token(keys, typ=typ)
    assert jwt.get_unverified_header(token).get("typ") == typ
    assert refused(auth, token) == "the bearer token is not a Backstage plugin token"


def test_only_es256_signatures_by_the_plugins_own_keys(auth: Authenticator, keys: BackstageKeys) -> None:
    claims = {"sub": "scaffolder", "aud": "goldenpath", "iat": int(time.time()), "exp": int(time.time()) + 600}
    header = {"typ": "vnd.backstage.plugin", "kid": keys.current}
    unsigned = jwt.encode(claims, "", algorithm="none", headers=header)
    hs256 = jwt.encode(claims, "k" * 32, algorithm="HS256", headers=header)
    foreign = jwt.encode(claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers=header)
    for token in (unsigned, hs256):
        assert refused(auth, token) == "the bearer token is not signed the way Backstage signs (ES256)"
    assert "InvalidSignatureError" in refused(auth, foreign)


def test_plugin_tokens_live_at_most_an_hour(auth: Authenticator, keys: BackstageKeys) -> None:
    assert auth.authenticate(keys.token(ttl=HOUR)).caller == "backstage:scaffolder"
    for ttl in (HOUR + 60, 2 * HOUR, DAY, 10 * 365 * DAY):
        assert refused(auth, keys.token(ttl=ttl)) == "the Backstage plugin token lives longer than 3600 s"
    assert "ExpiredSignatureError" in refused(auth, keys.token(ttl=-HOUR))


def test_a_back_dated_token_of_long_lifetime_is_refused_though_it_expires_soon(
    auth: Authenticator, keys: BackstageKeys,
) -> None:
    """Its remaining time is short, but Backstage never issues such a token: it was made by someone else."""
    now = int(time.time())
    token = plugin_token(keys, iat=now - 10 * HOUR, exp=now + 600)
    assert refused(auth, token) == "the Backstage plugin token lives longer than 3600 s"


def test_a_plugin_call_with_no_person_acts_only_for_the_plugins_configured_groups(
    auth: Authenticator, keys: BackstageKeys,
) -> None:
    assert auth.authenticate(keys.token(sub="mcp-actions")) == Principal(
        caller="backstage:mcp-actions", user=None, kind="backstage", groups=frozenset({LEDGER}))
    assert auth.authenticate(keys.token()) == Principal(caller="backstage:scaffolder", user=None, kind="backstage")


# -- the person behind the call ------------------------------------------------------------------------------------

def test_the_person_is_the_limited_user_token_signed_by_the_auth_backend(
    auth: Authenticator, keys: BackstageKeys,
) -> None:
    principal = auth.authenticate(keys.token(sub="mcp-actions", obo=keys.user_token("User:Default/Alice")))
    # the person, in canonical form; a plugin's own groups never add to a person's (they come from the catalog)
    assert principal == Principal(caller="backstage:mcp-actions", user=ALICE, kind="backstage")


@pytest.mark.parametrize("forgery", ["plugin-key", "foreign-key", "full-user-token", "plain-jwt", "hs256"])
def test_a_person_token_not_made_by_the_auth_backend_is_refused(
    auth: Authenticator, keys: BackstageKeys, forgery: str,
) -> None:
    obo = {
        # the calling plugin's key (served by Backstage for a plugin named "auth" too) signs no person
        "plugin-key": lambda: jwt.encode({"sub": ALICE, "iat": int(time.time()), "exp": int(time.time()) + 600},
                                         keys.keys[keys.current], algorithm="ES256",
                                         headers={"typ": "vnd.backstage.limited-user", "kid": keys.current}),
        "foreign-key": lambda: keys.user_token(ALICE, key=ec.generate_private_key(ec.SECP256R1())),
        "full-user-token": lambda: keys.user_token(ALICE, typ="vnd.backstage.user"),
        "plain-jwt": lambda: keys.user_token(ALICE, typ="JWT"),
        "hs256": lambda: jwt.encode({"sub": ALICE, "iat": int(time.time()), "exp": int(time.time()) + 600},
                                    "k" * 32, algorithm="HS256", headers={"typ": "vnd.backstage.limited-user"}),
    }[forgery]()
    refused(auth, keys.token(obo=obo))


@pytest.mark.parametrize("obo", [{"token": "x"}, ["x"], 42, True, ""])
def test_an_obo_claim_that_is_not_a_token_is_refused_not_ignored(
    auth: Authenticator, keys: BackstageKeys, obo: Any,
) -> None:
    """Ignoring it would let the call act for the plugin's own groups."""
    refused(auth, keys.token(sub="mcp-actions", obo=obo))


@pytest.mark.parametrize("subject", [
    PAYMENTS,  # a group is no person: as the "user", it would be its own owner
    "team-payments", "user:default/", "user:default/al\u212ace",  # the Kelvin sign folds to "k" under IGNORECASE
    "user:default/alice\n", "user:default/../admin", "component:default/alice",
])
def test_the_person_must_be_a_user_entity_ref(auth: Authenticator, keys: BackstageKeys, subject: str) -> None:
    assert refused(auth, keys.token(obo=keys.user_token(subject))) == \
        "the Backstage user token does not name a user entity"


def test_person_tokens_live_at_most_a_day(auth: Authenticator, keys: BackstageKeys) -> None:
    """Backstage caps sessions at 24 h: a day-long person token is good, not the plugin's hour."""
    for ttl in (HOUR, 8 * HOUR, DAY):
        assert auth.authenticate(keys.token(obo=keys.user_token(ALICE, ttl=ttl))).user == ALICE
    for ttl in (DAY + 3600, 10 * 365 * DAY):
        assert refused(auth, keys.token(obo=keys.user_token(ALICE, ttl=ttl))) == \
            "the Backstage user token lives longer than 86400 s"


# -- static tokens -------------------------------------------------------------------------------------------------

def test_a_static_token_acts_only_for_its_groups_and_only_verbatim(auth: Authenticator) -> None:
    assert auth.authenticate(CI_TOKEN) == Principal(caller="token:payments-ci", user=None, kind="static",
                                                    groups=frozenset({PAYMENTS}), admin=False)
    for near_miss in (CI_TOKEN + "\n", CI_TOKEN + " ", " " + CI_TOKEN, CI_TOKEN[:-1], CI_TOKEN.upper(),
                      CI_TOKEN + "p", ""):
        assert refused(auth, near_miss) == "the bearer token is not valid"
