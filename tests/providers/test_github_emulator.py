"""The GitHub emulator itself: its contract checks catch what breaks GitHub's description, and it answers
the way GitHub does where the action depends on it."""

from __future__ import annotations

import base64
from typing import Any

import requests
from github import Auth, Github

from tests.conftest import GITHUB_ORG, GITHUB_TOKEN, start_github
from tests.github_emulator import GitHubEmulator, SpecCheck
from tests.github_emulator.emulator import FREE_PLAN_MESSAGE

AUTH = {"Authorization": f"token {GITHUB_TOKEN}"}
REPOSITORY_JSON = "application/vnd.github.v3.repository+json"


def call(emulator: GitHubEmulator, method: str, path: str, body: Any = None, *, headers: dict[str, str] | None = None,
         follow: bool = True) -> requests.Response:
    return requests.request(method, emulator.api_url + path, json=body, headers={**AUTH, **(headers or {})},
                            timeout=10, allow_redirects=follow)


def create(emulator: GitHubEmulator, name: str, **options: Any) -> dict[str, Any]:
    created = call(emulator, "POST", f"/orgs/{GITHUB_ORG}/repos", {"name": name, **options})
    assert created.status_code == 201, created.text
    return dict(created.json())


def put_file(emulator: GitHubEmulator, repo: str, path: str, text: str, sha: str | None = None) -> requests.Response:
    body = {"message": f"write {path}", "content": base64.b64encode(text.encode()).decode(),
            **({"sha": sha} if sha else {})}
    return call(emulator, "PUT", f"/repos/{GITHUB_ORG}/{repo}/contents/{path}", body)


def test_a_request_that_breaks_the_description_is_caught(github: GitHubEmulator) -> None:
    call(github, "POST", f"/orgs/{GITHUB_ORG}/repos", {"name": "svc-x"})
    call(github, "POST", f"/repos/{GITHUB_ORG}/svc-x/git/trees", {"tree": [{"path": "a", "mode": "100777"}]})
    assert len(github.violations) == 1 and "100777" in github.violations[0]
    github.violations.clear()


def test_an_operation_outside_the_emulator_is_caught(github: GitHubEmulator) -> None:
    assert call(github, "DELETE", f"/repos/{GITHUB_ORG}/anything").status_code == 404
    assert github.violations == [f"DELETE /repos/{GITHUB_ORG}/anything: no such operation in the emulator"]
    github.violations.clear()


def test_a_response_that_breaks_the_description_is_caught(github_spec: SpecCheck) -> None:
    template = "/repos/{owner}/{repo}/git/trees"
    args = {"owner": "a", "repo": "b"}
    problems = github_spec.response_problems("POST", "/repos/a/b/git/trees", template, args, 201,
                                             b'{"sha": "x", "tree": []}', "application/json")
    assert problems and "'truncated' is a required property" in problems[0]
    undeclared = github_spec.response_problems("POST", "/repos/a/b/git/trees", template, args, 418, b"{}",
                                               "application/json")
    assert undeclared and "ResponseNotFound" in undeclared[0]
    assert github_spec.documents("GET", "/repos/{owner}/{repo}")
    assert not github_spec.documents("GET", "/repos/{owner}/{repo}/golden-path")


def test_behaviours_the_action_depends_on(github: GitHubEmulator) -> None:
    assert call(github, "POST", f"/orgs/{GITHUB_ORG}/repos", {"name": "svc-y"}).status_code == 201
    taken = call(github, "POST", f"/orgs/{GITHUB_ORG}/repos", {"name": "svc-y"})
    assert taken.status_code == 422 and taken.json()["errors"][0]["field"] == "name"
    empty = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-y/git/ref/heads/main")
    assert (empty.status_code, empty.json()["message"]) == (409, "Git Repository is empty.")
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/svc-y/contents/README.md").json()["message"] == (
        "This repository is empty.")
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/nope").status_code == 404
    unauthenticated = requests.get(f"{github.api_url}/repos/{GITHUB_ORG}/svc-y", timeout=10)
    assert unauthenticated.status_code == 401
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/svc-y").headers["x-ratelimit-limit"] == "5000"


def test_pygithub_objects_work_against_it(github: GitHubEmulator) -> None:
    client = Github(base_url=github.api_url, auth=Auth.Token(GITHUB_TOKEN), lazy=True, retry=None,
                    seconds_between_requests=None, seconds_between_writes=None)
    repo = client.get_organization(GITHUB_ORG).create_repo("svc-z", private=True, auto_init=True)
    repo.replace_topics(["alpha", "beta"])
    assert repo.get_topics() == ["alpha", "beta"]
    assert client.get_repo(f"{GITHUB_ORG}/svc-z").get_contents("README.md").decoded_content == b"# svc-z\n"


# --- GitHub's behaviours, each switchable per test ----------------------------------------------------------


def test_a_repository_still_being_created_answers_404_then_works(github: GitHubEmulator) -> None:
    create(github, "svc-early")
    github.creation_lag(2)
    create(github, "svc-lag", auto_init=True)
    team_path = f"/orgs/{GITHUB_ORG}/teams/team-payments/repos/{GITHUB_ORG}/svc-lag"
    lagged = [call(github, "GET", f"/repos/{GITHUB_ORG}/svc-lag"),
              call(github, "PUT", team_path, {"permission": "push"})]
    assert [(r.status_code, r.json()["message"]) for r in lagged] == [(404, "Not Found"), (404, "Not Found")]
    assert "svc-lag" not in github.orgs[GITHUB_ORG].team_repos["team-payments"]
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/svc-lag").status_code == 200
    assert call(github, "PUT", team_path, {"permission": "push"}).status_code == 204
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/svc-early").status_code == 200


def test_a_repository_still_being_created_can_answer_409(github: GitHubEmulator) -> None:
    github.creation_lag(1, status=409)
    create(github, "svc-empty-yet", auto_init=True)
    head = github.repos[(GITHUB_ORG, "svc-empty-yet")].refs["refs/heads/main"]
    refused = put_file(github, "svc-empty-yet", "a.txt", "a")
    assert (refused.status_code, refused.json()["message"]) == (409, "Git Repository is empty.")
    assert github.repos[(GITHUB_ORG, "svc-empty-yet")].refs["refs/heads/main"] == head
    assert put_file(github, "svc-empty-yet", "a.txt", "a").status_code == 201


def _role_setup(github: GitHubEmulator) -> None:
    create(github, "svc-roles")
    github.add_team(GITHUB_ORG, "platform", members=("carol",))
    github.add_team(GITHUB_ORG, "platform-sre", parent="platform", members=("dave",))
    github.orgs[GITHUB_ORG].team_repos["platform"]["svc-roles"] = "push"
    github.orgs[GITHUB_ORG].team_repos["platform-sre"]["svc-roles"] = "pull"
    assert call(github, "PUT", f"/repos/{GITHUB_ORG}/svc-roles/collaborators/alice",
                {"permission": "triage"}).status_code == 204
    github.repos[(GITHUB_ORG, "svc-roles")].collaborators["bob"] = "read"  # an outside collaborator


def test_a_team_inherits_its_parents_access(github: GitHubEmulator) -> None:
    _role_setup(github)
    path = f"/orgs/{GITHUB_ORG}/teams/{{}}/repos/{GITHUB_ORG}/svc-roles"
    child = call(github, "GET", path.format("platform-sre"), headers={"Accept": REPOSITORY_JSON})
    assert child.status_code == 200 and child.json()["role_name"] == "write"
    assert child.json()["permissions"] == {"pull": True, "triage": True, "push": True, "maintain": False,
                                           "admin": False}
    assert call(github, "GET", path.format("platform-sre")).status_code == 204
    assert call(github, "GET", path.format("team-ledger"), headers={"Accept": REPOSITORY_JSON}).status_code == 404
    team = call(github, "GET", f"/orgs/{GITHUB_ORG}/teams/platform-sre").json()
    assert team["parent"]["slug"] == "platform" and team["members_count"] == 1
    assert call(github, "GET", f"/orgs/{GITHUB_ORG}/teams/platform").json()["parent"] is None
    assert {"carol", "dave"} <= github.orgs[GITHUB_ORG].members


def test_collaborators_show_the_highest_role_from_any_grant(github: GitHubEmulator) -> None:
    _role_setup(github)
    github.orgs[GITHUB_ORG].base_permission = "read"

    def listed(affiliation: str) -> dict[str, str]:
        answer = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-roles/collaborators?affiliation={affiliation}")
        return {user["login"]: user["role_name"] for user in answer.json()}

    assert listed("direct") == {"alice": "triage", "bob": "read"}
    assert listed("outside") == {"bob": "read"}
    assert listed("all") == {"alice": "triage", "bob": "read", "carol": "write", "dave": "write"}
    github.orgs[GITHUB_ORG].base_permission = "admin"
    assert listed("direct") == {"alice": "admin", "bob": "read"}
    permission = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-roles/collaborators/dave/permission").json()
    assert (permission["permission"], permission["role_name"]) == ("admin", "admin")
    github.orgs[GITHUB_ORG].base_permission = "none"
    permission = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-roles/collaborators/dave/permission").json()
    assert (permission["permission"], permission["role_name"], permission["user"]["permissions"]["push"]) == (
        "write", "write", True)


def test_codeowners_count_inherited_access(github: GitHubEmulator) -> None:
    _role_setup(github)
    put_file(github, "svc-roles", ".github/CODEOWNERS", "* @acme/platform-sre @dave @acme/team-ledger @bob\n")
    errors = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-roles/codeowners/errors").json()["errors"]
    assert [e["message"].splitlines()[0] for e in errors] == [
        "Unknown owner on line 1: make sure @acme/team-ledger exists and has write access to the repository",
        "Unknown owner on line 1: make sure @bob exists and has write access to the repository"]


def test_a_renamed_repository_redirects_with_301_for_reads_and_307_for_writes(github: GitHubEmulator) -> None:
    first = create(github, "svc-old", auto_init=True)
    github.rename(GITHUB_ORG, "svc-old", "svc-mid")
    github.rename(GITHUB_ORG, "svc-mid", "svc-new")
    new = f"{github.api_url}/repos/{GITHUB_ORG}/svc-new"
    read = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-old/contents/README.md?ref=main", follow=False)
    assert read.status_code == 301 and read.headers["Location"] == f"{new}/contents/README.md?ref=main"
    assert read.json() == {"message": "Moved Permanently", "url": f"{new}/contents/README.md?ref=main",
                           "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository"}
    write = call(github, "PATCH", f"/repos/{GITHUB_ORG}/svc-mid", {"description": "x"}, follow=False)
    assert (write.status_code, write.headers["Location"]) == (307, new)
    assert github.repos[(GITHUB_ORG, "svc-new")].description == ""
    followed = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-old")
    assert (followed.status_code, followed.json()["full_name"]) == (200, f"{GITHUB_ORG}/svc-new")
    second = create(github, "svc-old")
    assert second["id"] != first["id"]
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/svc-old", follow=False).json()["id"] == second["id"]
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/svc-mid", follow=False).status_code == 301


def test_a_transferred_repository_redirects_to_its_new_owner(github: GitHubEmulator) -> None:
    create(github, "svc-move")
    github.orgs[GITHUB_ORG].team_repos["team-payments"]["svc-move"] = "push"
    github.add_org("acme-labs")
    github.transfer(GITHUB_ORG, "svc-move", "acme-labs", "svc-moved")
    moved = call(github, "PUT", f"/repos/{GITHUB_ORG}/svc-move/topics?x=1", {"names": ["a"]}, follow=False)
    assert (moved.status_code, moved.headers["Location"]) == (
        307, f"{github.api_url}/repos/acme-labs/svc-moved/topics?x=1")
    assert "svc-move" not in github.orgs[GITHUB_ORG].team_repos["team-payments"]


def test_a_secondary_limit_without_retry_after(github: GitHubEmulator) -> None:
    github.secondary_limit(retry_after=None)
    limited = call(github, "GET", f"/repos/{GITHUB_ORG}/nope")
    assert limited.status_code == 403 and "secondary rate limit" in limited.json()["message"]
    assert "retry-after" not in limited.headers and int(limited.headers["x-ratelimit-remaining"]) > 0
    assert call(github, "GET", f"/repos/{GITHUB_ORG}/nope").status_code == 404


def test_lists_are_paginated_with_a_link_header(github: GitHubEmulator) -> None:
    create(github, "svc-pages")
    for login in ("u1", "u2", "u3", "u4", "u5"):
        github.add_user(login)
        github.repos[(GITHUB_ORG, "svc-pages")].collaborators[login] = "write"
    path = f"/repos/{GITHUB_ORG}/svc-pages/collaborators"
    url = f"{github.api_url}{path}?affiliation=direct&per_page=2"

    def page(number: int) -> tuple[list[str], str | None]:
        answer = call(github, "GET", f"{path}?affiliation=direct&per_page=2&page={number}")
        return [user["login"] for user in answer.json()], answer.headers.get("Link")

    assert page(1) == (["u1", "u2"], f'<{url}&page=2>; rel="next", <{url}&page=3>; rel="last"')
    assert page(2) == (["u3", "u4"], f'<{url}&page=1>; rel="prev", <{url}&page=3>; rel="next", '
                                     f'<{url}&page=3>; rel="last", <{url}&page=1>; rel="first"')
    assert page(3) == (["u5"], f'<{url}&page=2>; rel="prev", <{url}&page=1>; rel="first"')
    unpaged = call(github, "GET", path)
    assert len(unpaged.json()) == 5 and "Link" not in unpaged.headers
    first = call(github, "GET", f"{path}?per_page=4")
    assert first.headers["Link"] == (f'<{github.api_url}{path}?per_page=4&page=2>; rel="next", '
                                     f'<{github.api_url}{path}?per_page=4&page=2>; rel="last"')


def test_repository_teams_are_the_direct_grants(github: GitHubEmulator) -> None:
    create(github, "svc-teams")
    github.add_team(GITHUB_ORG, "platform-sre", parent="platform")
    access = github.orgs[GITHUB_ORG].team_repos
    access["platform-sre"]["svc-teams"], access["team-ledger"]["svc-teams"] = "maintain", "pull"
    access["platform"]["svc-other"] = "admin"
    teams = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-teams/teams").json()
    assert [(t["slug"], t["permission"], t["permissions"]["maintain"], (t["parent"] or {}).get("slug"))
            for t in teams] == [("platform-sre", "maintain", True, "platform"), ("team-ledger", "pull", False, None)]
    second = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-teams/teams?per_page=1&page=2")
    assert [t["slug"] for t in second.json()] == ["team-ledger"] and 'rel="prev"' in second.headers["Link"]


def test_a_conditional_get_answers_304_without_counting(github: GitHubEmulator) -> None:
    create(github, "svc-etag", auto_init=True)
    path = f"/repos/{GITHUB_ORG}/svc-etag"
    fresh = call(github, "GET", path)
    etag, cost = fresh.headers["ETag"], github.rate_limit_cost
    assert etag.startswith('W/"') and etag.endswith('"') and fresh.headers["x-ratelimit-used"] == str(cost)
    again = call(github, "GET", path, headers={"If-None-Match": etag})
    assert (again.status_code, again.content, again.headers["ETag"]) == (304, b"", etag)
    assert (github.rate_limit_cost, github.not_modified, again.headers["x-ratelimit-used"]) == (cost, 1, str(cost))
    assert call(github, "GET", path, headers={"Accept": "application/vnd.github+json"}).headers["ETag"] != etag
    contents = call(github, "GET", f"{path}/contents/README.md")
    assert call(github, "GET", f"{path}/contents/README.md",
                headers={"If-None-Match": contents.headers["ETag"]}).status_code == 304
    call(github, "PATCH", path, {"description": "changed"})
    changed = call(github, "GET", path, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag
    cost = github.rate_limit_cost
    assert requests.get(github.api_url + path, timeout=10).status_code == 401 and github.rate_limit_cost == cost


def test_created_resources_carry_a_location(github: GitHubEmulator) -> None:
    repo = call(github, "POST", f"/orgs/{GITHUB_ORG}/repos", {"name": "svc-loc", "auto_init": True})
    assert repo.headers["Location"] == f"{github.api_url}/repos/{GITHUB_ORG}/svc-loc"
    base = f"/repos/{GITHUB_ORG}/svc-loc"
    blob = call(github, "POST", f"{base}/git/blobs", {"content": "x"})
    tree = call(github, "POST", f"{base}/git/trees", {"tree": [{"path": "x", "mode": "100644", "type": "blob",
                                                                "sha": blob.json()["sha"]}]})
    commit = call(github, "POST", f"{base}/git/commits", {"message": "m", "tree": tree.json()["sha"]})
    ref = call(github, "POST", f"{base}/git/refs", {"ref": "refs/heads/x", "sha": commit.json()["sha"]})
    invitation = call(github, "PUT", f"{base}/collaborators/bob", {"permission": "push"})
    for created in (blob, tree, commit, ref, invitation):
        assert created.status_code == 201 and created.headers["Location"] == created.json()["url"]
    assert ref.headers["Location"] == f"{github.api_url}{base}/git/refs/heads/x"


def test_writing_a_file_answers_201_when_new_and_200_when_replaced(github: GitHubEmulator) -> None:
    create(github, "svc-files")
    assert put_file(github, "svc-files", "a.txt", "a").status_code == 201
    assert put_file(github, "svc-files", "b.txt", "b").status_code == 201
    sha = call(github, "GET", f"/repos/{GITHUB_ORG}/svc-files/contents/a.txt").json()["sha"]
    assert put_file(github, "svc-files", "a.txt", "a2").status_code == 422
    assert put_file(github, "svc-files", "a.txt", "a2", sha=sha).status_code == 200


def test_repositories_and_protection_carry_githubs_fields(github: GitHubEmulator) -> None:
    repo = create(github, "svc-fields", auto_init=True, private=True)
    assert repo["permissions"] == {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
    assert (repo["organization"]["login"], repo["organization"]["type"]) == (GITHUB_ORG, "Organization")
    path = f"/repos/{GITHUB_ORG}/svc-fields/branches/main/protection"
    rules = {"required_status_checks": None, "enforce_admins": True, "restrictions": None,
             "required_pull_request_reviews": {"require_code_owner_reviews": True}}
    for answer in (call(github, "PUT", path, rules), call(github, "GET", path)):
        body = answer.json()
        assert answer.status_code == 200 and "restrictions" not in body
        assert body["required_pull_request_reviews"]["required_approving_review_count"] == 1
        assert body["required_signatures"] == {"url": f"{github.api_url}{path}/required_signatures",
                                               "enabled": False}
        assert body["enforce_admins"]["enabled"] is True
        assert {key: body[key] for key in ("lock_branch", "allow_fork_syncing", "required_linear_history")} == {
            "lock_branch": {"enabled": False}, "allow_fork_syncing": {"enabled": False},
            "required_linear_history": {"enabled": False}}
    restricted = call(github, "PUT", path, {**rules, "restrictions": {"users": ["alice"], "teams": ["team-payments"]}})
    assert [u["login"] for u in restricted.json()["restrictions"]["users"]] == ["alice"]
    assert [t["slug"] for t in restricted.json()["restrictions"]["teams"]] == ["team-payments"]


RULESET = {"name": "golden-path", "target": "branch", "enforcement": "active",
           "conditions": {"ref_name": {"include": ["~DEFAULT_BRANCH", "refs/heads/release/*"],
                                       "exclude": ["refs/heads/release/old"]}},
           "rules": [{"type": "deletion"}, {"type": "non_fast_forward"},
                     {"type": "pull_request", "parameters": {
                         "required_approving_review_count": 1, "dismiss_stale_reviews_on_push": False,
                         "require_code_owner_review": True, "require_last_push_approval": False,
                         "required_review_thread_resolution": False}}]}


def test_a_ruleset_lifecycle(github: GitHubEmulator) -> None:
    create(github, "svc-rules", auto_init=True)
    base = f"/repos/{GITHUB_ORG}/svc-rules"
    created = call(github, "POST", f"{base}/rulesets", RULESET)
    ruleset = created.json()
    assert created.status_code == 201
    assert created.headers["Location"] == f"{github.api_url}{base}/rulesets/{ruleset['id']}"
    assert {k: ruleset[k] for k in ("name", "target", "enforcement", "source_type", "source", "bypass_actors")} == {
        "name": "golden-path", "target": "branch", "enforcement": "active", "source_type": "Repository",
        "source": f"{GITHUB_ORG}/svc-rules", "bypass_actors": []}
    assert ruleset["rules"] == RULESET["rules"] and ruleset["conditions"] == RULESET["conditions"]
    duplicate = call(github, "POST", f"{base}/rulesets", {**RULESET, "rules": []})
    assert duplicate.status_code == 422 and duplicate.json()["errors"][0]["message"] == "Name must be unique"
    [listed] = call(github, "GET", f"{base}/rulesets").json()
    assert listed["id"] == ruleset["id"] and "rules" not in listed
    assert call(github, "GET", f"{base}/rulesets/{ruleset['id']}").json() == ruleset

    def applied(branch: str) -> list[tuple[str, int]]:
        rules = call(github, "GET", f"{base}/rules/branches/{branch}").json()
        assert all(r["ruleset_source_type"] == "Repository" and r["ruleset_source"] == f"{GITHUB_ORG}/svc-rules"
                   for r in rules)
        return [(r["type"], r["ruleset_id"]) for r in rules]

    everything = [("deletion", ruleset["id"]), ("non_fast_forward", ruleset["id"]), ("pull_request", ruleset["id"])]
    assert applied("main") == everything and applied("release/1.0") == everything
    assert applied("release/old") == [] and applied("release/1.0/hotfix") == [] and applied("feature") == []
    updated = call(github, "PUT", f"{base}/rulesets/{ruleset['id']}", {"enforcement": "evaluate"})
    assert updated.status_code == 200 and updated.json()["enforcement"] == "evaluate" and applied("main") == []
    assert call(github, "DELETE", f"{base}/rulesets/{ruleset['id']}").status_code == 204
    assert call(github, "GET", f"{base}/rulesets/{ruleset['id']}").status_code == 404
    assert call(github, "GET", f"{base}/rulesets").json() == []


def test_a_rule_type_outside_the_description_is_refused(github: GitHubEmulator) -> None:
    create(github, "svc-bad-rule")
    refused = call(github, "POST", f"/repos/{GITHUB_ORG}/svc-bad-rule/rulesets",
                   {**RULESET, "rules": [{"type": "no_such_rule"}]})
    assert refused.status_code == 422 and "no_such_rule" in refused.json()["errors"][0]["message"]
    assert len(github.violations) == 1 and github.violations[0].startswith("request POST")
    github.violations.clear()


def test_rulesets_absent_on_a_free_plan_or_an_older_server(github_spec: SpecCheck) -> None:
    emulator = start_github(github_spec, plan="free")
    try:
        create(emulator, "svc-private", private=True)
        create(emulator, "svc-public")
        refused = call(emulator, "GET", f"/repos/{GITHUB_ORG}/svc-private/rulesets")
        assert (refused.status_code, refused.json()["message"]) == (403, FREE_PLAN_MESSAGE)
        assert call(emulator, "GET", f"/repos/{GITHUB_ORG}/svc-private/rules/branches/main").status_code == 403
        assert call(emulator, "GET", f"/repos/{GITHUB_ORG}/svc-public/rulesets").json() == []
        emulator.rulesets_supported = False
        for path in ("rulesets", "rulesets/1", "rules/branches/main"):
            assert call(emulator, "GET", f"/repos/{GITHUB_ORG}/svc-public/{path}").status_code == 404
        assert call(emulator, "POST", f"/repos/{GITHUB_ORG}/svc-public/rulesets", RULESET).status_code == 404
    finally:
        emulator.stop()
    emulator.assert_clean()


def test_ignored_ruleset_writes_are_answered_but_undone(github: GitHubEmulator) -> None:
    create(github, "svc-ignored")
    base = f"/repos/{GITHUB_ORG}/svc-ignored"
    github.ignore("POST", "/repos/{owner}/{repo}/rulesets")
    assert call(github, "POST", f"{base}/rulesets", RULESET).status_code == 201
    assert call(github, "GET", f"{base}/rulesets").json() == []
    ruleset = call(github, "POST", f"{base}/rulesets", RULESET).json()
    github.ignore("PUT", "/repos/{owner}/{repo}/rulesets/{ruleset_id}")
    answer = call(github, "PUT", f"{base}/rulesets/{ruleset['id']}", {"enforcement": "disabled"})
    assert answer.status_code == 200 and answer.json()["enforcement"] == "disabled"
    assert call(github, "GET", f"{base}/rulesets/{ruleset['id']}").json()["enforcement"] == "active"
