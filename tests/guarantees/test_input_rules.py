"""The platform's input rules, as pure functions (plus the real app's envelope validation, without any backend):
whole-value patterns and bounds, no unknown fields, the policy's reserved namespaces and names, workload overrides,
owners that are the platform's groups, environments, cost centers, tiers and visibilities, and derived names that
never meet."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from marshmallow import ValidationError
from starlette.testclient import TestClient

from backend.app import SPEC_DIR, build_services, create_app
from backend.catalog import entity_name
from backend.errors import FieldError, InputError
from backend.naming import Naming
from backend.plugin_api import dns_label, entity_ref, label_value, secret_key_name
from backend.policy import Policy
from backend.services.registry import ActionRegistry
from backend.services.runner import load_input, policy_from
from backend.settings import settings_from_dict
from backend.validators import FreeText

VAULT = ActionRegistry.discover().get("goldenpath:vault:secrets-path:create")
TOKEN = "input-rules-token-" + "t" * 20


def rules(problems: list[FieldError]) -> list[tuple[str, str]]:
    return [(p.field, str(p.rule)) for p in problems]


# -- whole values, bounded ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("validator", "longest"), [(dns_label, "a" * 63), (label_value, "A" * 63),
                                                   (secret_key_name, "K" * 128),
                                                   (entity_ref, f"group:{'n' * 63}/{'t' * 63}")])
def test_a_value_of_the_longest_allowed_length_passes_and_one_more_character_does_not(
    validator: Any, longest: str,
) -> None:
    assert validator(longest) == longest
    with pytest.raises(ValidationError, match="at most"):
        validator(longest + longest[-1])


@pytest.mark.parametrize("bad", ["payments-api\n", "payments-", "-payments", "Payments", "pay_ments", "pay ments",
                                 "payments\u2212api", "", "paymen\u212ats"])
def test_a_dns_label_is_the_whole_value(bad: str) -> None:
    with pytest.raises(ValidationError):
        dns_label(bad)


@pytest.mark.parametrize("bad", ["component:default/x", "group:default/team-a\n", "group:Default/team-a",
                                 "group:default/team-a/x", "group:default/-team", "group:"])
def test_an_entity_ref_names_a_group_or_user_and_nothing_else(bad: str) -> None:
    with pytest.raises(ValidationError):
        entity_ref(bad)


@pytest.mark.parametrize("bad", ["two\nlines", "tab\there", "nul\x00", "esc\x1b[2J", "del\x7f", "nel\x85",
                                 "csi\x9b", "line\u2028sep", "para\u2029sep", "rtl\u202eoverride", "iso\u2066late"])
def test_free_text_is_one_line_without_control_or_bidi_characters(bad: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        FreeText(max_length=100)(bad)


def test_an_unknown_field_is_refused_not_dropped() -> None:
    data = {"service": "payments-api", "system": "payments", "owner": "group:default/team-payments",
            "costCenter": "cc-1", "environments": ["dev"], "secretKeys": ["DB_PASSWORD"]}
    assert load_input(VAULT.input_schema, data)["service"] == "payments-api"
    for extra in ({"Owner": "group:default/platform"}, {"adopt": True}, {"owner ": "x"}):
        with pytest.raises(InputError) as refused:
            load_input(VAULT.input_schema, {**data, **extra})
        assert [(e.field, e.message) for e in refused.value.errors] == [(next(iter(extra)), "is not a known field")]


# -- the REST envelope, checked by the published OpenAPI description --------------------------------------------------

def spec_patterns(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("pattern"), str):
            yield node["pattern"]
        for value in node.values():
            yield from spec_patterns(value)
    elif isinstance(node, list):
        for value in node:
            yield from spec_patterns(value)


def test_every_published_pattern_refuses_a_trailing_newline() -> None:
    """connexion checks patterns with re.search, where `$` also matches before a final newline."""
    patterns = list(spec_patterns(yaml.safe_load((Path(SPEC_DIR) / "goldenpath.yaml").read_text())))
    assert len(patterns) >= 8
    for pattern in patterns:
        assert pattern.startswith("^") and pattern.endswith("$(?!\\n)"), pattern


REGISTER_RUNS = "/api/v1/actions/goldenpath:catalog:service:register/runs"
REGISTRATION = {"service": "payments-api", "system": "payments", "owner": "group:default/team-payments",
        "costCenter": "cc-1234", "environments": ["dev"], "description": "Payments API"}


@pytest.fixture
def rest(tmp_path: Path) -> TestClient:
    folder = tmp_path
    settings = settings_from_dict({"database": {"url": f"sqlite:///{folder}/db"}, "auth": {"token": TOKEN},
                                   "audit": {"key_file": str(folder / "k"), "witness_file": str(folder / "w")}})
    app = create_app(settings, services=build_services(settings, upgrade_schema=True))
    client: TestClient = app.test_client(headers={"Authorization": f"Bearer {TOKEN}"})
    return client


@pytest.mark.parametrize(("field", "envelope"), [
    ("idempotencyKey", {"idempotencyKey": "task-1\n"}), ("idempotencyKey", {"idempotencyKey": "task 1"}),
    ("idempotencyKey", {"idempotencyKey": "k" * 201}), ("context", {"context": {"user": "user:default/alice\n"}}),
    ("context", {"context": {"taskId": "t\n"}}), ("context", {"context": {"templateRef": "template:x\n"}}),
    ("context", {"context": {"admin": True}}), ("runAs", {"runAs": "user:default/pat"}),
], ids=["key-newline", "key-space", "key-long", "user-newline", "task-newline", "template-newline", "context-extra",
        "envelope-extra"])
def test_the_run_envelope_is_checked_as_strictly_as_the_input(rest: TestClient, field: str,
                                                               envelope: dict[str, Any]) -> None:
    answer = rest.post(REGISTER_RUNS, json={"input": REGISTRATION, **envelope})
    assert answer.status_code == 400, answer.text
    assert field in answer.text
    assert rest.get("/api/v1/runs").json()["items"] == []


def test_a_valid_envelope_is_accepted(rest: TestClient) -> None:
    envelope = {"idempotencyKey": "task-1/step:1.a_b", "context": {"user": "user:default/alice", "taskId": "t-1"}}
    answer = rest.post(REGISTER_RUNS, json={"input": REGISTRATION, **envelope, "dryRun": False})
    assert answer.status_code == 201, answer.text


# -- the policy -------------------------------------------------------------------------------------------------------

DEFAULTS = policy_from(settings_from_dict({}))
REQUEST = {"service": "payments-api", "system": "payments", "owner": "group:default/team-payments",
           "costCenter": "cc-1234", "environments": ["dev"]}


def test_a_request_within_the_rules_has_no_problem() -> None:
    assert DEFAULTS.request_problems(REQUEST) == []


@pytest.mark.parametrize("namespace", ["default", "kube-system", "kube-public", "goldenpath", "goldenpath-system",
                                       "openbao", "vault-agent", "backstage-x", "argocd", "flux-system", "cert-manager",
                                       "ingress-nginx"])
def test_reserved_namespaces_are_refused_whether_derived_or_requested(namespace: str) -> None:
    assert DEFAULTS.is_reserved_namespace(namespace)
    pattern = Policy(naming=Naming(namespace_pattern="{service}"), reserved_namespaces=DEFAULTS.reserved_namespaces)
    assert ("service", "reserved-namespaces") in rules(pattern.environment_problems(["dev"], service=namespace,
                                                                                    system="x"))
    for overrides in (False, True):
        policy = Policy(reserved_namespaces=DEFAULTS.reserved_namespaces, allow_workload_overrides=overrides)
        found = policy.workload_problems({"namespace": namespace}, derived_namespaces={"dev": namespace},
                                         derived_account="payments-api")
        assert ("namespace", "reserved-namespaces") in rules(found)


@pytest.mark.parametrize("namespace", ["kubernetes", "my-kube-system", "payments-dev", "ingress", "argocd-apps",
                                       "my-default"])
def test_namespaces_that_only_resemble_reserved_ones_are_free(namespace: str) -> None:
    assert not DEFAULTS.is_reserved_namespace(namespace)


def test_a_service_whose_derived_namespace_is_reserved_is_refused() -> None:
    assert rules(DEFAULTS.environment_problems(["dev"], service="kube", system="x")) == [
        ("service", "reserved-namespaces")]  # kube-dev matches kube-*


def test_without_workload_overrides_secrets_bind_only_to_the_services_own_workload() -> None:
    derived = {"dev": "payments-api-dev", "prod": "payments-api-prod"}
    ok = DEFAULTS.workload_problems({"namespace": "payments-api-dev", "serviceAccount": "payments-api"},
                                    derived_namespaces={"dev": "payments-api-dev"}, derived_account="payments-api")
    assert ok == []
    for data in ({"namespace": "attacker-ns"}, {"namespace": "payments-api-dev"}, {"serviceAccount": "default"},
                 {"namespace": "payments-api-prod", "serviceAccount": "payments-api"}):
        found = DEFAULTS.workload_problems(data, derived_namespaces=derived, derived_account="payments-api")
        assert found and {rule for _, rule in rules(found)} == {"workload-overrides"}, data
    allowed = Policy(allow_workload_overrides=True)
    assert allowed.workload_problems({"namespace": "other-ns", "serviceAccount": "other"}, derived_namespaces=derived,
                                     derived_account="payments-api") == []


@pytest.mark.parametrize(("owner", "rule"), [("user:default/alice", "owner-must-be-group"),
                                             ("group:other/team-payments", "owner-namespaces"),
                                             ("group:platform/team-payments", "owner-namespaces")])
def test_services_are_owned_by_groups_of_the_platforms_namespaces(owner: str, rule: str) -> None:
    assert rules(DEFAULTS.owner_problems(owner)) == [("owner", rule)]
    assert DEFAULTS.owner_problems("group:default/team-payments") == []
    wider = Policy(owner_namespaces=("default", "platform"))
    assert wider.owner_problems("group:platform/team-payments") == []


@pytest.mark.parametrize("service", ["backstage", "default", "goldenpath", "kubernetes", "vault"])
def test_reserved_service_names_are_refused(service: str) -> None:
    assert ("service", "reserved-names") in rules(DEFAULTS.service_problems(service, system="payments"))
    assert DEFAULTS.service_problems("payments-api", system=service) == []  # a system may be called so


def test_the_platforms_naming_rule_is_matched_by_the_whole_service_name() -> None:
    policy = Policy(service_pattern=r"[a-z]+-api")
    assert policy.service_problems("payments-api", system="x") == []
    for bad in ("payments-api-v2", "x-payments-api", "payments"):
        assert rules(policy.service_problems(bad, system="x")) == [("service", "service-naming")]


def test_a_service_whose_service_account_is_no_dns_label_is_refused() -> None:
    policy = Policy(naming=Naming(service_account_pattern="{system}-{service}"))
    assert rules(policy.service_problems("s" * 40, system="y" * 30)) == [("service", "derived-names")]


def test_only_the_platforms_environments_served_by_a_cluster_are_allowed() -> None:
    assert rules(DEFAULTS.environment_problems(["dev", "qa", "prod"], service="a", system="b")) == [
        ("environments.1", "allowed-environments")]
    served = Policy(clusters={"dev": ("eu",), "prod": ()})
    assert rules(served.environment_problems(["dev", "prod", "staging"], service="a", system="b")) == [
        ("environments.1", "environment-clusters"), ("environments.2", "environment-clusters")]


def test_a_cost_center_is_required_and_matches_the_whole_format() -> None:
    assert rules(DEFAULTS.cost_center_problems("")) == [("costCenter", "cost-center-required")]
    policy = Policy(cost_center_pattern=r"cc-\d{4}")
    assert policy.cost_center_problems("cc-1234") == []
    for bad in ("cc-12345", "xcc-1234", "cc-123"):
        assert rules(policy.cost_center_problems(bad)) == [("costCenter", "cost-center-format")]


def test_only_the_platforms_visibilities_and_tiers() -> None:
    assert [DEFAULTS.visibility_problems(v) == [] for v in ("private", "internal", "public")] == [True, True, False]
    assert rules(Policy(visibilities=("private",)).visibility_problems("internal")) == [
        ("visibility", "allowed-visibilities")]
    assert [DEFAULTS.tier_problems(t) == [] for t in ("small", "large", "xlarge")] == [True, True, False]


# -- derived names ---------------------------------------------------------------------------------------------------

def test_derived_names_join_with_a_character_no_dns_label_holds() -> None:
    naming = Naming()
    one, other = {"service": "b-c", "system": "a", "environment": "dev"}, {"service": "c", "system": "a-b",
                                                                          "environment": "dev"}
    for name in ("vault_policy", "vault_role", "secrets_path"):
        extra = {"audience": "workload"} if name == "vault_policy" else {}
        assert getattr(naming, name)(**one, **extra) != getattr(naming, name)(**other, **extra), name
    assert naming.vault_policy(**one, audience="workload") != naming.vault_policy(**one, audience="owners")


def test_long_catalog_names_stay_distinct_and_valid() -> None:
    first = entity_name("s" * 60, "namespace", "dev", "eu-west")
    second = entity_name("s" * 60, "namespace", "dev", "eu-east")
    assert first != second
    assert all(len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9_.]*[a-z0-9])?", name) for name in (first, second))
    assert entity_name("a", "namespace", "dev", "eu-west") != entity_name("a", "namespace", "dev-eu", "west")
