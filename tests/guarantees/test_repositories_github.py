"""Guarantees of the GitHub repository provider, against the GitHub emulator (every exchange checked against
GitHub's OpenAPI description), with no part of Golden Path replaced.

- Read-back: every setting written is read back and compared; when GitHub answers a write as done but does not
  apply it (the emulator's `ignore`: an organization policy, a ruleset or another client undid it), the run fails
  closed with a 502 naming the setting, before it reports success.
- Protection is exactly what was asked, and any drift of any one rule is seen and restored.
- A second run writes nothing; another owner's repository, a person as owner, a repository someone made by hand
  are refused before any write.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from backend.errors import ConflictError, PolicyViolation, UpstreamError
from backend.providers.changes import Change
from backend.providers.github import GitHubHost
from backend.providers.repositories import Protection, RepositorySpec
from tests.conftest import GITHUB_ORG
from tests.github_emulator import GitHubEmulator
from tests.github_emulator.emulator import Repo
from tests.providers.test_github import ensure, host_for, make_spec, skeleton_files

PROTECTION = "/repos/{owner}/{repo}/branches/{branch}/protection"
TEAM = "/orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}"
TOPICS = "/repos/{owner}/{repo}/topics"
COLLABORATOR = "/repos/{owner}/{repo}/collaborators/{username}"
REPOSITORY = "/repos/{owner}/{repo}"
PAYMENTS, LEDGER = "group:default/team-payments", "group:default/team-ledger"


@pytest.fixture
def host(github: GitHubEmulator) -> GitHubHost:
    return host_for(github)


def spec_with_people(**overrides: Any) -> RepositorySpec:
    """alice is an org member (added), bob is not (invited)."""
    return make_spec(collaborators=(("alice", "push"), ("bob", "triage")), **overrides)


def repo_of(github: GitHubEmulator, spec: RepositorySpec) -> Repo:
    return github.repos[(GITHUB_ORG, spec.name)]


def team_access(github: GitHubEmulator, team: str, spec: RepositorySpec) -> str | None:
    return github.orgs[GITHUB_ORG].team_repos[team].get(spec.name)


# -- read-back: a write GitHub did not apply fails the run ---------------------------------------------------------

@pytest.mark.parametrize(("setting", "method", "template"), [
    ("protection", "PUT", PROTECTION),
    ("teams", "PUT", TEAM),
    ("topics", "PUT", TOPICS),
    ("collaborator alice", "PUT", COLLABORATOR),  # an org member: added
    ("collaborator bob", "PUT", COLLABORATOR),  # not a member: invited, and the invitation must really be there
], ids=["protection", "teams", "topics", "alice", "bob"])
def test_a_settings_write_github_ignored_on_a_new_repository_fails_closed(
    github: GitHubEmulator, host: GitHubHost, setting: str, method: str, template: str,
) -> None:
    login = setting.removeprefix("collaborator ")
    people = (("bob", "triage"),) if login == "bob" else (("alice", "push"), ("bob", "triage"))
    spec, files = make_spec(collaborators=people), skeleton_files()
    github.ignore(method, template)
    changes: list[Change] = []
    with pytest.raises(UpstreamError) as failure:
        host.ensure_repository(spec, files, adopt=False, dry_run=False, on_change=changes.append)
    assert failure.value.status == 502 and not failure.value.is_retryable
    assert f"GitHub did not apply the {setting} of {GITHUB_ORG}/{spec.name}" in failure.value.detail
    assert changes[-1].kind == f"repository.{setting}"  # the audit shows how far the run got
    repo = repo_of(github, spec)
    assert {"protection": "main" not in repo.protection, "teams": team_access(github, "team-payments", spec) is None,
            "topics": repo.topics == [], "collaborator alice": "alice" not in repo.collaborators,
            "collaborator bob": "bob" not in repo.invitations}[setting]

    result, _ = ensure(host, spec, files)  # once GitHub applies it, the same request finishes the work
    assert result.settings["codeowners"] == "valid"


Tamper = Callable[[GitHubEmulator, RepositorySpec], None]


def _set(field: str, value: Any) -> Tamper:
    def tamper(github: GitHubEmulator, spec: RepositorySpec) -> None:
        setattr(repo_of(github, spec), field, value)
    return tamper


def _rule(*path: str, value: Any) -> Tamper:
    def tamper(github: GitHubEmulator, spec: RepositorySpec) -> None:
        rules = repo_of(github, spec).protection["main"]
        for key in path[:-1]:
            rules = rules[key]
        rules[path[-1]] = value
    return tamper


def _team(permission: str | None) -> Tamper:
    def tamper(github: GitHubEmulator, spec: RepositorySpec) -> None:
        access = github.orgs[GITHUB_ORG].team_repos["team-payments"]
        if permission is None:
            del access[spec.name]
        else:
            access[spec.name] = permission
    return tamper


def _collaborator(role: str) -> Tamper:
    def tamper(github: GitHubEmulator, spec: RepositorySpec) -> None:
        repo_of(github, spec).collaborators["alice"] = role
    return tamper


def _invitation_withdrawn(github: GitHubEmulator, spec: RepositorySpec) -> None:
    del repo_of(github, spec).invitations["bob"]


# each drift, the write that restores it, and what the failure names when GitHub ignores that write
DRIFTS: dict[str, tuple[Tamper, str, str, str]] = {
    "visibility": (_set("visibility", "public"), "PATCH", REPOSITORY, "repository"),
    "description": (_set("description", "someone else's words"), "PATCH", REPOSITORY, "repository"),
    "topics": (_set("topics", ["tampered"]), "PUT", TOPICS, "topics"),
    "team-permission": (_team("pull"), "PUT", TEAM, "teams"),
    "team-removed": (_team(None), "PUT", TEAM, "teams"),
    "collaborator-role": (_collaborator("read"), "PUT", COLLABORATOR, "collaborator alice"),
    "invitation-withdrawn": (_invitation_withdrawn, "PUT", COLLABORATOR, "collaborator bob"),
    "protection-removed": (lambda g, s: repo_of(g, s).protection.clear(), "PUT", PROTECTION, "protection"),
    "enforce-admins": (_rule("enforce_admins", value=False), "PUT", PROTECTION, "protection"),
    "code-owner-reviews": (_rule("required_pull_request_reviews", "require_code_owner_reviews", value=False),
                           "PUT", PROTECTION, "protection"),
    "approvals": (_rule("required_pull_request_reviews", "required_approving_review_count", value=0),
                  "PUT", PROTECTION, "protection"),
    "stale-reviews": (_rule("required_pull_request_reviews", "dismiss_stale_reviews", value=False),
                      "PUT", PROTECTION, "protection"),
    "reviews-removed": (_rule("required_pull_request_reviews", value=None), "PUT", PROTECTION, "protection"),
    "status-checks": (_rule("required_status_checks", "contexts", value=[]), "PUT", PROTECTION, "protection"),
    "force-pushes": (_rule("allow_force_pushes", value=True), "PUT", PROTECTION, "protection"),
    "deletions": (_rule("allow_deletions", value=True), "PUT", PROTECTION, "protection"),
    "conversation-resolution": (_rule("required_conversation_resolution", value=False), "PUT", PROTECTION,
                                "protection"),
    "linear-history": (_rule("required_linear_history", value=True), "PUT", PROTECTION, "protection"),
}


@pytest.mark.parametrize("drift", ["visibility", "description", "topics", "team-permission", "collaborator-role",
                                   "invitation-withdrawn", "protection-removed", "enforce-admins"])
def test_drift_whose_repair_github_ignored_fails_closed(github: GitHubEmulator, host: GitHubHost, drift: str) -> None:
    tamper, method, template, setting = DRIFTS[drift]
    spec, files = spec_with_people(), skeleton_files()
    ensure(host, spec, files)
    tamper(github, spec)
    github.ignore(method, template)
    with pytest.raises(UpstreamError) as failure:
        ensure(host, spec, files)
    assert failure.value.status == 502
    assert f"GitHub did not apply the {setting} of {GITHUB_ORG}/{spec.name}" in failure.value.detail


@pytest.mark.parametrize("drift", list(DRIFTS))
def test_drift_of_any_one_setting_is_seen_and_restored(github: GitHubEmulator, host: GitHubHost, drift: str) -> None:
    tamper, method, template, setting = DRIFTS[drift]
    spec, files = spec_with_people(), skeleton_files()
    first, _ = ensure(host, spec, files)
    repo = repo_of(github, spec)
    wanted = (repo.description, repo.visibility, list(repo.topics), repr(repo.protection), dict(repo.collaborators),
              dict(repo.invitations), team_access(github, "team-payments", spec))
    tamper(github, spec)
    before = len(github.log)
    again, changes = ensure(host, spec, files)
    assert [(c.kind, c.outcome.value) for c in changes if c.is_write] in (
        [(f"repository.{setting}", "updated")], [(f"repository.{setting}", "created")])
    assert {f"{m} {t}" for m, t, _ in github.log[before:] if m != "GET"} == {f"{method} {template}"}
    assert (repo.description, repo.visibility, list(repo.topics), repr(repo.protection), dict(repo.collaborators),
            dict(repo.invitations), team_access(github, "team-payments", spec)) == wanted
    assert again.settings == first.settings


# -- protection: exactly what was asked ----------------------------------------------------------------------------

DEFAULT_RULES = {
    "required_status_checks": {"strict": True, "contexts": ["ci"]},
    "enforce_admins": True,
    "required_pull_request_reviews": {"dismiss_stale_reviews": True, "require_code_owner_reviews": True,
                                      "required_approving_review_count": 1},
    "restrictions": None, "required_linear_history": False, "allow_force_pushes": False, "allow_deletions": False,
    "required_conversation_resolution": True,
}
CUSTOM = Protection(required_approving_reviews=2, require_code_owner_reviews=True, dismiss_stale_reviews=False,
                    required_status_checks=("lint", "ci"), enforce_admins=False, required_linear_history=True,
                    required_conversation_resolution=False)
CUSTOM_RULES = {
    "required_status_checks": {"strict": True, "contexts": ["ci", "lint"]},
    "enforce_admins": False,
    "required_pull_request_reviews": {"dismiss_stale_reviews": False, "require_code_owner_reviews": True,
                                      "required_approving_review_count": 2},
    "restrictions": None, "required_linear_history": True, "allow_force_pushes": False, "allow_deletions": False,
    "required_conversation_resolution": False,
}
NO_CHECKS = Protection(required_approving_reviews=3, require_code_owner_reviews=False)
NO_CHECKS_RULES = {**DEFAULT_RULES, "required_status_checks": None, "required_pull_request_reviews": {
    "dismiss_stale_reviews": True, "require_code_owner_reviews": False, "required_approving_review_count": 3}}


@pytest.mark.parametrize(("protection", "rules"), [
    (Protection(required_status_checks=("ci",)), DEFAULT_RULES), (CUSTOM, CUSTOM_RULES), (NO_CHECKS, NO_CHECKS_RULES),
], ids=["defaults", "custom", "no-checks"])
def test_protection_is_exactly_what_was_asked(github: GitHubEmulator, host: GitHubHost, protection: Protection,
                                              rules: dict[str, Any]) -> None:
    spec = make_spec(protection=replace(protection, mode="classic"))
    result, _ = ensure(host, spec, skeleton_files())
    assert repo_of(github, spec).protection == {"main": rules}  # the rules GitHub was given, nothing else
    reviews = rules["required_pull_request_reviews"]
    assert result.settings["protection"] == {
        "requiredApprovingReviews": reviews["required_approving_review_count"],
        "requireCodeOwnerReviews": reviews["require_code_owner_reviews"],
        "dismissStaleReviews": reviews["dismiss_stale_reviews"],
        "requiredStatusChecks": (rules["required_status_checks"] or {}).get("contexts", []),
        "enforceAdmins": rules["enforce_admins"], "requiredLinearHistory": rules["required_linear_history"],
        "requiredConversationResolution": rules["required_conversation_resolution"],
        "allowForcePushes": False, "allowDeletions": False}


def ruleset_rules(protection: Protection) -> list[dict[str, Any]]:
    """The rules a ruleset holds for `protection`, as GitHub stores them."""
    rules: list[dict[str, Any]] = [{"type": "deletion"}, {"type": "non_fast_forward"}, {
        "type": "pull_request", "parameters": {
        "required_approving_review_count": protection.required_approving_reviews,
        "dismiss_stale_reviews_on_push": protection.dismiss_stale_reviews,
        "require_code_owner_review": protection.require_code_owner_reviews, "require_last_push_approval": False,
        "required_review_thread_resolution": protection.required_conversation_resolution}}]
    if protection.required_linear_history:
        rules.append({"type": "required_linear_history"})
    if protection.required_status_checks:
        rules.append({"type": "required_status_checks", "parameters": {
            "strict_required_status_checks_policy": True,
            "required_status_checks": [{"context": c} for c in sorted(protection.required_status_checks)]}})
    return rules


@pytest.mark.parametrize("protection", [Protection(required_status_checks=("ci",)), CUSTOM, NO_CHECKS],
                         ids=["defaults", "custom", "no-checks"])
def test_the_ruleset_is_exactly_what_was_asked(github: GitHubEmulator, host: GitHubHost,
                                               protection: Protection) -> None:
    spec = make_spec(protection=replace(protection, mode=None))  # a ruleset: GitHub offers them
    result, _ = ensure(host, spec, skeleton_files())
    repo = repo_of(github, spec)
    assert repo.protection == {}
    [ruleset] = repo.rulesets.values()
    assert {k: ruleset[k] for k in ("name", "target", "enforcement", "bypass_actors", "conditions", "rules")} == {
        "name": "goldenpath-default-branch", "target": "branch", "enforcement": "active",
        "bypass_actors": [] if protection.enforce_admins else [
            {"actor_id": 5, "actor_type": "RepositoryRole", "bypass_mode": "always"}],
        "conditions": {"ref_name": {"include": ["refs/heads/main"], "exclude": []}},
        "rules": ruleset_rules(protection)}
    assert result.settings["protection"] == {
        "requiredApprovingReviews": protection.required_approving_reviews,
        "requireCodeOwnerReviews": protection.require_code_owner_reviews,
        "dismissStaleReviews": protection.dismiss_stale_reviews,
        "requiredStatusChecks": sorted(protection.required_status_checks),
        "enforceAdmins": protection.enforce_admins, "requiredLinearHistory": protection.required_linear_history,
        "requiredConversationResolution": protection.required_conversation_resolution,
        "allowForcePushes": False, "allowDeletions": False, "enforcement": "active",
        "branches": ["refs/heads/main"], "excluded": [],
        "bypassActors": [] if protection.enforce_admins else ["RepositoryRole:5:always"],
        "strictStatusChecks": bool(protection.required_status_checks)}


def test_the_protected_branch_is_the_default_branch_asked_for(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec(default_branch="trunk")
    result, _ = ensure(host, spec, skeleton_files())
    repo = repo_of(github, spec)
    assert repo.default_branch == "trunk" and list(repo.refs) == ["refs/heads/trunk"]
    assert list(repo.protection) == ["trunk"] and result.settings["defaultBranch"] == "trunk"
    assert result.contents_url.endswith("/blob/trunk")


# -- a second run writes nothing ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("team", "people"), [
    ("push", "pull"), ("maintain", "triage"), ("admin", "push"), ("push", "maintain"), ("maintain", "admin"),
])  # the team reviews as code owner, so it can write
def test_a_second_run_writes_nothing_whatever_the_permissions(github: GitHubEmulator, host: GitHubHost, team: str,
                                                              people: str) -> None:
    spec = make_spec(team_permission=team, topics=("python", "payments", "api"),
                     collaborators=(("alice", people), ("bob", people)), protection=CUSTOM)
    first, _ = ensure(host, spec, skeleton_files())
    assert team_access(github, "team-payments", spec) == team
    before = github.writes
    again, changes = ensure(host, spec, skeleton_files())
    assert github.writes == before and again.writes == 0 and not [c for c in changes if c.is_write]
    assert again.settings == first.settings and again.commit_hash == first.commit_hash
    assert len(github.history(GITHUB_ORG, spec.name)) == 1


# -- ownership: refused before any write ---------------------------------------------------------------------------

def _state(github: GitHubEmulator, spec: RepositorySpec) -> Any:
    repo = repo_of(github, spec)
    return (github.writes, dict(repo.refs), repo.description, repo.visibility, list(repo.topics),
            repr(repo.protection), dict(repo.collaborators), dict(repo.invitations),
            {team: dict(repos) for team, repos in github.orgs[GITHUB_ORG].team_repos.items()})


@pytest.mark.parametrize("adopt", [False, True], ids=["plain", "adopt"])
def test_another_owners_repository_is_refused_before_any_write(github: GitHubEmulator, host: GitHubHost,
                                                               adopt: bool) -> None:
    spec = make_spec()
    ensure(host, spec, skeleton_files())
    before = _state(github, spec)
    theirs = replace(spec, owner_team="team-ledger", owner_ref=LEDGER, collaborators=(("bob", "admin"),))
    changes: list[Change] = []
    with pytest.raises(ConflictError) as refused:
        host.ensure_repository(theirs, skeleton_files(team="team-ledger"), adopt=adopt, dry_run=False,
                               on_change=changes.append)
    assert refused.value.owner == PAYMENTS and refused.value.status == 409
    assert _state(github, spec) == before and changes == []
    with pytest.raises(ConflictError):  # the read-only check says the same
        host.check_repository(GITHUB_ORG, spec.name, owner_ref=LEDGER)


def _legacy_marker(github: GitHubEmulator, spec: RepositorySpec) -> None:
    """The marker of a Golden Path from before full refs: it names only the team."""
    repo = repo_of(github, spec)
    current = repo.objects.files(repo.objects.commits[repo.refs["refs/heads/main"]].tree)[".goldenpath.yaml"]
    github.put_content({"owner": GITHUB_ORG, "repo": spec.name, "path": ".goldenpath.yaml"}, {
        "message": "older marker", "sha": current[1],
        "content": base64.b64encode(b"skeleton: golden-path-service\nteam: team-payments\n").decode()}, {}, "bot")


def test_a_repository_marked_before_full_refs_is_its_teams_group(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec()
    ensure(host, spec, skeleton_files())
    _legacy_marker(github, spec)
    before = _state(github, spec)
    for other in ("group:other/team-payments", LEDGER):
        with pytest.raises(ConflictError) as refused:
            ensure(host, replace(spec, owner_team=other.rsplit("/", 1)[-1], owner_ref=other),
                   skeleton_files(), adopt=True)
        assert refused.value.owner == PAYMENTS
    assert _state(github, spec) == before
    _, changes = ensure(host, replace(spec, owner_ref="team-payments"), skeleton_files())  # the short form: ours
    assert not [c for c in changes if c.is_write]


def test_a_person_owns_no_repository(github: GitHubEmulator, host: GitHubHost) -> None:
    """`user:default/team-payments` is a person, not the group whose team slug it shares."""
    spec = make_spec()
    ensure(host, spec, skeleton_files())
    before = _state(github, spec)
    person = "user:default/team-payments"
    for target in (spec, make_spec()):  # neither an existing repository nor a new one
        with pytest.raises(PolicyViolation) as refused:
            ensure(host, replace(target, owner_ref=person), skeleton_files())
        assert (refused.value.rule, refused.value.field) == ("owner-must-be-group", "owner")
    with pytest.raises(PolicyViolation):
        host.check_repository(GITHUB_ORG, spec.name, owner_ref=person)
    assert _state(github, spec) == before and len(github.repos) == 1


def test_an_empty_repository_made_by_hand_is_not_taken(github: GitHubEmulator, host: GitHubHost) -> None:
    """Golden Path never began creating it for this owner (`fresh_name`): its emptiness proves nothing."""
    spec = make_spec()
    github.create_repo({"org": GITHUB_ORG}, {"name": spec.name, "visibility": "public"}, {}, "someone")
    writes = github.writes
    with pytest.raises(ConflictError, match="not created by Golden Path"):
        host.ensure_repository(spec, skeleton_files(), adopt=False, dry_run=False, on_change=lambda _: None,
                               fresh_name=True)
    with pytest.raises(ConflictError):
        host.check_repository(GITHUB_ORG, spec.name, owner_ref=PAYMENTS, fresh_name=True)
    assert github.writes == writes and repo_of(github, spec).refs == {}
    assert team_access(github, "team-payments", spec) is None


def test_a_repository_with_content_but_no_marker_needs_adopt(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec()
    github.create_repo({"org": GITHUB_ORG}, {"name": spec.name, "auto_init": True}, {}, "someone")
    writes = github.writes
    for fresh in (False, True):
        with pytest.raises(ConflictError, match="adopt"):
            host.ensure_repository(spec, skeleton_files(), adopt=False, dry_run=False, on_change=lambda _: None,
                                   fresh_name=fresh)
    assert github.writes == writes and team_access(github, "team-payments", spec) is None


def test_a_team_that_does_not_exist_is_refused_before_any_write(github: GitHubEmulator, host: GitHubHost) -> None:
    spec = make_spec(owner_team="team-nobody", owner_ref="group:default/team-nobody")
    with pytest.raises(PolicyViolation) as refused:
        ensure(host, spec, skeleton_files(team="team-nobody"))
    assert refused.value.rule == "owner-team-exists" and github.writes == 0 and not github.repos


# -- one commit -----------------------------------------------------------------------------------------------------

def test_the_skeleton_is_one_root_commit_with_nothing_else(github: GitHubEmulator, host: GitHubHost) -> None:
    spec, files = make_spec(), skeleton_files(40)
    result, _ = ensure(host, spec, files)
    [commit] = github.history(GITHUB_ORG, spec.name)
    assert commit.parents == () and commit.message == spec.commit_message
    assert github.files(GITHUB_ORG, spec.name) == files and repo_of(github, spec).refs == {
        "refs/heads/main": result.commit_hash}
