"""Acting for a team one is not in: through every writing action and its dry-run, on both routes; owner refs
spelled in other cases, namespaces or kinds; changing or re-binding what another team holds (its service, its
repository's collaborators, its owner); adopting a repository Golden Path did not create; out-of-tree actions with
no owner field or an odd one; and the read-only plan. Every refusal leaves only its evidence."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from marshmallow import Schema, fields

from backend.app import build_services, create_app
from backend.errors import ConflictError
from backend.plugin_api import Action, ActionContext, Change, Outcome, ResourceRecord
from backend.providers.github import GitHubConnection, GitHubHost
from backend.providers.local_git import LocalGitHost
from backend.providers.repositories import Protection, RepositorySpec
from backend.services.registry import ActionRegistry, builtin_actions
from tests.adversarial.conftest import (
    ALICE,
    LEDGER,
    LEDGER_TOKEN,
    MALLORY,
    NAMESPACES,
    ORG,
    PAT,
    PAYMENTS,
    PLAN,
    REGISTER,
    REPOSITORY,
    VAULT,
    Bench,
    MakeBench,
    auth_settings,
    bearer,
    invoke_url,
)
from tests.api.jwks_server import BackstageKeys
from tests.conftest import API_TOKEN, GITHUB_ORG, GITHUB_TOKEN, unique
from tests.github_emulator import GitHubEmulator

WRITERS = (VAULT, NAMESPACES, REGISTER, REPOSITORY)


def example(action_id: str, *, owner: str = PAYMENTS, service: str | None = None) -> dict[str, Any]:
    """The action's first example for a fresh service owned by `owner`."""
    action = ActionRegistry(builtin_actions()).get(action_id)
    data = copy.deepcopy(action.examples[0].input)
    name = service or unique("svc")
    data["name" if action_id == REPOSITORY else "service"] = name
    data["owner"] = owner
    return data


def provision_for_payments(bench: Bench, service: str) -> None:
    """alice makes the whole golden path for `service`."""
    for action in (REPOSITORY, VAULT, NAMESPACES, REGISTER):
        answer = bench.invoke(action, example(action, service=service), ALICE)
        assert answer.status_code == 200, (action, answer.text)


# -- a non-member, through every writing action -----------------------------------------------------------------

@pytest.mark.parametrize("action", WRITERS)
@pytest.mark.parametrize("route", ["native", "rest-team-token", "rest-dry-run"])
def test_a_non_member_is_refused_by_every_writing_action_and_writes_nothing(
    bench: Bench, action: str, route: str
) -> None:
    data = example(action)
    before = bench.snapshot()
    if route == "native":
        answer = bench.invoke(action, data, MALLORY)
        problem = answer.json()["error"]["problem"]
    else:
        answer = bench.run(action, data, bearer(LEDGER_TOKEN), dryRun=route == "rest-dry-run",
                           idempotencyKey=unique("key"))
        problem = answer.json()
    assert answer.status_code == 403, answer.text
    assert (problem["rule"], problem["errors"][0]["field"]) == ("not-a-member-of-owner", "owner")
    bench.assert_only_evidence(before, result="refused")


@pytest.mark.parametrize("owner", ["team-payments", "group:default/TEAM-PAYMENTS", "group:default/Team-Payments",
                                   "default/team-payments", "group:team-payments"])
def test_the_owner_in_other_spellings_is_still_another_team(bench: Bench, owner: str) -> None:
    before = bench.snapshot()
    answer = bench.invoke(VAULT, example(VAULT, owner=owner), MALLORY)
    assert answer.status_code == 403, (owner, answer.text)
    bench.assert_only_evidence(before, result="refused")


@pytest.mark.parametrize("owner", [
    "Group:default/team-payments", "group:Default/team-payments", "group:default/team-payments\n",
    "group:default/team-payments/x", "group:default/t\u0435am-payments", "group:default/team-payments\x00",
    "component:default/team-payments", "group:default/ team-payments", "group:default/" + "t" * 64,
    "group:default/team-payments ", "group:default/-team", "group:default/team\u200b-payments",
])
def test_owner_refs_that_are_not_entity_refs_are_400_on_both_routes(bench: Bench, owner: str) -> None:
    before = bench.snapshot()
    native = bench.invoke(VAULT, example(VAULT, owner=owner), MALLORY)
    rest = bench.run(VAULT, example(VAULT, owner=owner), bench.admin())
    assert (native.status_code, rest.status_code) == (400, 400), (owner, native.text, rest.text)
    assert "owner" in [e["field"] for e in rest.json()["errors"]]
    bench.assert_only_evidence(before, result=None)


# -- changing what another team holds ---------------------------------------------------------------------------

def test_another_team_cannot_take_change_or_rebind_a_provisioned_service(bench: Bench) -> None:
    service = unique("svc")
    provision_for_payments(bench, service)
    attacks: list[tuple[str, dict[str, Any], str, int]] = [
        (action, example(action, owner=LEDGER, service=service), MALLORY, 409) for action in WRITERS]
    attacks += [
        (VAULT, {**example(VAULT, owner=LEDGER, service=service), "system": "ledger"}, MALLORY, 409),
        (REPOSITORY, {**example(REPOSITORY, owner=LEDGER, service=service), "adopt": True}, PAT, 409),
        (REPOSITORY, {**example(REPOSITORY, owner=LEDGER, service=service),
                      "collaborators": [{"username": "mallory", "permission": "admin"}]}, MALLORY, 409),
        (REPOSITORY, {**example(REPOSITORY, service=service),
                      "collaborators": [{"username": "mallory", "permission": "admin"}]}, MALLORY, 403),
        (REGISTER, {**example(REGISTER, service=service), "system": "ledger"}, MALLORY, 403),
        (REGISTER, example(REGISTER, owner=LEDGER, service=service), PAT, 409),  # an owner change: not offered
        (VAULT, example(VAULT, owner="user:default/mallory", service=service), MALLORY, 409),
    ]
    for action, data, who, status in attacks:
        before = bench.snapshot()
        answer = bench.invoke(action, data, who)
        assert answer.status_code == status, (action, data, answer.text)
        if status == 409:
            assert answer.json()["error"]["problem"]["owner"] == PAYMENTS
        bench.assert_only_evidence(before, result="refused" if status == 403 else "failed")


def _bare_repository(bench: Bench, name: str) -> Path:
    """A repository someone made by hand, which Golden Path did not create."""
    bare = bench.tmp / "git" / ORG / f"{name}.git"
    bare.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    subprocess.run(["git", f"--git-dir={bare}", "config", "hand.made", "by-team-payments"], check=True)
    return bare


def test_only_platform_admins_adopt_a_repository_golden_path_did_not_create(bench: Bench) -> None:
    """Golden Path cannot tell whose a repository it did not create is: `adopt` (which grants the owning team and
    the collaborators access to it) is for platform admins, or any team could take any repository of the org."""
    name = unique("legacy")
    _bare_repository(bench, name)
    takeover = {**example(REPOSITORY, owner=LEDGER, service=name), "adopt": True,
                "collaborators": [{"username": "mallory", "permission": "admin"}]}
    for who, data in ((MALLORY, takeover), (ALICE, {**takeover, "owner": PAYMENTS})):
        before = bench.snapshot()
        answer = bench.invoke(REPOSITORY, data, who)
        assert answer.status_code == 403, answer.text
        problem = answer.json()["error"]["problem"]
        assert (problem["rule"], problem["errors"][0]["field"]) == ("admin-only", "adopt")
        bench.assert_only_evidence(before, result="refused")
    before = bench.snapshot()
    ledger_ci = bench.run(REPOSITORY, takeover, bearer(LEDGER_TOKEN))
    assert ledger_ci.status_code == 403 and ledger_ci.json()["rule"] == "admin-only"
    bench.assert_only_evidence(before, result="refused")
    adopted = bench.invoke(REPOSITORY, {**takeover, "owner": PAYMENTS, "collaborators": []}, PAT)
    assert adopted.status_code == 200, adopted.text


def _spec(name: str, owner: str) -> RepositorySpec:
    return RepositorySpec(org=ORG, name=name, description="x", visibility="private", default_branch="main",
                          owner_team=owner.rsplit("/", 1)[-1], owner_ref=owner, team_permission="maintain",
                          topics=(), protection=Protection(), commit_message="x", skeleton="s@1",
                          collaborators=(("mallory", "admin"),))


def test_adopt_never_takes_a_repository_golden_path_made_for_another_owner(tmp_path: Path) -> None:
    """Whatever the claims say (a database restored from before them, a second Golden Path on one org), a
    repository whose marker names another owner is theirs: adopt applies settings to unmarked repositories only."""
    host = LocalGitHost(root=str(tmp_path / "git"), base_url="http://x")
    name = unique("svc")
    host.ensure_repository(_spec(name, PAYMENTS), {"README.md": b"hi\n"}, adopt=False, dry_run=False,
                           on_change=lambda _: None)
    config = tmp_path / "git" / ORG / f"{name}.git" / "config"
    before = config.read_text()
    changes: list[Change] = []
    with pytest.raises(ConflictError) as refused:
        host.ensure_repository(_spec(name, LEDGER), {}, adopt=True, dry_run=False, on_change=changes.append)
    assert refused.value.owner == PAYMENTS
    assert config.read_text() == before and changes == []


# -- out-of-tree actions ---------------------------------------------------------------------------------------

class _NoOwner(Schema):
    target = fields.String(required=True)


class _RawOwner(Schema):
    owner = fields.Raw(required=True)
    target = fields.String(required=True)


class _LooseOwner(Schema):
    owner = fields.String(required=True)  # no entity-ref validation: the runner's canonical form still rules


def _writer(action_id: str, schema: type[Schema], **options: Any) -> tuple[Action, list[Any]]:
    calls: list[Any] = []

    def run(ctx: ActionContext) -> dict[str, Any]:
        calls.append((ctx.input, ctx.owner))
        ctx.record(Change("example.thing", action_id, Outcome.CREATED),
                   ResourceRecord(kind="example.thing", locator=unique("thing"), owner=ctx.owner))
        return {}

    return Action(id=action_id, title="t", description="d", input_schema=schema, output_schema=Schema, run=run,
                  service_field=None, **options), calls


@pytest.fixture
def plugin_bench(make_settings: Callable[..., Any], keys: BackstageKeys) -> Callable[..., Any]:
    def make(*actions: Action) -> Any:
        settings = make_settings(auth=auth_settings(keys))
        services = build_services(settings, registry=ActionRegistry([*builtin_actions(), *actions]),
                                  upgrade_schema=True)
        return create_app(settings, services=services).test_client(), services

    return make


def test_out_of_tree_writing_actions_with_no_usable_owner_are_admin_only(
    plugin_bench: Callable[..., Any], keys: BackstageKeys
) -> None:
    no_field, no_field_calls = _writer("goldenpath:example:thing:make", _NoOwner, owner_field=None)
    missing, missing_calls = _writer("goldenpath:example:other:make", _NoOwner)  # owner_field "owner", not in schema
    raw, raw_calls = _writer("goldenpath:example:raw:make", _RawOwner)
    client, services = plugin_bench(no_field, missing, raw)
    mallory = bearer(keys.token(obo=keys.user_token(MALLORY)))
    for action, data in ((no_field, {"target": "x"}), (missing, {"target": "x"}),
                         (raw, {"target": "x", "owner": [LEDGER]}), (raw, {"target": "x", "owner": {"ref": LEDGER}})):
        for headers in (mallory, bearer(LEDGER_TOKEN)):
            answer = client.post(invoke_url(action.id), json=data, headers=headers)
            assert answer.status_code == 403, (action.id, data, answer.text)
            assert answer.json()["error"]["problem"]["rule"] == "admin-only"
    assert no_field_calls == missing_calls == raw_calls == []
    assert services.stores.inventory.list() == []
    assert {e["result"] for e in services.stores.audit.list(limit=100)} == {"refused"}
    admin = client.post(invoke_url(no_field.id), json={"target": "x"}, headers=bearer(API_TOKEN))
    assert admin.status_code == 200 and len(no_field_calls) == 1


def test_an_out_of_tree_owner_field_is_compared_in_its_canonical_form(
    plugin_bench: Callable[..., Any], keys: BackstageKeys
) -> None:
    loose, calls = _writer("goldenpath:example:loose:make", _LooseOwner)
    client, _ = plugin_bench(loose)
    mallory = bearer(keys.token(obo=keys.user_token(MALLORY)))
    url = invoke_url(loose.id)
    for owner in ("team-payments\n", " Group:Default/Team-Payments ", "GROUP:DEFAULT/TEAM-PAYMENTS"):
        assert client.post(url, json={"owner": owner}, headers=mallory).status_code == 403, owner
    for owner in ("team-ledger/../team-payments", "group:default/team-ledger:team-payments", "", "group:x/y/z"):
        assert client.post(url, json={"owner": owner}, headers=mallory).status_code == 400, owner
    assert calls == []
    assert client.post(url, json={"owner": " Team-Ledger\n"}, headers=mallory).status_code == 200
    assert calls == [({"owner": LEDGER}, LEDGER)]  # the action sees the canonical owner only


# -- the read-only plan -------------------------------------------------------------------------------------------

def test_the_plan_for_another_teams_service_writes_nothing_and_says_so(bench: Bench) -> None:
    service = unique("svc")
    provision_for_payments(bench, service)
    plan = {**example(PLAN, service=service)}
    before = bench.snapshot()
    answer = bench.invoke(PLAN, plan, MALLORY)
    assert answer.status_code == 422, answer.text
    rules = {e["rule"] for e in answer.json()["error"]["problem"]["errors"]}
    assert "not-a-member-of-owner" in rules
    after = bench.snapshot()
    for place in ("inventory", "claims", "policies", "roles", "kv", "repositories", "gitops"):
        assert after[place] == before[place], place


# -- GitHub: the same rules on the real provider's emulator ------------------------------------------------------

def _github_spec(name: str, owner: str) -> RepositorySpec:
    team = owner.rsplit("/", 1)[-1]
    return replace(_spec(name, owner), org=GITHUB_ORG, owner_team=team, collaborators=(("bob", "admin"),))


def _github_files(owner: str) -> dict[str, bytes]:
    """What the skeleton renders that matters here: CODEOWNERS and the ownership marker."""
    team = owner.rsplit("/", 1)[-1]
    return {"README.md": b"# x\n", "CODEOWNERS": f"* @{GITHUB_ORG}/{team}\n".encode(),
            ".goldenpath.yaml": f"skeleton: golden-path-service\nowner: {owner}\nteam: {team}\n".encode()}


def test_adopt_never_takes_a_github_repository_golden_path_made_for_another_owner(github: GitHubEmulator) -> None:
    host = GitHubHost(GitHubConnection(api_url=github.api_url, token=GITHUB_TOKEN, seconds_between_requests=0,
                                       seconds_between_writes=0, rate_limit_budget_seconds=5), org=GITHUB_ORG)
    name = unique("svc")
    host.ensure_repository(_github_spec(name, PAYMENTS), _github_files(PAYMENTS), adopt=False, dry_run=False,
                           on_change=lambda _: None)
    writes = github.writes
    with pytest.raises(ConflictError) as refused:
        host.ensure_repository(_github_spec(name, LEDGER), _github_files(LEDGER), adopt=True, dry_run=False,
                               on_change=lambda _: None)
    assert refused.value.owner == PAYMENTS
    assert github.writes == writes
    assert name not in github.orgs[GITHUB_ORG].team_repos["team-ledger"]


def _github_bench(make_bench: MakeBench, github: GitHubEmulator) -> Bench:
    return make_bench(repositories={"provider": "github", "org": GITHUB_ORG},
                      github={"api_url": github.api_url, "token": GITHUB_TOKEN, "seconds_between_requests": 0,
                              "seconds_between_writes": 0, "rate_limit_budget_seconds": 5})


def test_an_empty_repository_someone_made_by_hand_is_not_taken_without_adopt(
    make_bench: MakeBench, github: GitHubEmulator
) -> None:
    """An empty repository is taken for one a stopped run left behind only when an earlier run of the same owner
    held its name; otherwise the first team to name it would publish into it and be granted it."""
    bench = _github_bench(make_bench, github)
    name = unique("v2")
    github.create_repo({"org": GITHUB_ORG}, {"name": name, "description": "payments v2, push coming"}, {}, "alice")
    github.orgs[GITHUB_ORG].team_repos["team-payments"][name] = "admin"
    before = bench.snapshot()
    answer = bench.invoke(REPOSITORY, {**example(REPOSITORY, owner=LEDGER, service=name),
                                       "collaborators": [{"username": "bob", "permission": "admin"}]}, MALLORY)
    assert answer.status_code == 409, answer.text
    assert name not in github.orgs[GITHUB_ORG].team_repos["team-ledger"]
    bench.assert_only_evidence(before, result="failed",
                               held=(("service", name, LEDGER, name),))
    plan = bench.invoke(PLAN, {**example(PLAN, owner=LEDGER, service=name), "system": "s"}, MALLORY)
    assert plan.status_code == 422 and "not created by Golden Path" in plan.text, plan.text
    # nor does a claim another action of hers holds for that service name make it hers to finish
    assert bench.invoke(VAULT, example(VAULT, owner=LEDGER, service=name), MALLORY).status_code == 200
    again = bench.invoke(REPOSITORY, example(REPOSITORY, owner=LEDGER, service=name), MALLORY)
    assert again.status_code == 409, again.text
    assert github.repos[(GITHUB_ORG, name)].refs == {}  # still empty: nothing was published into it


def test_a_run_that_stopped_after_creating_its_repository_is_finished_by_the_owners_retry(
    make_bench: MakeBench, github: GitHubEmulator
) -> None:
    bench = _github_bench(make_bench, github)
    data = example(REPOSITORY, owner=PAYMENTS)
    github.refuse("PUT", "/repos/{owner}/{repo}/contents/{path}", 422, "Invalid request")
    first = bench.invoke(REPOSITORY, data, ALICE)
    assert first.status_code == 502, first.text
    assert github.repos[(GITHUB_ORG, data["name"])].refs == {}  # created, left empty
    plan = bench.invoke(PLAN, {**example(PLAN, service=data["name"]), "system": "payments"}, ALICE)
    assert plan.status_code == 200, plan.text
    retry = bench.invoke(REPOSITORY, data, ALICE)
    assert retry.status_code == 200, retry.text
    assert ".goldenpath.yaml" in github.files(GITHUB_ORG, data["name"])
    taken = bench.invoke(REPOSITORY, {**data, "owner": LEDGER}, MALLORY)
    assert taken.status_code == 409


def test_what_stays_the_owners_call_collaborators_and_its_services_system(bench: Bench) -> None:
    """Within its own service the owner decides: an outside collaborator (even admin: the same power the team may
    give itself with teamPermission admin) and moving the service to another system (a Backstage System is not an
    owner Golden Path checks). Neither reaches what another team holds."""
    service = unique("svc")
    provision_for_payments(bench, service)
    outsider = {**example(REPOSITORY, service=service),
                "collaborators": [{"username": "outsider-1", "permission": "admin"}]}
    answer = bench.invoke(REPOSITORY, outsider, ALICE)
    assert answer.status_code == 200, answer.text
    config = dict(bench.snapshot()["repositories"])[f"{service}.git"]
    assert "goldenpath.collaborators=outsider-1:admin" in config
    moved = bench.invoke(REGISTER, {**example(REGISTER, service=service), "system": "ledger"}, ALICE)
    assert moved.status_code == 200, moved.text
    [row] = [r for r in bench.services.stores.inventory.list(kind="service") if r["locator"] == service]
    assert (row["system"], row["owner"]) == ("ledger", PAYMENTS)
