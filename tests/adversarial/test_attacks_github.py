"""Attacks on the GitHub provider as it behaves against real GitHub: renames, inherited roles, rulesets, pagination,
the conditional cache, rate limits and malformed answers. Each test asserts the SAFE behaviour, so it fails while
the hole is open. Attacks by a hostile org member go through the emulator; attacks by a hostile or compromised
GitHub-compatible server go through `Crafted`, a loopback server that answers whatever the test says."""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from backend.errors import ConflictError, UpstreamError, UpstreamUnavailable
from backend.providers import github_protection
from backend.providers.github import GitHubConnection, GitHubHost, _Pace, _Run
from backend.providers.github_api import ConditionalCache, _Cached
from backend.providers.repositories import Protection
from tests.conftest import GITHUB_ORG
from tests.github_emulator import GitHubEmulator
from tests.providers.test_github import ensure, host_for, make_spec, skeleton_files
from tests.providers.test_github_as_it_behaves import FakeTime

TOKEN = "ghp_crafted" + "s3cr3t" * 6
ORG = "acme"
Answer = tuple[int, dict[str, str], Any]
STOP_AFTER = 40  # the crafted server ends a loop itself after this many requests, to keep the test fast


# --- a hostile GitHub-compatible server ----------------------------------------------------------------------


class Crafted:
    """A loopback HTTP server; `route(method, path, query)` -> (status, headers, body: JSON value, str or None)."""

    def __init__(self, route: Callable[[str, str, dict[str, list[str]]], Answer]) -> None:
        self.route = route
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        crafted = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                parsed = urlparse(self.path)
                crafted.requests.append((self.command, self.path, dict(self.headers.items())))
                status, headers, body = crafted.route(self.command, parsed.path, parse_qs(parsed.query))
                raw = b"" if body is None else (body if isinstance(body, str) else json.dumps(body)).encode()
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _answer

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Crafted:
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def crafted() -> Iterator[Callable[[Callable[..., Answer]], Crafted]]:
    servers: list[Crafted] = []

    def start(route: Callable[..., Answer]) -> Crafted:
        server = Crafted(route).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def crafted_host(server: Crafted, time: FakeTime | None = None, **overrides: Any) -> GitHubHost:
    time = time or FakeTime()
    connection = GitHubConnection(api_url=server.url, token=TOKEN, seconds_between_requests=0,
                                  seconds_between_writes=0, rate_limit_budget_seconds=5, timeout_seconds=5)
    return GitHubHost(replace(connection, **overrides), org=ORG, clock=time.clock, sleep=time.sleep)


def repo_json(name: str = "svc", full_name: str | None = None) -> dict[str, Any]:
    return {"id": 1, "name": name, "full_name": full_name or f"{ORG}/{name}", "default_branch": "main",
            "html_url": f"https://example.test/{ORG}/{name}", "clone_url": f"https://example.test/{ORG}/{name}.git",
            "private": True, "visibility": "private", "description": ""}


def basics(method: str, path: str) -> Answer | None:
    """A team and a repository that exist."""
    if method == "GET" and path == f"/orgs/{ORG}/teams/team-payments":
        return 200, {}, {"slug": "team-payments", "id": 7}
    if method == "GET" and path == f"/repos/{ORG}/svc":
        return 200, {}, repo_json()
    return None


def crafted_run(host: GitHubHost, **spec: Any) -> _Run:
    values: dict[str, Any] = {"name": "svc", "org": ORG}
    values.update(spec)
    return _Run(host.api(), make_spec(**values), lambda _c: None, dry_run=False,
                pace=_Pace(1, host._pace.clock, host._pace.sleep))


# --- 1. rate limits from a crafted server ------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [
    {"retry-after": "1e308"},
    {"retry-after": "31536000"},  # a year
    {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "1e308"},
    {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "99999999999"},
])
def test_a_crafted_wait_does_not_pause_every_run_of_the_process_for_ever(crafted: Any, headers: dict[str, str]) -> None:
    server = crafted(lambda m, p, q: (403, headers, {"message": "API rate limit exceeded"}))
    time = FakeTime()
    host = crafted_host(server, time)
    with pytest.raises(UpstreamUnavailable) as raised:
        host.check_repository(ORG, "svc", owner_ref="group:default/team-payments")
    assert sum(time.slept) <= 5
    # GitHub never asks for more than an hour (its primary window); a bigger ask must be clamped, not obeyed
    assert raised.value.retry_after <= 3600, f"Retry-After handed to clients: {raised.value.retry_after}"
    assert host.gate.remaining() <= 3600, f"every run of this process now refused for {host.gate.remaining():.3g} s"
    assert len(str(raised.value)) < 500


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "-inf", "0x10", "Wed, 21 Oct 2015 07:28:00 GMT", ""])
def test_odd_retry_after_values_fall_back_to_a_bounded_wait(crafted: Any, value: str) -> None:
    server = crafted(lambda m, p, q: (403, {"retry-after": value},
                                      {"message": "You have exceeded a secondary rate limit"}))
    time = FakeTime()
    host = crafted_host(server, time)
    with pytest.raises(UpstreamUnavailable) as raised:
        host.check_repository(ORG, "svc", owner_ref="group:default/team-payments")
    assert all(s >= 0 for s in time.slept) and sum(time.slept) <= 5
    assert raised.value.retry_after in range(1, 3601)
    assert value not in str(raised.value) or not value


def test_the_budget_holds_in_total_across_the_calls_of_one_run(github: GitHubEmulator) -> None:
    time = FakeTime()
    host = GitHubHost(replace(host_for(github).connection, rate_limit_budget_seconds=5), org=GITHUB_ORG,
                      clock=time.clock, sleep=time.sleep)
    github.secondary_limit(50, retry_after=2)
    with pytest.raises(UpstreamUnavailable):
        ensure(host, make_spec(), skeleton_files())
    assert sum(time.slept) <= 5


def test_a_202_that_never_ends_does_not_hang_the_run(crafted: Any) -> None:
    """PyGithub's requester re-asks a 202 every 2 s of real time without end; Golden Path's own transport retries it
    like a 5xx: a few times, on the run's clock, then a named retryable problem."""
    server = crafted(lambda m, p, q: (202, {}, {}))
    time = FakeTime()
    with pytest.raises(UpstreamUnavailable, match="HTTP 202") as raised:
        crafted_host(server, time).check_repository(ORG, "svc", owner_ref="group:default/team-payments")
    assert raised.value.retryable and len(server.requests) <= 6 and sum(time.slept) < 10


def test_a_redirect_loop_on_the_same_host_is_bounded(crafted: Any) -> None:
    def route(method: str, path: str, _q: Any) -> Answer:
        return 301, {"location": "/b" if path.endswith("/a") or path.startswith("/orgs") else "/a"}, {
            "message": "Moved Permanently", "documentation_url": "https://docs.github.com"}

    server = crafted(route)
    with pytest.raises(UpstreamError, match="HTTP 301") as raised:
        crafted_host(server).check_repository(ORG, "svc", owner_ref="group:default/team-payments")
    assert raised.value.retryable and len(server.requests) <= 4


def test_a_redirect_to_another_host_is_not_followed_with_the_token(crafted: Any) -> None:
    elsewhere = crafted(lambda m, p, q: (200, {}, {"slug": "team-payments"}))
    server = crafted(lambda m, p, q: (301, {"location": f"{elsewhere.url}{p}"}, {
        "message": "Moved Permanently", "documentation_url": "https://docs.github.com"}))
    with pytest.raises(UpstreamError, match="HTTP 301"):
        crafted_host(server).check_repository(ORG, "svc", owner_ref="group:default/team-payments")
    assert elsewhere.requests == []


def test_a_followed_redirect_keeps_the_filter_golden_path_asked_for(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec, files = make_spec(collaborators=(("alice", "push"),)), skeleton_files()
    ensure(host, spec, files)
    github.rename(GITHUB_ORG, spec.name, f"{spec.name}-renamed")
    api = host.api()
    github.orgs[GITHUB_ORG].base_permission = "read"  # everyone in the org can read: only direct grants may be listed
    listed = api.get_all(f"/repos/{GITHUB_ORG}/{spec.name}/collaborators", what="list",
                         params={"affiliation": "direct"})
    assert [c["login"] for c in listed or []] == ["alice"]


def test_a_link_to_another_host_never_receives_the_token(crafted: Any) -> None:
    other = crafted(lambda m, p, q: (200, {}, []))

    def route(method: str, path: str, query: dict[str, list[str]]) -> Answer:
        if path.endswith("/collaborators") and "page" not in query:
            return 200, {"link": f'<{other.url}/repos/{ORG}/svc/collaborators?page=2>; rel="next"'}, []
        return 200, {}, []

    server = crafted(route)
    crafted_host(server).api().get_all(f"/repos/{ORG}/svc/collaborators", what="read",
                                       params={"affiliation": "direct"})
    assert other.requests == []
    assert all(TOKEN not in json.dumps(h) for _, _, h in other.requests)


def test_a_link_loop_is_bounded(crafted: Any) -> None:
    server = crafted(lambda m, p, q: (200, {"link": f'<{p}?page=2>; rel="next"'}, [{"login": "x"}]))
    with pytest.raises(UpstreamError, match="pages"):
        crafted_host(server).api().get_all(f"/repos/{ORG}/svc/collaborators", what="read")
    assert len(server.requests) <= 101


def test_a_next_page_keeps_the_filter_golden_path_asked_for(crafted: Any) -> None:
    """A next link that drops `affiliation=direct` turns page 2 into everyone with access, each with the highest
    role: a person reached only through a team then reads as a direct grant, whose higher role is accepted."""
    def route(method: str, path: str, query: dict[str, list[str]]) -> Answer:
        if "page" not in query:
            return 200, {"link": f'<{server.url}{path}?page=2>; rel="next"'}, []
        return 200, {}, []

    server = crafted(route)
    crafted_host(server).api().get_all(f"/repos/{ORG}/svc/collaborators", what="read",
                                       params={"affiliation": "direct"})
    second = [p for _, p, _ in server.requests if "page=2" in p]
    assert second and all("affiliation=direct" in p for p in second), second


# --- 3. the conditional cache ---------------------------------------------------------------------------------------


def test_the_conditional_cache_is_bounded_in_bytes_not_only_in_entries() -> None:
    cache = ConditionalCache()
    body = 256 * 1024 - 1  # just under the per-body cap: kept
    for index in range(5000):
        cache.put(f"/repos/acme/r{index}", _Cached('"e"', None, None), body)
    held = len(cache) * body
    assert held <= 64 * 1024 * 1024, f"{held / 2**30:.2f} GiB of answer text held (several times that parsed)"


def test_a_304_with_nothing_cached_is_not_read_as_missing(crafted: Any) -> None:
    """A 304 to a request that sent no If-None-Match is not an answer: read as None it makes an existing team
    'not exist' (a PolicyViolation blamed on the user) and an existing repository absent (so it is created)."""
    server = crafted(lambda m, p, q: (304, {}, None))
    api = crafted_host(server).api()
    with pytest.raises(UpstreamError):
        api.get(f"/repos/{ORG}/svc", what="read repository", missing_ok=True)


def test_one_repositorys_cached_answer_is_not_served_for_another(crafted: Any) -> None:
    def route(method: str, path: str, query: dict[str, list[str]]) -> Answer:
        if path == f"/repos/{ORG}/one":
            return 200, {"etag": '"same"'}, repo_json("one")
        return 304, {}, None  # a server that says "not modified" to anything

    server = crafted(route)
    api = crafted_host(server).api()
    api.get(f"/repos/{ORG}/one", what="read")
    try:
        other = api.get(f"/repos/{ORG}/two", what="read", missing_ok=True)
    except UpstreamError:
        return
    assert other is None or other.get("full_name") != f"{ORG}/one"
    assert not any("if-none-match" in {k.lower() for k in h} for _, p, h in server.requests if p.endswith("/two"))


# --- 4. malformed answers: named problems, never bare exceptions --------------------------------------------------


def test_a_marker_that_is_a_directory_is_a_named_problem(crafted: Any) -> None:
    """A hostile member makes `.goldenpath.yaml` a directory: GitHub's contents API answers a list."""
    def route(method: str, path: str, _q: Any) -> Answer:
        if (found := basics(method, path)) is not None:
            return found
        if path.endswith("/contents/.goldenpath.yaml"):
            return 200, {}, [{"type": "file", "name": "x", "path": ".goldenpath.yaml/x"}]
        return 404, {}, {"message": "Not Found"}

    host = crafted_host(crafted(route))
    with pytest.raises((ConflictError, UpstreamError)):
        host.check_repository(ORG, "svc", owner_ref="group:default/team-payments")


@pytest.mark.parametrize("errors", [5, "text", {"a": 1}, [None, 3]])
def test_an_odd_errors_field_is_a_named_problem(crafted: Any, errors: Any) -> None:
    server = crafted(lambda m, p, q: (403, {}, {"message": "Forbidden", "errors": errors}))
    with pytest.raises(UpstreamError):
        crafted_host(server).check_repository(ORG, "svc", owner_ref="group:default/team-payments")


def test_an_invitation_that_is_not_an_object_is_a_named_problem(crafted: Any) -> None:
    def route(method: str, path: str, _q: Any) -> Answer:
        if path.endswith("/collaborators"):
            return 200, {}, []
        if path.endswith("/invitations"):
            return 200, {}, ["junk", {"invitee": "alice", "permissions": "admin"}]
        return 404, {}, {"message": "Not Found"}

    run = crafted_run(crafted_host(crafted(route)))
    with contextlib.suppress(UpstreamError):
        run._collaborator("alice", "push").read()


def test_an_empty_codeowners_answer_is_a_named_problem(crafted: Any) -> None:
    run = crafted_run(crafted_host(crafted(lambda m, p, q: (200, {}, None))))
    with pytest.raises(UpstreamError):
        run._check_codeowners()


def test_an_empty_ruleset_answer_is_a_named_problem(crafted: Any) -> None:
    def route(method: str, path: str, _q: Any) -> Answer:
        if path.endswith("/rulesets"):
            return 200, {}, [{"id": 1, "name": github_protection.RULESET_NAME, "source_type": "Repository"}]
        return 200, {}, None

    run = crafted_run(crafted_host(crafted(route)), protection=Protection(mode="ruleset"))
    with pytest.raises(UpstreamError):
        run._protection_setting().read()


def test_a_422_without_a_body_on_create_is_a_named_problem(crafted: Any) -> None:
    run = crafted_run(crafted_host(crafted(lambda m, p, q: (422, {}, None))))
    with pytest.raises(UpstreamError):
        run.create_repository()


def test_a_huge_422_on_create_is_capped_in_the_error(crafted: Any) -> None:
    errors = [{"field": "description", "code": "custom", "message": "x" * 1000} for _ in range(200)]
    run = crafted_run(crafted_host(crafted(lambda m, p, q: (422, {}, {"message": "Validation", "errors": errors}))))
    with pytest.raises(UpstreamError) as raised:
        run.create_repository()
    assert len(str(raised.value)) <= 2000, f"{len(str(raised.value))} characters of GitHub's text in one error"


def test_the_token_echoed_by_a_server_does_not_reach_the_error(crafted: Any) -> None:
    server = crafted(lambda m, p, q: (403, {}, {"message": f"token {TOKEN} may not read this"}))
    with pytest.raises(UpstreamError) as raised:
        crafted_host(server).check_repository(ORG, "svc", owner_ref="group:default/team-payments")
    assert TOKEN not in str(raised.value)


# --- 5. renames and odd names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("full_name", [f"{ORG}/..", f"{ORG}/.", f"{ORG}/svc/../../orgs", f"{ORG}/svc2\n"])
def test_a_full_name_that_is_a_dot_segment_is_not_followed(crafted: Any, full_name: str) -> None:
    """urllib3 removes dot segments: /repos/acme/../contents/... would address another resource."""
    def route(method: str, path: str, _q: Any) -> Answer:
        if method == "GET" and path == f"/repos/{ORG}/svc":
            return 200, {}, repo_json(full_name=full_name)
        if (found := basics(method, path)) is not None:
            return found
        return 404, {}, {"message": "Not Found"}

    server = crafted(route)
    with pytest.raises((ConflictError, UpstreamError)):
        crafted_host(server).check_repository(ORG, "svc", owner_ref="group:default/team-payments")
    assert all(p.startswith(f"/repos/{ORG}/svc") or p.startswith(f"/orgs/{ORG}/teams/")
               for _, p, _ in server.requests), [p for _, p, _ in server.requests]


def test_another_team_asking_for_the_old_name_of_a_renamed_repository_gets_nothing(github: GitHubEmulator) -> None:
    host = host_for(github)
    ours = make_spec()
    ensure(host, ours, skeleton_files())
    github.rename(GITHUB_ORG, ours.name, f"{ours.name}-moved")
    theirs = replace(ours, owner_team="team-ledger", owner_ref="group:default/team-ledger")
    mark = len(github.log)
    for adopt in (False, True):
        with pytest.raises(ConflictError, match="owned by group:default/team-payments"):
            ensure(host, theirs, skeleton_files(team="team-ledger"), adopt=adopt)
    assert [m for m, _, _ in github.log[mark:] if m != "GET"] == []


def test_another_team_asking_with_other_case_gets_nothing(crafted: Any) -> None:
    """GitHub's names are case-insensitive: SVC answers with acme/svc (the emulator is case-sensitive, so crafted)."""
    marker = base64.b64encode(b"owner: group:default/team-payments\nteam: team-payments\n").decode()

    def route(method: str, path: str, _q: Any) -> Answer:
        if method == "GET" and path == f"/orgs/{ORG}/teams/team-ledger":
            return 200, {}, {"slug": "team-ledger"}
        if method == "GET" and path == f"/repos/{ORG}/SVC":
            return 200, {}, repo_json("svc")
        if method == "GET" and path == f"/repos/{ORG}/SVC/contents/.goldenpath.yaml":
            return 200, {}, {"type": "file", "encoding": "base64", "content": marker}
        return 404, {}, {"message": "Not Found"}

    host = crafted_host(crafted(route))
    with pytest.raises(ConflictError, match="owned by group:default/team-payments"):
        host.check_repository(ORG, "SVC", owner_ref="group:default/team-ledger")


def test_a_handmade_repository_renamed_onto_a_redirect_is_not_adopted(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec = make_spec()
    github.create_repo({"org": GITHUB_ORG}, {"name": "handmade", "auto_init": False}, {}, "mallory")  # empty
    github.rename(GITHUB_ORG, "handmade", "elsewhere-name")
    github.create_repo({"org": GITHUB_ORG}, {"name": spec.name, "auto_init": True}, {}, "mallory")
    github.rename(GITHUB_ORG, spec.name, "handmade")  # the name we ask for now redirects to an empty-ish repo
    mark = len(github.log)
    with pytest.raises(ConflictError):
        ensure(host, spec, skeleton_files(), adopt=True)
    assert [m for m, _, _ in github.log[mark:] if m != "GET"] == []


# --- 6. inherited roles ----------------------------------------------------------------------------------------------


def test_a_parent_teams_role_does_not_stand_in_for_the_grant_asked_for(github: GitHubEmulator) -> None:
    """team-payments holds `pull` itself; a hostile member makes `platform` (admin here) its parent. The run reads
    admin, 'explained' by the parent, and writes nothing: moving the parent back leaves the team with pull."""
    host = host_for(github)
    github.add_team(GITHUB_ORG, "platform")
    spec = make_spec(team_permission="maintain")
    ensure(host, spec, skeleton_files())
    org = github.orgs[GITHUB_ORG]
    org.team_repos["team-payments"][spec.name] = "pull"
    org.team_repos["platform"][spec.name] = "admin"
    org.team_parent["team-payments"] = "platform"
    ensure(host, spec, skeleton_files())
    org.team_parent["team-payments"] = None
    assert org.team_repos["team-payments"][spec.name] == "maintain", "the team is left with its own pull"


def test_a_pending_invitation_with_a_higher_permission_is_set_to_what_was_asked(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec = make_spec(collaborators=(("bob", "push"),))
    ensure(host, spec, skeleton_files())
    github.repos[(GITHUB_ORG, spec.name)].invitations["bob"] = "admin"
    result, _ = ensure(host, spec, skeleton_files())
    assert github.repos[(GITHUB_ORG, spec.name)].invitations["bob"] == "write"
    assert result.settings["collaborators"] == {"bob": "write"}


# --- 7. rulesets ------------------------------------------------------------------------------------------------------


def our_ruleset(github: GitHubEmulator, name: str) -> dict[str, Any]:
    found = [r for r in github.repos[(GITHUB_ORG, name)].rulesets.values()
             if r["name"] == github_protection.RULESET_NAME]
    assert len(found) == 1
    return found[0]


@pytest.mark.parametrize("actor", [
    {"actor_id": 1, "actor_type": "OrganizationAdmin", "bypass_mode": "always"},
    {"actor_id": 4242, "actor_type": "Integration", "bypass_mode": "always"},
    {"actor_id": 1, "actor_type": "RepositoryRole", "bypass_mode": "always"},  # read role: everyone may bypass
])
def test_a_foreign_bypass_actor_is_not_read_as_conformant(github: GitHubEmulator, actor: dict[str, Any]) -> None:
    """enforceAdmins: false asks for exactly one bypass (the repository admin role); the read-back only asks
    whether the list is empty, so any other bypass actor added by hand reads as conformant."""
    host = host_for(github)
    spec = make_spec(protection=Protection(required_status_checks=("ci",), enforce_admins=False, mode="ruleset"))
    ensure(host, spec, skeleton_files())
    our_ruleset(github, spec.name)["bypass_actors"].append(actor)  # beside the one asked for
    ensure(host, spec, skeleton_files())
    assert our_ruleset(github, spec.name)["bypass_actors"] == [
        {"actor_id": 5, "actor_type": "RepositoryRole", "bypass_mode": "always"}]


def test_a_loosened_status_check_policy_is_restored(github: GitHubEmulator) -> None:
    host = host_for(github)
    spec = make_spec(protection=Protection(required_status_checks=("ci",), mode="ruleset"))
    ensure(host, spec, skeleton_files())
    for rule in our_ruleset(github, spec.name)["rules"]:
        if rule["type"] == "required_status_checks":
            rule["parameters"]["strict_required_status_checks_policy"] = False
            rule["parameters"]["do_not_enforce_on_create"] = True
    ensure(host, spec, skeleton_files())
    checks = [r for r in our_ruleset(github, spec.name)["rules"] if r["type"] == "required_status_checks"]
    assert checks[0]["parameters"]["strict_required_status_checks_policy"] is True
    assert not checks[0]["parameters"].get("do_not_enforce_on_create")


@pytest.mark.parametrize("tamper", ["disabled", "tag-target", "include-all-exclude-main", "extra-include"])
def test_other_weakened_rulesets_are_restored(github: GitHubEmulator, tamper: str) -> None:
    host = host_for(github)
    spec = make_spec(protection=Protection(required_status_checks=("ci",), mode="ruleset"))
    ensure(host, spec, skeleton_files())
    ruleset = our_ruleset(github, spec.name)
    if tamper == "disabled":
        ruleset["enforcement"] = "disabled"
    elif tamper == "tag-target":
        ruleset["target"] = "tag"
    elif tamper == "include-all-exclude-main":
        ruleset["conditions"]["ref_name"] = {"include": ["~ALL"], "exclude": ["refs/heads/main"]}
    else:
        ruleset["conditions"]["ref_name"]["include"] = ["refs/heads/main", "refs/heads/other"]
    ensure(host, spec, skeleton_files())
    restored = our_ruleset(github, spec.name)
    assert restored["enforcement"] == "active" and restored["target"] == "branch"
    assert restored["conditions"]["ref_name"] == {"include": ["refs/heads/main"], "exclude": []}
