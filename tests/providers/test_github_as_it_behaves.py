"""GitHubHost against GitHub as it really behaves: the emulator switched to each of GitHub's documented behaviours.

Repositories GitHub is still creating, roles inherited from parent teams and the organization's base role,
renamed and transferred repositories (301 on reads, 307 on writes), secondary limits that name no wait,
`Link` pagination, conditional requests (304s cost no rate limit) and repository rulesets.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from backend.errors import ConflictError, UpstreamError, UpstreamUnavailable
from backend.providers.github import GitHubHost
from backend.providers.repositories import Protection
from tests.conftest import GITHUB_ORG
from tests.github_emulator import GitHubEmulator
from tests.providers.test_github import ensure, host_for, make_spec, skeleton_files

RULESETS = "/repos/{owner}/{repo}/rulesets"
RULESET = "/repos/{owner}/{repo}/rulesets/{ruleset_id}"
TEAM_REPO = "/orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}"
COLLABORATOR = "/repos/{owner}/{repo}/collaborators/{username}"


class FakeTime:
    """A clock that moves only when the code under test sleeps: rate-limit waits cost no real time."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def writes_since(github: GitHubEmulator, mark: int) -> list[str]:
    return [f"{method} {template}" for method, template, _ in github.log[mark:] if method != "GET"]


def ruleset_spec(**overrides: Any) -> Any:
    return make_spec(protection=Protection(required_status_checks=("ci",)), **overrides)


# --- 1. a repository GitHub is still creating -------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 409])
def test_a_repository_github_is_still_creating_is_seeded_once_it_answers(github: GitHubEmulator, status: int) -> None:
    time = FakeTime()
    host = GitHubHost(host_for(github).connection, org=GITHUB_ORG, clock=time.clock, sleep=time.sleep)
    github.creation_lag(3, status=status)
    spec, files = make_spec(), skeleton_files()
    result, _ = ensure(host, spec, files)
    assert github.files(GITHUB_ORG, spec.name) == files
    assert [c.sha for c in github.history(GITHUB_ORG, spec.name)] == [result.commit_hash]  # one commit, no seed
    assert len(time.slept) == 3 and sum(time.slept) < 5


def test_a_creation_that_outlasts_the_window_is_retryable_and_a_rerun_finishes(github: GitHubEmulator) -> None:
    time = FakeTime()
    host = GitHubHost(replace(host_for(github).connection, creation_window_seconds=3), org=GITHUB_ORG,
                      clock=time.clock, sleep=time.sleep)
    github.creation_lag(10)
    spec, files = make_spec(), skeleton_files()
    with pytest.raises(UpstreamUnavailable, match=rf"still creating {GITHUB_ORG}/{spec.name}") as raised:
        ensure(host, spec, files)
    assert raised.value.retryable and raised.value.status == 503
    assert 3 <= sum(time.slept) <= 3.01
    github.creation_lag(0)
    for _ in range(12):  # what is left of the lag ends by itself, as GitHub's does
        try:
            result, _ = ensure(host, spec, files)
            break
        except UpstreamError as still_creating:
            assert still_creating.retryable, still_creating
    assert github.files(GITHUB_ORG, spec.name) == files and len(github.history(GITHUB_ORG, spec.name)) == 1
    assert result.settings["codeowners"] == "valid"


# --- 2. inherited roles -------------------------------------------------------------------------------------


def test_a_parent_teams_higher_role_does_not_fail_a_correct_run(github: GitHubEmulator) -> None:
    host = host_for(github)
    github.add_team(GITHUB_ORG, "platform")
    github.add_team(GITHUB_ORG, "team-payments", parent="platform")
    spec, files = make_spec(team_permission="push"), skeleton_files()
    ensure(host, spec, files)
    github.orgs[GITHUB_ORG].team_repos["platform"][spec.name] = "admin"
    mark = len(github.log)
    result, changes = ensure(host, spec, files)
    assert writes_since(github, mark) == []
    assert {c.kind: c.outcome.value for c in changes}["repository.teams"] == "unchanged"
    assert result.settings["teams"] == {"team-payments": "push"}  # its own grant, which the parent's does not hide


def test_a_direct_grant_above_what_was_asked_is_set_back(github: GitHubEmulator) -> None:
    host = host_for(github)
    github.add_team(GITHUB_ORG, "platform")
    github.add_team(GITHUB_ORG, "team-payments", parent="platform")
    spec, files = make_spec(team_permission="push"), skeleton_files()
    ensure(host, spec, files)
    github.orgs[GITHUB_ORG].team_repos["platform"][spec.name] = "pull"
    github.orgs[GITHUB_ORG].team_repos["team-payments"][spec.name] = "admin"  # raised by hand; no parent explains it
    mark = len(github.log)
    result, _ = ensure(host, spec, files)
    assert writes_since(github, mark) == [f"PUT {TEAM_REPO}"]
    assert github.orgs[GITHUB_ORG].team_repos["team-payments"][spec.name] == "push"
    assert result.settings["teams"] == {"team-payments": "push"}


def test_a_team_grant_that_did_not_apply_still_fails_closed_under_a_parent(github: GitHubEmulator) -> None:
    host = host_for(github)
    github.add_team(GITHUB_ORG, "platform")
    github.add_team(GITHUB_ORG, "team-payments", parent="platform")
    spec, files = make_spec(team_permission="maintain"), skeleton_files()
    ensure(host, spec, files)
    github.orgs[GITHUB_ORG].team_repos["platform"][spec.name] = "push"  # below what was asked: no excuse
    del github.orgs[GITHUB_ORG].team_repos["team-payments"][spec.name]
    github.ignore("PUT", TEAM_REPO)
    with pytest.raises(UpstreamError, match="did not apply the teams"):
        ensure(host, spec, files)


def test_a_member_whose_base_role_is_higher_is_not_failed(github: GitHubEmulator) -> None:
    host = host_for(github)
    github.orgs[GITHUB_ORG].base_permission = "admin"
    spec, files = make_spec(collaborators=(("alice", "push"),)), skeleton_files()
    result, _ = ensure(host, spec, files)
    assert github.repos[(GITHUB_ORG, spec.name)].collaborators == {"alice": "write"}  # the direct grant asked for
    assert result.settings["collaborators"] == {"alice": "admin"}  # GitHub reports the highest role
    mark = len(github.log)
    ensure(host, spec, files)
    assert writes_since(github, mark) == []


def test_a_person_reached_only_through_a_team_is_granted_directly(github: GitHubEmulator) -> None:
    host = host_for(github)
    github.add_team(GITHUB_ORG, "team-payments", members=("alice",))
    spec, files = make_spec(collaborators=(("alice", "triage"),)), skeleton_files()
    ensure(host, spec, files)  # team-payments has maintain: alice's effective role is higher, her direct grant asked
    assert github.repos[(GITHUB_ORG, spec.name)].collaborators == {"alice": "triage"}
    mark = len(github.log)
    result, _ = ensure(host, spec, files)
    assert writes_since(github, mark) == [] and result.settings["collaborators"] == {"alice": "maintain"}


def test_a_direct_collaborator_raised_by_hand_is_set_back(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = make_spec(collaborators=(("alice", "push"),)), skeleton_files()
    ensure(host, spec, files)
    github.repos[(GITHUB_ORG, spec.name)].collaborators["alice"] = "admin"  # no team or base role explains it
    mark = len(github.log)
    result, _ = ensure(host, spec, files)
    assert writes_since(github, mark) == [f"PUT {COLLABORATOR}"]
    assert github.repos[(GITHUB_ORG, spec.name)].collaborators == {"alice": "write"}
    assert result.settings["collaborators"] == {"alice": "write"}


def test_a_collaborator_grant_that_did_not_apply_fails_closed_despite_the_base_role(github: GitHubEmulator) -> None:
    host = host_for(github)
    github.orgs[GITHUB_ORG].base_permission = "admin"
    github.ignore("PUT", COLLABORATOR)
    spec = make_spec(collaborators=(("alice", "push"),))
    with pytest.raises(UpstreamError, match="did not apply the collaborator alice"):
        ensure(host, spec, skeleton_files())


def test_a_pending_invitation_offering_more_than_asked_is_set_back(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = make_spec(collaborators=(("bob", "pull"),)), skeleton_files()
    ensure(host, spec, files)
    github.repos[(GITHUB_ORG, spec.name)].invitations["bob"] = "admin"  # an invitation is exactly what it offers
    mark = len(github.log)
    result, _ = ensure(host, spec, files)
    assert writes_since(github, mark) == [f"PUT {COLLABORATOR}"]
    assert github.repos[(GITHUB_ORG, spec.name)].invitations == {"bob": "read"}
    assert result.settings["collaborators"] == {"bob": "read"}


# --- 3. renamed and transferred repositories ------------------------------------------------------------------


def test_our_renamed_repository_is_followed_to_its_new_name(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = make_spec(), skeleton_files()
    first, _ = ensure(host, spec, files)
    github.rename(GITHUB_ORG, spec.name, f"{spec.name}-renamed")
    mark = len(github.log)
    result, changes = ensure(host, spec, files)
    assert writes_since(github, mark) == []
    assert result.remote_url.endswith(f"/{GITHUB_ORG}/{spec.name}-renamed.git")
    assert result.settings["renamedFrom"] == f"{GITHUB_ORG}/{spec.name}"
    assert result.commit_hash == first.commit_hash
    assert {c.locator for c in changes} == {f"{GITHUB_ORG}/{spec.name}-renamed"}
    assert (GITHUB_ORG, spec.name) not in github.repos  # nothing was created under the old name


def test_a_renamed_repository_that_is_not_ours_is_a_conflict_naming_both(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec = make_spec()
    github.create_repo({"org": GITHUB_ORG}, {"name": spec.name, "auto_init": True}, {}, "someone")
    github.rename(GITHUB_ORG, spec.name, "handmade")
    for adopt in (False, True):
        with pytest.raises(ConflictError, match=rf"{spec.name} was renamed to {GITHUB_ORG}/handmade"):
            ensure(host, spec, skeleton_files(), adopt=adopt)


def test_another_teams_renamed_repository_stays_theirs(github: GitHubEmulator) -> None:
    host = host_for(github)
    theirs = make_spec(owner_team="team-ledger", owner_ref="group:default/team-ledger")
    ensure(host, theirs, skeleton_files(team="team-ledger"))
    github.rename(GITHUB_ORG, theirs.name, f"{theirs.name}-2")
    with pytest.raises(ConflictError, match="owned by group:default/team-ledger"):
        ensure(host, replace(theirs, owner_team="team-payments", owner_ref="group:default/team-payments"),
               skeleton_files())


def test_a_repository_transferred_away_is_a_conflict(github: GitHubEmulator) -> None:
    host = host_for(github)
    github.add_org("elsewhere", teams=("team-payments",))
    spec, files = make_spec(), skeleton_files()
    ensure(host, spec, files)
    github.transfer(GITHUB_ORG, spec.name, "elsewhere")
    mark = len(github.log)
    with pytest.raises(ConflictError, match=rf"transferred to elsewhere/{spec.name}"):
        ensure(host, spec, files)
    assert writes_since(github, mark) == []


def test_a_rename_between_read_and_write_is_a_named_retryable_problem(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = make_spec(), skeleton_files()
    ensure(host, spec, files)
    github.repos[(GITHUB_ORG, spec.name)].topics = ["drifted"]
    github.before_next("PUT", "/repos/{owner}/{repo}/topics",
                       lambda: github.rename(GITHUB_ORG, spec.name, f"{spec.name}-new"))
    with pytest.raises(UpstreamError, match=rf"HTTP 307\): the repository was renamed or transferred to "
                                            rf"{GITHUB_ORG}/{spec.name}-new") as raised:
        ensure(host, spec, files)
    assert raised.value.retryable
    result, _ = ensure(host, spec, files)
    assert github.repos[(GITHUB_ORG, f"{spec.name}-new")].topics == ["payments", "python"]
    assert result.settings["topics"] == ["payments", "python"]


def test_a_rename_during_publishing_is_retryable_and_the_rerun_publishes(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = make_spec(), skeleton_files()
    github.before_next("POST", "/repos/{owner}/{repo}/git/trees",
                       lambda: github.rename(GITHUB_ORG, spec.name, f"{spec.name}-moved"))
    with pytest.raises(UpstreamError, match="HTTP 307") as raised:
        ensure(host, spec, files)
    assert raised.value.retryable and not isinstance(raised.value.__cause__, KeyError)
    result, _ = ensure(host, spec, files)  # the seed's marker says it is ours, publishing
    assert github.files(GITHUB_ORG, f"{spec.name}-moved") == files
    assert result.settings["renamedFrom"] == f"{GITHUB_ORG}/{spec.name}"


# --- 4. secondary limits that name no wait ----------------------------------------------------------------


def test_a_secondary_limit_without_retry_after_is_waited_out_a_minute_then_longer(github: GitHubEmulator) -> None:
    time = FakeTime()
    host = GitHubHost(replace(host_for(github).connection, rate_limit_budget_seconds=180), org=GITHUB_ORG,
                      clock=time.clock, sleep=time.sleep)
    github.secondary_limit(2, retry_after=None)
    spec, files = make_spec(), skeleton_files()
    ensure(host, spec, files)
    assert [s for s in time.slept if s >= 60] == [60, 120]
    assert github.files(GITHUB_ORG, spec.name) == files


def test_a_limit_beyond_the_budget_says_when_to_retry_and_pauses_every_run(github: GitHubEmulator) -> None:
    time = FakeTime()
    host = GitHubHost(replace(host_for(github).connection, rate_limit_budget_seconds=30), org=GITHUB_ORG,
                      clock=time.clock, sleep=time.sleep)
    github.secondary_limit(1, retry_after=None)
    with pytest.raises(UpstreamUnavailable, match=r"secondary rate limit .* 30 s budget") as raised:
        ensure(host, make_spec(), skeleton_files())
    assert raised.value.retry_after == 60 and raised.value.headers() == {"Retry-After": "60"}
    mark = len(github.log)
    with pytest.raises(UpstreamUnavailable, match="rate limit"):
        ensure(host, make_spec(), skeleton_files())  # another run of this process holds back as well
    assert len(github.log) == mark  # without asking GitHub again
    time.now += 61
    ensure(host, make_spec(), skeleton_files())


def test_the_budget_counts_every_wait_of_the_run(github: GitHubEmulator) -> None:
    time = FakeTime()
    host = GitHubHost(replace(host_for(github).connection, rate_limit_budget_seconds=150), org=GITHUB_ORG,
                      clock=time.clock, sleep=time.sleep)
    github.secondary_limit(2, retry_after=None)
    with pytest.raises(UpstreamUnavailable, match="150 s budget") as raised:  # 60 s taken, 120 s more do not fit
        ensure(host, make_spec(), skeleton_files())
    assert raised.value.retry_after == 120 and [s for s in time.slept if s >= 60] == [60]


# --- 5. pagination ------------------------------------------------------------------------------------------


def test_every_list_is_read_to_its_last_page(github: GitHubEmulator) -> None:
    host = host_for(github)
    for index in range(101):  # GitHub's largest page is 100
        github.add_user(f"user{index:03d}")
    github.add_user("zoe")
    github.add_org(GITHUB_ORG, members=("zed",))
    spec, files = make_spec(collaborators=(("zed", "push"), ("zoe", "pull"))), skeleton_files()
    ensure(host, spec, files)
    repo = github.repos[(GITHUB_ORG, spec.name)]
    for index in range(101):  # direct collaborators and invitations before ours, in GitHub's order
        github.orgs[GITHUB_ORG].members.add(f"user{index:03d}")
        repo.collaborators[f"user{index:03d}"] = "read"
        repo.invitations[f"user{index:03d}x"] = "read"
        github.add_user(f"user{index:03d}x")
    mark = len(github.log)
    result, _ = ensure(host, spec, files)
    assert writes_since(github, mark) == []
    assert result.settings["collaborators"] == {"zed": "write", "zoe": "read"}
    pages = [t for m, t, _ in github.log[mark:] if t == "/repos/{owner}/{repo}/collaborators"]
    assert len(pages) >= 2


def test_our_ruleset_is_found_past_the_first_page(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = ruleset_spec(), skeleton_files()
    ensure(host, spec, files)
    api = host.api()
    for index in range(101):
        api.call("POST", f"/repos/{GITHUB_ORG}/{spec.name}/rulesets", what="add a ruleset", body={
            "name": f"aaa-{index:03d}", "target": "branch", "enforcement": "evaluate", "rules": [{"type": "deletion"}]})
    mark = len(github.log)
    ensure(host, spec, files)
    assert writes_since(github, mark) == []


# --- conditional requests -----------------------------------------------------------------------------------


def converged_rerun_cost(github: GitHubEmulator, *, conditional: bool) -> tuple[int, int, int]:
    host = host_for(github, conditional_requests=conditional)
    spec, files = ruleset_spec(collaborators=(("alice", "push"), ("bob", "pull"))), skeleton_files()
    ensure(host, spec, files)
    ensure(host, spec, files)  # the second run fills the cache with what a converged run reads
    cost, requests = github.rate_limit_cost, len(github.log)
    ensure(host, spec, files)
    return github.rate_limit_cost - cost, len(github.log) - requests, github.writes


def test_a_converged_rerun_costs_less_rate_limit_with_conditional_requests(github: GitHubEmulator) -> None:
    plain_cost, plain_requests, _ = converged_rerun_cost(github, conditional=False)
    cached_cost, cached_requests, _ = converged_rerun_cost(github, conditional=True)
    assert cached_requests == plain_requests  # the same reads...
    assert cached_cost * 2 <= plain_cost, (cached_cost, plain_cost)  # ...most of them 304s that cost nothing


def test_a_change_behind_our_back_is_seen_through_the_cache(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = ruleset_spec(), skeleton_files()
    ensure(host, spec, files)
    ensure(host, spec, files)
    github.repos[(GITHUB_ORG, spec.name)].topics = ["drifted"]
    result, changes = ensure(host, spec, files)
    assert {c.kind: c.outcome.value for c in changes}["repository.topics"] == "updated"
    assert github.repos[(GITHUB_ORG, spec.name)].topics == ["payments", "python"] == result.settings["topics"]


# --- rulesets -----------------------------------------------------------------------------------------------


def ruleset_of(github: GitHubEmulator, name: str) -> dict[str, Any]:
    api_rulesets = github.repos[(GITHUB_ORG, name)].rulesets
    ours = [r for r in api_rulesets.values() if r["name"] == "goldenpath-default-branch"]
    assert len(ours) == 1
    return ours[0]


def test_a_ruleset_protects_the_default_branch_by_default(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = ruleset_spec(), skeleton_files()
    result, changes = ensure(host, spec, files)
    repo = github.repos[(GITHUB_ORG, spec.name)]
    assert repo.protection == {}  # no classic protection
    ruleset = ruleset_of(github, spec.name)
    assert ruleset["enforcement"] == "active" and ruleset["bypass_actors"] == []
    assert ruleset["conditions"] == {"ref_name": {"include": ["refs/heads/main"], "exclude": []}}
    assert {r["type"] for r in ruleset["rules"]} == {"deletion", "non_fast_forward", "pull_request",
                                                      "required_status_checks"}
    assert result.settings["protection"]["enforcement"] == "active"
    assert result.settings["protection"]["requiredStatusChecks"] == ["ci"]
    assert ("repository.protection", "created") in [(c.kind, c.outcome.value) for c in changes]
    mark = len(github.log)
    ensure(host, spec, files)
    assert writes_since(github, mark) == []


@pytest.mark.parametrize("tamper", ["evaluate", "rule-removed", "branch-excluded", "admins-bypass"])
def test_a_weakened_ruleset_is_restored(github: GitHubEmulator, tamper: str) -> None:
    host = host_for(github)
    spec, files = ruleset_spec(), skeleton_files()
    ensure(host, spec, files)
    ruleset = ruleset_of(github, spec.name)
    if tamper == "evaluate":
        ruleset["enforcement"] = "evaluate"
    elif tamper == "rule-removed":
        ruleset["rules"] = [r for r in ruleset["rules"] if r["type"] != "pull_request"]
    elif tamper == "branch-excluded":
        ruleset["conditions"]["ref_name"]["exclude"] = ["refs/heads/main"]
    else:
        ruleset["bypass_actors"] = [{"actor_id": 5, "actor_type": "RepositoryRole", "bypass_mode": "always"}]
    mark = len(github.log)
    ensure(host, spec, files)
    assert writes_since(github, mark) == [f"PUT {RULESET}"]
    restored = ruleset_of(github, spec.name)
    assert restored["enforcement"] == "active" and restored["bypass_actors"] == []
    assert restored["conditions"]["ref_name"]["exclude"] == []
    assert "pull_request" in {r["type"] for r in restored["rules"]}


def test_a_deleted_ruleset_is_created_again_and_an_ignored_one_fails_closed(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = ruleset_spec(), skeleton_files()
    ensure(host, spec, files)
    github.repos[(GITHUB_ORG, spec.name)].rulesets.clear()
    github.ignore("POST", RULESETS)
    with pytest.raises(UpstreamError, match="did not apply the protection"):
        ensure(host, spec, files)
    ensure(host, spec, files)
    assert ruleset_of(github, spec.name)["enforcement"] == "active"


def test_without_rulesets_classic_protection_is_used(github: GitHubEmulator) -> None:
    host = host_for(github)
    github.rulesets_supported = False
    spec, files = ruleset_spec(), skeleton_files()
    result, _ = ensure(host, spec, files)
    assert "main" in github.repos[(GITHUB_ORG, spec.name)].protection
    assert "enforcement" not in result.settings["protection"]


def test_classic_mode_is_kept_when_asked(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec = make_spec(protection=Protection(mode="classic"))
    ensure(host, spec, skeleton_files())
    assert "main" in github.repos[(GITHUB_ORG, spec.name)].protection
    assert github.repos[(GITHUB_ORG, spec.name)].rulesets == {}
