"""Only a team's members act for the team: verified people (obo), their groups from the catalog, credentials
with no person acting only within their configured groups, and refusals that write nothing but evidence."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hvac
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.testclient import TestClient

from backend.embedded import EmbeddedOpenBao
from tests.api.jwks_server import BackstageKeys
from tests.conftest import API_TOKEN, VAULT_ACTION, vault_input

INVOKE = f"/api/goldenpath/.backstage/actions/v1/actions/{VAULT_ACTION.replace(':', '%3A')}/invoke"
PLAN_INVOKE = "/api/goldenpath/.backstage/actions/v1/actions/goldenpath%3Aplatform%3Aservice%3Aplan/invoke"
RUNS = f"/api/v1/actions/{VAULT_ACTION}/runs"
PAYMENTS, LEDGER, PLATFORM = "group:default/team-payments", "group:default/team-ledger", "group:default/platform"
LEDGER_TOKEN = "ledger-token-" + "x" * 20


@pytest.fixture
def keys() -> Iterator[BackstageKeys]:
    server = BackstageKeys()
    server.members.update({"user:default/alice": [PAYMENTS], "user:default/mallory": [LEDGER],
                           "user:default/pat": [PLATFORM]})
    yield server
    server.stop()


@pytest.fixture
def app_client(make_app: Any, keys: BackstageKeys) -> TestClient:
    app, _ = make_app(auth={
        "backstage_url": keys.url, "catalog_token": keys.catalog_token, "admin_groups": [PLATFORM],
        "backstage_plugins": ["scaffolder", "mcp-actions"], "plugin_groups": {"mcp-actions": ["team-ledger"]},
        "static_tokens": [{"name": "ledger-ci", "token": LEDGER_TOKEN, "groups": ["team-ledger"]}],
    })
    return app.test_client()


@pytest.fixture
def root(openbao: EmbeddedOpenBao) -> hvac.Client:
    return hvac.Client(url=openbao.addr, token=openbao.token)


def as_user(keys: BackstageKeys, user: str, **obo_claims: Any) -> dict[str, str]:
    token = keys.token(obo=keys.user_token(user, **obo_claims))
    return {"Authorization": f"Bearer {token}"}


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_TOKEN}"}


def path_exists(root: hvac.Client, path: str) -> bool:
    try:
        root.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")
    except hvac.exceptions.InvalidPath:
        return False
    return True


def audit(client: TestClient) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/api/v1/audit", headers=admin()).json()["items"]
    return items


def test_a_member_of_the_owner_group_provisions_and_is_the_audited_actor(
    app_client: TestClient, keys: BackstageKeys, root: hvac.Client
) -> None:
    data = vault_input(owner=PAYMENTS)
    answer = app_client.post(INVOKE, json=data, headers=as_user(keys, "user:default/alice"))
    assert answer.status_code == 200, answer.text
    assert path_exists(root, f"dev/payments/{data['service']}")
    [event] = audit(app_client)
    assert (event["actor_user"], event["actor_caller"], event["result"]) == (
        "user:default/alice", "backstage:scaffolder", "succeeded")


def test_a_non_member_is_refused_writes_nothing_and_the_refusal_is_audited(
    app_client: TestClient, keys: BackstageKeys, root: hvac.Client, openbao: EmbeddedOpenBao
) -> None:
    data = vault_input(owner=PAYMENTS)
    policies_before = set(root.sys.list_policies()["data"]["policies"])
    answer = app_client.post(INVOKE, json=data, headers=as_user(keys, "user:default/mallory"))
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["problem"]["rule"] == "not-a-member-of-owner"
    assert "not-a-member-of-owner" in answer.headers.get("x-goldenpath-reason", "") or \
        "not-a-member-of-owner" in answer.json()["error"]["message"]
    assert not path_exists(root, f"dev/payments/{data['service']}")
    assert set(root.sys.list_policies()["data"]["policies"]) == policies_before
    [event] = audit(app_client)
    assert (event["actor_user"], event["result"]) == ("user:default/mallory", "refused")
    assert event["changes"] == []
    inventory = app_client.get("/api/v1/inventory", headers=admin()).json()["items"]
    assert not [row for row in inventory if row["service"] == data["service"]]


def test_short_and_full_owner_refs_are_one_owner_but_a_user_with_the_team_name_is_not(
    app_client: TestClient, keys: BackstageKeys
) -> None:
    data = vault_input(owner="team-payments")
    assert app_client.post(INVOKE, json=data, headers=as_user(keys, "user:default/alice")).status_code == 200
    impostor = vault_input(owner="user:default/team-payments")
    assert app_client.post(INVOKE, json=impostor, headers=as_user(keys, "user:default/alice")).status_code == 403


def test_a_platform_admin_acts_for_any_team(app_client: TestClient, keys: BackstageKeys) -> None:
    answer = app_client.post(INVOKE, json=vault_input(owner=LEDGER), headers=as_user(keys, "user:default/pat"))
    assert answer.status_code == 200, answer.text


def test_a_member_of_another_team_cannot_rebind_the_first_teams_role(
    app_client: TestClient, keys: BackstageKeys, root: hvac.Client
) -> None:
    data = vault_input(owner=PAYMENTS, environments=["prod"])
    first = app_client.post(INVOKE, json=data, headers=as_user(keys, "user:default/alice"))
    assert first.status_code == 200, first.text
    role_name = first.json()["output"]["paths"][0]["kubernetesRole"]
    before = root.auth.kubernetes.read_role(role_name)
    attacks = [
        ({**data, "namespace": "attacker-ns", "serviceAccount": "attacker-sa"}, 403),  # claims the owner
        ({**data, "owner": LEDGER, "namespace": "attacker-ns", "serviceAccount": "attacker-sa"}, 409),  # own team
        ({**data, "owner": LEDGER}, 409),
    ]
    for attack, status in attacks:
        answer = app_client.post(INVOKE, json=attack, headers=as_user(keys, "user:default/mallory"))
        assert answer.status_code == status, answer.text
    assert root.auth.kubernetes.read_role(role_name) == before


def test_the_owner_cannot_bind_its_role_to_another_workload_or_a_reserved_namespace(
    app_client: TestClient, keys: BackstageKeys
) -> None:
    data = vault_input(owner=PAYMENTS)
    for extra, field, rule in (({"namespace": "attacker-ns"}, "namespace", "workload-overrides"),
                               ({"serviceAccount": "default"}, "serviceAccount", "workload-overrides"),
                               ({"namespace": "kube-system"}, "namespace", "reserved-namespaces")):
        answer = app_client.post(INVOKE, json={**data, **extra}, headers=as_user(keys, "user:default/alice"))
        assert answer.status_code == 422, answer.text
        errors = answer.json()["error"]["problem"]["errors"]
        assert (field, rule) in {(e["field"], e["rule"]) for e in errors}


def test_the_plan_reports_the_membership_rule_with_the_other_problems(
    app_client: TestClient, keys: BackstageKeys
) -> None:
    plan = {"service": "payments-api", "system": "payments", "owner": PAYMENTS, "costCenter": "cc-1234",
            "environments": ["dev", "nowhere"], "description": "Payments API"}
    answer = app_client.post(PLAN_INVOKE, json=plan, headers=as_user(keys, "user:default/mallory"))
    assert answer.status_code == 422, answer.text
    rules = {(e["field"], e["rule"]) for e in answer.json()["error"]["problem"]["errors"]}
    assert ("owner", "not-a-member-of-owner") in rules and ("environments.1", "allowed-environments") in rules
    ok = app_client.post(PLAN_INVOKE, json={**plan, "environments": ["dev"]},
                         headers=as_user(keys, "user:default/alice"))
    assert ok.status_code == 200, ok.text


def test_static_tokens_act_only_for_their_groups(app_client: TestClient) -> None:
    ledger = {"Authorization": f"Bearer {LEDGER_TOKEN}"}
    assert app_client.post(RUNS, json={"input": vault_input(owner=LEDGER)}, headers=ledger).status_code == 201
    refused = app_client.post(RUNS, json={"input": vault_input(owner=PAYMENTS)}, headers=ledger)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["rule"] == "not-a-member-of-owner"
    assert problem["errors"] == [{"field": "owner", "message": problem["detail"], "rule": "not-a-member-of-owner"}]


def test_a_claimed_user_is_recorded_as_a_claim_never_as_the_actor(app_client: TestClient) -> None:
    ledger = {"Authorization": f"Bearer {LEDGER_TOKEN}"}
    body = {"input": vault_input(owner=LEDGER), "context": {"user": "user:default/ceo"}}
    assert app_client.post(RUNS, json=body, headers=ledger).status_code == 201
    claiming_more = {"input": vault_input(owner=PAYMENTS), "context": {"user": "user:default/alice"}}
    assert app_client.post(RUNS, json=claiming_more, headers=ledger).status_code == 403  # a claim grants nothing
    events = audit(app_client)
    assert [(e["actor_user"], e["actor_caller"], e["actor_claim"], e["result"]) for e in events] == [
        (None, "token:ledger-ci", "user:default/ceo", "succeeded"),
        (None, "token:ledger-ci", "user:default/alice", "refused")]


def test_a_plugin_call_with_no_person_acts_only_for_the_plugins_groups(
    app_client: TestClient, keys: BackstageKeys
) -> None:
    scaffolder = {"Authorization": f"Bearer {keys.token()}"}
    assert app_client.post(INVOKE, json=vault_input(owner=PAYMENTS), headers=scaffolder).status_code == 403
    mcp = {"Authorization": f"Bearer {keys.token(sub='mcp-actions')}"}
    assert app_client.post(INVOKE, json=vault_input(owner=LEDGER), headers=mcp).status_code == 200
    assert app_client.post(INVOKE, json=vault_input(owner=PAYMENTS), headers=mcp).status_code == 403


@pytest.mark.parametrize("forgery", ["unsigned", "hs256", "foreign-key", "plugin-key", "full-user-token",
                                     "ten-years", "group-subject"])
def test_forged_or_overlong_person_tokens_are_401(app_client: TestClient, keys: BackstageKeys, forgery: str) -> None:
    now = 1_700_000_000
    user = "user:default/alice"
    obo = {
        "unsigned": lambda: jwt.encode({"sub": user, "iat": now, "exp": 2 * now}, None, algorithm="none",
                                       headers={"typ": "vnd.backstage.limited-user"}),
        "hs256": lambda: jwt.encode({"sub": user}, "k" * 32, algorithm="HS256",
                                    headers={"typ": "vnd.backstage.limited-user"}),
        "foreign-key": lambda: keys.user_token(user, key=ec.generate_private_key(ec.SECP256R1())),
        "plugin-key": lambda: keys.user_token(user, key=keys.keys[keys.current]),
        "full-user-token": lambda: keys.user_token(user, typ="vnd.backstage.user"),
        "ten-years": lambda: keys.user_token(user, ttl=10 * 365 * 86400),
        "group-subject": lambda: keys.user_token(PAYMENTS),
    }[forgery]()
    answer = app_client.post(INVOKE, json=vault_input(owner=PAYMENTS),
                             headers={"Authorization": f"Bearer {keys.token(obo=obo)}"})
    assert answer.status_code == 401, answer.text
    assert audit(app_client) == []


def test_plugin_tokens_that_live_longer_than_an_hour_are_401(app_client: TestClient, keys: BackstageKeys) -> None:
    for ttl in (10 * 365 * 86400, 2 * 3600):
        answer = app_client.get("/api/goldenpath/.backstage/actions/v1/actions",
                                headers={"Authorization": f"Bearer {keys.token(ttl=ttl)}"})
        assert answer.status_code == 401
    assert app_client.get("/api/goldenpath/.backstage/actions/v1/actions",
                          headers={"Authorization": f"Bearer {keys.token(ttl=3600)}"}).status_code == 200


def test_memberships_are_cached_briefly_and_a_removed_member_loses_access(make_app: Any, keys: BackstageKeys) -> None:
    app, _ = make_app(auth={"backstage_url": keys.url, "catalog_token": keys.catalog_token,
                            "membership_cache_seconds": 0})
    client = app.test_client()
    assert client.post(INVOKE, json=vault_input(), headers=as_user(keys, "user:default/alice")).status_code == 200
    keys.members["user:default/alice"] = []
    assert client.post(INVOKE, json=vault_input(), headers=as_user(keys, "user:default/alice")).status_code == 403
    assert keys.user_reads == 2

    app, _ = make_app(auth={"backstage_url": keys.url, "catalog_token": keys.catalog_token})
    cached = app.test_client()
    keys.members["user:default/alice"] = [PAYMENTS]
    for _ in range(3):
        assert cached.post(INVOKE, json=vault_input(), headers=as_user(keys, "user:default/alice")).status_code == 200
    assert keys.user_reads == 3


def test_a_person_cannot_act_when_memberships_cannot_be_read(make_app: Any, keys: BackstageKeys) -> None:
    app, _ = make_app(auth={"backstage_url": keys.url})  # no catalog token
    answer = app.test_client().post(INVOKE, json=vault_input(), headers=as_user(keys, "user:default/alice"))
    assert answer.status_code == 403
    assert answer.json()["error"]["problem"]["rule"] == "membership-unknown"
    app, _ = make_app(auth={"backstage_url": keys.url, "catalog_token": "not-the-right-token"})
    answer = app.test_client().post(INVOKE, json=vault_input(), headers=as_user(keys, "user:default/alice"))
    assert answer.status_code == 502, answer.text  # Backstage refused our token: fail closed, say who refused


@pytest.mark.parametrize(("owner", "rule"), [("user:default/alice", "owner-must-be-group"),
                                             ("group:other/team-payments", "owner-namespaces")])
def test_services_are_owned_by_the_platforms_groups_not_by_people_or_lookalike_groups(
    app_client: TestClient, keys: BackstageKeys, root: hvac.Client, owner: str, rule: str
) -> None:
    """A person would hold names for themselves alone; a group of another namespace shares its team slug (GitHub
    team, Kubernetes group) with the platform's group of that name. Admins cannot do it either."""
    data = vault_input(owner=owner)
    for who in ("user:default/alice", "user:default/pat") if owner.startswith("user:") else ("user:default/pat",):
        answer = app_client.post(INVOKE, json=data, headers=as_user(keys, who))
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["problem"]["rule"] == rule
    assert not path_exists(root, f"dev/payments/{data['service']}")
    plan = {**{k: data[k] for k in ("service", "system", "owner", "costCenter", "environments")}, "description": "x"}
    answer = app_client.post(PLAN_INVOKE, json=plan, headers=as_user(keys, "user:default/pat"))
    assert answer.status_code == 422
    assert [e["rule"] for e in answer.json()["error"]["problem"]["errors"]] == [rule]
