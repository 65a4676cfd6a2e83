"""Who may act for whom, as pure rules (plus a live Backstage catalog for groups and real bare repositories for git
reads): owners compared as canonical refs, memberships from the catalog and briefly cached, admins from the admin
groups only, a claimed user never a person, writing actions refused to non-members and admin-only fields to
non-admins, and git reads by visibility."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from marshmallow import Schema

from backend.api.git_access import Decision, RepositoryAccess, Target, decide, repository_access
from backend.errors import NotAllowedError
from backend.ownership import canonical_ref, same_owner
from backend.plugin_api import Action, Requester
from backend.providers.backstage import BackstageDirectory
from backend.services.auth import Principal
from backend.services.identity import Identities
from backend.services.registry import ActionRegistry
from backend.services.runner import authorization_problem
from tests.api.jwks_server import BackstageKeys

PAYMENTS, LEDGER, PLATFORM = "group:default/team-payments", "group:default/team-ledger", "group:default/platform"
ALICE, MALLORY, PAT = "user:default/alice", "user:default/mallory", "user:default/pat"
REPOSITORY = "goldenpath:git:repository:create"


def member_of(*groups: str, user: str | None = ALICE, admin: bool = False) -> Requester:
    return Requester(user=user, caller="backstage:scaffolder", groups=frozenset(groups), admin=admin)


# -- owners ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spelling", ["team-payments", "default/team-payments", "group:default/team-payments",
                                      "Group:Default/Team-Payments", "TEAM-PAYMENTS", " group:default/team-payments"])
def test_every_spelling_of_a_team_is_that_team(spelling: str) -> None:
    assert canonical_ref(spelling) == PAYMENTS
    assert member_of(PAYMENTS).may_act_for(spelling)
    assert same_owner(spelling, PAYMENTS) and same_owner(PAYMENTS, spelling)


@pytest.mark.parametrize("other", ["user:default/team-payments", "group:other/team-payments", "team-payment",
                                   "group:default/team-payments-eu", "", "not a ref", "group:default/team:payments"])
def test_lookalikes_of_a_team_are_another_owner(other: str) -> None:
    assert not member_of(PAYMENTS).may_act_for(other)
    assert not same_owner(other, PAYMENTS)


def test_nothing_recorded_is_nobodys() -> None:
    assert not same_owner(None, PAYMENTS) and not same_owner("", PAYMENTS)


def test_a_person_acts_for_their_groups_and_themselves_only() -> None:
    alice = member_of(PAYMENTS)
    assert alice.may_act_for(PAYMENTS) and alice.may_act_for("User:Default/Alice")
    assert not alice.may_act_for(LEDGER) and not alice.may_act_for(MALLORY)
    # a person whose name is a team's is not that team
    namesake = member_of(user="user:default/team-payments")
    assert not namesake.may_act_for(PAYMENTS) and not namesake.may_act_for("team-payments")
    # a credential with no person acts for its groups only
    assert member_of(LEDGER, user=None).may_act_for("team-ledger")
    assert not member_of(LEDGER, user=None).may_act_for(PAYMENTS)


def test_an_admin_acts_for_every_owner() -> None:
    admin = member_of(user=PAT, admin=True)
    assert all(admin.may_act_for(owner) for owner in (PAYMENTS, LEDGER, "team-anything"))


# -- identities: groups from the catalog -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def catalog() -> Iterator[BackstageKeys]:
    server = BackstageKeys()
    server.members.update({ALICE: [PAYMENTS], MALLORY: [LEDGER], PAT: [PLATFORM, LEDGER]})
    yield server
    server.stop()


def identities(catalog: BackstageKeys, *, cache_seconds: float = 60.0) -> Identities:
    directory = BackstageDirectory(base_url=catalog.url, token=lambda: catalog.catalog_token)
    return Identities(directory, admin_groups=(PLATFORM,), cache_seconds=cache_seconds)


def person(user: str) -> Principal:
    return Principal(caller="backstage:scaffolder", user=user, kind="backstage")


def test_a_persons_groups_come_from_the_catalog_and_only_admin_groups_make_admins(catalog: BackstageKeys) -> None:
    people = identities(catalog)
    alice, mallory, pat = (people.requester(person(u)) for u in (ALICE, MALLORY, PAT))
    assert (alice.groups, alice.admin) == (frozenset({PAYMENTS}), False)
    assert (mallory.groups, mallory.admin) == (frozenset({LEDGER}), False)
    assert (pat.groups, pat.admin) == (frozenset({PLATFORM, LEDGER}), True)
    assert not mallory.may_act_for(PAYMENTS) and pat.may_act_for(PAYMENTS)
    stranger = people.requester(person("user:default/stranger"))  # not in the catalog: no group at all
    assert (stranger.groups, stranger.admin, stranger.may_act_for(PAYMENTS)) == (frozenset(), False, False)


def test_a_removed_membership_stops_counting_once_the_cache_expires(catalog: BackstageKeys) -> None:
    catalog.members["user:default/bob"] = [PAYMENTS]
    people = identities(catalog, cache_seconds=0.2)
    assert people.requester(person("user:default/bob")).may_act_for(PAYMENTS)
    catalog.members["user:default/bob"] = []
    time.sleep(0.25)
    assert not people.requester(person("user:default/bob")).may_act_for(PAYMENTS)


def test_memberships_are_cached_within_their_lifetime(catalog: BackstageKeys) -> None:
    people = identities(catalog, cache_seconds=60)
    before = catalog.user_reads
    for _ in range(3):
        people.requester(person(ALICE))
    assert catalog.user_reads == before + 1


def test_without_a_catalog_a_person_acts_for_no_owner() -> None:
    people = Identities(None, admin_groups=(PLATFORM,), cache_seconds=60)
    with pytest.raises(NotAllowedError) as refused:
        people.requester(person(ALICE))
    assert refused.value.rule == "membership-unknown"


def test_a_claimed_user_is_carried_as_a_claim_and_grants_nothing(catalog: BackstageKeys) -> None:
    credential = Principal(caller="token:ledger-ci", user=None, kind="static", groups=frozenset({LEDGER}))
    requester = identities(catalog).requester(credential, claimed_user=ALICE)
    assert (requester.user, requester.claimed_user, requester.actor) == (None, ALICE, "token:ledger-ci")
    assert (requester.groups, requester.admin) == (frozenset({LEDGER}), False)
    assert not requester.may_act_for(PAYMENTS)


def test_a_credential_keeps_its_own_groups_and_admin_flag(catalog: BackstageKeys) -> None:
    admin = Principal(caller="token:default", user=None, kind="static", admin=True)
    assert identities(catalog).requester(admin).admin
    plugin = Principal(caller="backstage:mcp-actions", user=None, kind="backstage", groups=frozenset({LEDGER}))
    assert identities(catalog).requester(plugin) == Requester(user=None, caller="backstage:mcp-actions",
                                                              groups=frozenset({LEDGER}))


# -- who may run a writing action --------------------------------------------------------------------------------

def action(**attributes: Any) -> Action:
    return Action(id="goldenpath:test:thing:create", title="Thing", description="Makes a thing.",
                  input_schema=Schema, output_schema=Schema, run=lambda ctx: {}, **attributes)


def test_only_members_of_the_owner_group_or_admins_may_run_a_writing_action() -> None:
    writer = action()
    assert authorization_problem(writer, {"owner": PAYMENTS}, member_of(PAYMENTS)) is None
    assert authorization_problem(writer, {"owner": LEDGER}, member_of(user=PAT, admin=True)) is None
    refused = authorization_problem(writer, {"owner": PAYMENTS}, member_of(LEDGER, user=MALLORY))
    assert refused is not None
    assert (refused.status, refused.rule, refused.field) == (403, "not-a-member-of-owner", "owner")
    assert refused.detail == f"{MALLORY} is not a member of {PAYMENTS}, so may not act for it (not-a-member-of-owner)"
    credential = authorization_problem(writer, {"owner": PAYMENTS}, member_of(LEDGER, user=None))
    assert credential is not None and credential.rule == "not-a-member-of-owner"


@pytest.mark.parametrize("data", [{}, {"owner": None}, {"owner": ["group:default/team-payments"]}])
def test_a_writing_action_that_names_no_owner_is_admin_only(data: dict[str, Any]) -> None:
    for writer in (action(), action(owner_field=None)):
        refused = authorization_problem(writer, data, member_of(PAYMENTS))
        assert refused is not None and (refused.status, refused.rule) == (403, "admin-only")
        assert authorization_problem(writer, data, member_of(user=PAT, admin=True)) is None


def test_read_only_actions_need_no_membership() -> None:
    assert authorization_problem(action(read_only=True), {"owner": PAYMENTS}, member_of(user=MALLORY)) is None


def test_admin_only_fields_are_refused_to_members_set_and_allowed_unset() -> None:
    repository = ActionRegistry.discover().get(REPOSITORY)
    assert repository.admin_fields == ("adopt",)
    data = {"owner": PAYMENTS, "name": "payments-api"}
    refused = authorization_problem(repository, {**data, "adopt": True}, member_of(PAYMENTS))
    assert refused is not None and (refused.status, refused.rule, refused.field) == (403, "admin-only", "adopt")
    assert authorization_problem(repository, {**data, "adopt": False}, member_of(PAYMENTS)) is None
    assert authorization_problem(repository, {**data, "adopt": True}, member_of(user=PAT, admin=True)) is None
    outsider = authorization_problem(repository, {**data, "adopt": True}, member_of(LEDGER, user=MALLORY))
    assert outsider is not None and outsider.rule == "admin-only"  # the stronger rule is named first


# -- git reads ---------------------------------------------------------------------------------------------------

def bare_repository(root: Path, name: str, **config: str) -> Target:
    path = root / "acme" / f"{name}.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(path)], check=True)
    for key, value in config.items():
        subprocess.run(["git", f"--git-dir={path}", "config", f"goldenpath.{key}", value], check=True)
    return Target(org="acme", name=name)


def test_a_repositorys_visibility_is_private_unless_recorded_public_or_internal(tmp_path: Path) -> None:
    cases = {"none": {}, "public": {"visibility": "public"}, "internal": {"visibility": "internal"},
             "private": {"visibility": "private"}, "odd": {"visibility": "everyone"}, "upper": {"visibility": "PUBLIC"}}
    found = {name: repository_access(tmp_path, bare_repository(tmp_path, name, **config))
             for name, config in cases.items()}
    assert {name: access.visibility if access else None for name, access in found.items()} == {
        "none": "private", "public": "public", "internal": "internal", "private": "private", "odd": "private",
        "upper": "private"}


def test_a_repositorys_owner_is_read_as_a_canonical_ref(tmp_path: Path) -> None:
    full = bare_repository(tmp_path, "full", owner="Group:Default/Team-Payments", **{"owner-team": "team-ledger"})
    team_only = bare_repository(tmp_path, "team", **{"owner-team": "team-payments"})
    nobody = bare_repository(tmp_path, "nobody")
    assert [getattr(repository_access(tmp_path, t), "owner", "-") for t in (full, team_only, nobody)] == [
        PAYMENTS, PAYMENTS, None]


def test_a_link_inside_the_root_to_a_repository_elsewhere_is_no_repository(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    bare_repository(elsewhere, "secret", visibility="public")
    (root / "acme").mkdir(parents=True)
    (root / "acme" / "linked.git").symlink_to(elsewhere / "acme" / "secret.git")
    assert repository_access(root, Target(org="acme", name="linked")) is None
    assert repository_access(root, Target(org="acme", name="missing")) is None


def test_visibility_decides_who_reads() -> None:
    owner_group = frozenset({PAYMENTS})
    member = Principal(caller="token:a", user=None, kind="static", groups=owner_group)
    stranger = Principal(caller="token:b", user=None, kind="static")
    admin = Principal(caller="token:c", user=None, kind="static", admin=True)

    def may_read(principal: Principal, owner: str) -> bool:
        return principal.admin or owner in principal.groups

    public, internal = RepositoryAccess("public", PAYMENTS), RepositoryAccess("internal", PAYMENTS)
    private, unowned = RepositoryAccess("private", PAYMENTS), RepositoryAccess("private", None)
    # anonymous: only public; private, internal and missing all ask for a credential alike
    assert [decide(r, None, may_read) for r in (public, internal, private, unowned, None)] == [
        Decision.SERVE, *[Decision.CHALLENGE] * 4]
    # any valid credential reads internal; private only its owner's members or admins; an unowned one only admins
    table = {who: [decide(r, p, may_read) for r in (internal, private, unowned, None)]
             for who, p in (("member", member), ("stranger", stranger), ("admin", admin))}
    assert table == {
        "member": [Decision.SERVE, Decision.SERVE, Decision.HIDE, Decision.HIDE],
        "stranger": [Decision.SERVE, Decision.HIDE, Decision.HIDE, Decision.HIDE],
        "admin": [Decision.SERVE, Decision.SERVE, Decision.SERVE, Decision.HIDE],
    }
