"""GitHubHost: the RepositoryHost port over GitHub.com or GitHub Enterprise Server.

A new repository gets the rendered skeleton as one commit through the Git Data API (one tree with the
contents inline, one root commit, one ref update), so the push costs the same calls for 10 files or
1,000. Git Data answers 409 on an empty repository, so an empty one is first given a commit through
the Contents API; the branch is then forced to the root commit, which leaves that seed commit out of
history. GitHub creates repositories asynchronously: for a moment after creation its calls can answer
404 or 409, so the publishing calls retry within `creation_window_seconds`, then fail retryable.

Settings (description, visibility, default branch, topics, team access, collaborators, branch
protection as a repository ruleset or classic protection) are each read, compared and written only when
they differ, then read back: what GitHub reports is what the action returns, and anything GitHub did not
apply fails the run (fail closed). A team's own grant is read from the repository's teams (direct grants).
GitHub reports a person's highest role from any grant, so a direct collaborator read with a higher role than
asked for is accepted when a team of the repository or the organization's base role explains it, and is set
back otherwise (REST cannot show the direct level apart from a higher inherited one).
CODEOWNERS must exist and be valid by GitHub's own check.

Ownership lives in the repository: `.goldenpath.yaml` names the skeleton, the owner (a full entity ref)
and its team; a marker from before full refs names only the team, that is `group:default/<team>`. An
existing repository without it is a conflict unless `adopt`; one with another owner's always is. An empty
repository holds nothing to lose: that is how a run that stopped after creating it finishes on retry, when an
earlier run of the same owner began creating it (otherwise an empty repository is someone else's, made by hand).
A repository renamed within the organization (GitHub redirects its old name) is followed only when it is ours;
one transferred to another organization is a conflict.
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import yaml
from github import Auth, Github, GithubException, GithubIntegration

from backend.errors import ConflictError, PolicyViolation, UpstreamError, UpstreamUnavailable, cap
from backend.ownership import canonical_ref, same_owner
from backend.providers import github_protection
from backend.providers.changes import Change, Outcome
from backend.providers.github_api import PROVIDER, ConditionalCache, GitHubApi, RateGate, field_of
from backend.providers.github_http import GitHubTransport
from backend.providers.journal import intend
from backend.providers.repositories import (
    RepositoryHost,
    RepositoryResult,
    RepositorySpec,
    owner_team_of,
    recorded_owner,
)

MARKER = ".goldenpath.yaml"
SEED_MESSAGE = "Golden Path: initialise the repository"
ROLE_OF_PERMISSION = {"pull": "read", "triage": "triage", "push": "write", "maintain": "maintain", "admin": "admin"}
ROLE_RANK = {"none": 0, "read": 1, "triage": 2, "write": 3, "maintain": 4, "admin": 5}
UNREADABLE = "unreadable"  # a grant Golden Path's credentials may not see
REPOSITORY_NAME = re.compile(r"(?!\.{1,2}\Z)[A-Za-z0-9._-]{1,100}")  # fullmatch: no trailing newline slips by
CREATING_STATUSES = (404, 409)  # what GitHub answers about a repository it is still creating


@dataclass(frozen=True)
class GitHubConnection:
    api_url: str = "https://api.github.com"
    web_url: str | None = None
    token: str | None = None
    app_id: str | None = None
    app_private_key: str | None = None
    app_installation_id: int | None = None
    timeout_seconds: float = 15.0
    seconds_between_requests: float = 0.25
    seconds_between_writes: float = 1.0
    rate_limit_budget_seconds: float = 180.0
    creation_window_seconds: float = 30.0
    conditional_requests: bool = True

    def __repr__(self) -> str:  # the dataclass repr would print the token and the key
        return f"GitHubConnection(api_url={self.api_url!r}, app_id={self.app_id!r})"


@dataclass(frozen=True)
class _Setting:
    """One group of settings: how to read it (normalised), whether it satisfies the wish, how to write it."""

    name: str
    wanted: Any
    read: Callable[[], Any]
    write: Callable[[], object]
    satisfied: Callable[[Any, Any], bool] = lambda current, wanted: bool(current == wanted)


@dataclass(frozen=True)
class _Pace:
    """How long GitHub may take to create a repository, and the clock and sleep to wait it out with."""

    window_seconds: float
    clock: Callable[[], float]
    sleep: Callable[[float], None]


class GitHubHost(RepositoryHost):
    kind = "github"

    def __init__(self, connection: GitHubConnection, *, org: str, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not connection.token and not (connection.app_id and connection.app_private_key):
            raise ValueError("github needs a token (github.token, github.token_file or GITHUB_TOKEN) "
                             "or a GitHub App (github.app_id with github.app_private_key_file)")
        self.connection = connection
        self.org = org
        self.web_url = (connection.web_url or _web_url_of(connection.api_url)).rstrip("/")
        self.cache = ConditionalCache() if connection.conditional_requests else None
        self.gate = RateGate(clock)
        self._pace = _Pace(connection.creation_window_seconds, clock, sleep)
        self._http: GitHubTransport | None = None
        self._auth: Auth.Auth | None = None
        self._lock = threading.RLock()

    def api(self) -> GitHubApi:
        return GitHubApi(self._transport(), budget_seconds=self.connection.rate_limit_budget_seconds,
                         cache=self.cache, gate=self.gate, clock=self._pace.clock, sleep=self._pace.sleep,
                         secrets=tuple(s for s in (self.connection.token,) if s))

    def _transport(self) -> GitHubTransport:
        with self._lock:
            if self._http is None:
                connection = self.connection
                self._http = GitHubTransport(
                    api_url=connection.api_url, auth=self._credentials, timeout_seconds=connection.timeout_seconds,
                    seconds_between_requests=connection.seconds_between_requests,
                    seconds_between_writes=connection.seconds_between_writes)
            return self._http

    def _credentials(self) -> Auth.Auth:
        """A token, or a GitHub App installation's token (PyGithub mints and refreshes it), found on first use:
        finding the installation is a call GitHub must answer."""
        with self._lock:
            if self._auth is None:
                try:
                    auth = _auth(self.connection, self.org)
                except GithubException as error:
                    raise UpstreamError(f"GitHub App: no installation for organization {self.org} "
                                        f"(HTTP {error.status})", provider=PROVIDER) from None
                except requests.RequestException as error:
                    raise UpstreamUnavailable(f"GitHub did not answer the App installation lookup "
                                              f"({type(error).__name__})", provider=PROVIDER) from None
                # the requester PyGithub gives an App installation's credentials, to mint their tokens
                client = Github(base_url=self.connection.api_url.rstrip("/"), auth=auth, retry=None, lazy=True,
                                timeout=int(self.connection.timeout_seconds), user_agent="goldenpath")
                self._auth = client.requester.auth or auth
            return self._auth

    def ensure_repository(
        self, spec: RepositorySpec, files: dict[str, bytes], *, adopt: bool, dry_run: bool,
        on_change: Callable[[Change], object], fresh_name: bool = False,
        before_create: Callable[[], object] | None = None,
    ) -> RepositoryResult:
        owner_team_of(spec.owner_ref)  # a person has no team: refused before anything is read or written
        api = self.api()
        run = _Run(api, spec, on_change, dry_run=dry_run, pace=self._pace)
        run.require_team()
        repo = run.read_repository()
        if repo is None and dry_run:
            on_change(Change("repository.repo", run.locator, Outcome.CREATED, details={"files": len(files)}))
            return self._planned(spec, api)
        if repo is None and before_create is not None:
            before_create()
        if repo is None:
            intend(Change("repository.repo", run.locator, Outcome.CREATED, details={"files": len(files)}))
        created = run.create_repository() if repo is None else None
        if created is not None:
            repo, publish = created, True
            on_change(Change("repository.repo", run.locator, Outcome.CREATED, details={"files": len(files)}))
        else:  # it existed, or another run created it a moment ago
            raced = repo is None  # taken between our read and our create: by a run of this owner (claims say so)
            repo = repo or run.read_repository()
            if repo is None:
                raise UpstreamError(f"repository {run.locator} was taken and then vanished", provider=PROVIDER,
                                    retryable=True)
            publish = run.claim(repo, adopt=adopt, resumable=raced or not fresh_name)
            on_change(Change("repository.content", run.locator, Outcome.CREATED if publish else Outcome.UNCHANGED,
                             details={"files": len(files)} if publish else {}))
        commit = ""
        if publish and not dry_run:
            intend(Change("repository.content", run.locator, Outcome.CREATED, details={"files": len(files)}))
            commit = run.publish(files, new=created is not None)
        # publishing the first commit can move the default branch: read the repository afresh then
        settings = run.converge(None if commit else repo, content_exists=not dry_run or not publish)
        if not commit and not publish:
            commit = run.head()
        html_url = str(field_of(repo, "html_url", f"read repository {run.locator}"))
        contents_url = f"{html_url}/blob/{spec.default_branch}"
        return RepositoryResult(remote_url=str(field_of(repo, "clone_url", f"read repository {run.locator}")),
                                contents_url=contents_url, commit_hash=commit, settings=settings, writes=api.writes)

    def check_repository(self, org: str, name: str, *, owner_ref: str, fresh_name: bool = False) -> bool:
        team = owner_team_of(owner_ref)
        ownership = _Ownership(self.api(), org=org, name=name, owner_ref=owner_ref, owner_team=team)
        ownership.require_team()
        repo = ownership.read_repository()
        if repo is None:
            return False
        ownership.claim(repo, adopt=False, resumable=not fresh_name)
        return True

    def _planned(self, spec: RepositorySpec, api: GitHubApi) -> RepositoryResult:
        html_url = f"{self.web_url}/{spec.org}/{spec.name}"
        return RepositoryResult(remote_url=f"{html_url}.git", contents_url=f"{html_url}/blob/{spec.default_branch}",
                                commit_hash="", settings=_wanted_report(spec), writes=api.writes)


class _Ownership:
    """Reads about one repository: does the owning team exist, does the repository, and is it ours."""

    def __init__(self, api: GitHubApi, *, org: str, name: str, owner_ref: str, owner_team: str) -> None:
        self.api, self.org, self.owner_team = api, org, owner_team
        self.owner_ref = canonical_ref(owner_ref)
        self.moved_from: str | None = None
        self._place(name)

    def _place(self, name: str) -> None:
        self.name = name
        self.locator = f"{self.org}/{name}"
        self.base = f"/repos/{quote(self.org)}/{quote(name)}"

    def require_team(self) -> None:
        team = self.api.get(f"/orgs/{quote(self.org)}/teams/{quote(self.owner_team)}",
                            what=f"read team {self.owner_team}", missing_ok=True)
        if team is None:
            raise PolicyViolation(f"team {self.owner_team!r} does not exist in the GitHub organization {self.org}",
                                  rule="owner-team-exists", field="owner")
    def read_repository(self) -> dict[str, Any] | None:
        repo: dict[str, Any] | None = self.api.get(self.base, what=f"read repository {self.locator}", missing_ok=True)
        if repo is not None:
            self._follow(repo)
        return repo

    def _follow(self, repo: dict[str, Any]) -> None:
        """GitHub answers a renamed or transferred repository's old name with the repository at its new one."""
        full_name = str(repo.get("full_name") or self.locator)
        owner, _, name = full_name.partition("/")
        if full_name.lower() == self.locator.lower():
            return
        if owner.lower() != self.org.lower() or not REPOSITORY_NAME.fullmatch(name):
            raise ConflictError(f"repository {self.locator} was transferred to {full_name}: Golden Path manages "
                                f"repositories of {self.org} only; move it back or choose another name")
        self.moved_from = self.moved_from or self.locator
        self._place(name)

    def claim(self, repo: dict[str, Any], *, adopt: bool, resumable: bool = True) -> bool:
        """May this run manage `repo`? Returns whether its content still has to be published. `resumable`: an
        empty repository may be one a stopped run of this owner created (else someone made it by hand)."""
        branch = str(field_of(repo, "default_branch", f"read repository {self.locator}"))
        found = self.api.get(f"{self.base}/contents/{MARKER}", what=f"read {MARKER} of {self.locator}",
                             params={"ref": branch}, missing_ok=True)
        if found is None and self.moved_from is not None:  # only our own repository is followed to its new name
            raise ConflictError(f"repository {self.moved_from} was renamed to {self.locator}, which Golden Path "
                                "does not manage; choose another name")
        if found is None:
            if self._is_empty(branch) and (resumable or adopt):
                return True
            if adopt:
                return False
            raise ConflictError(f"repository {self.locator} exists and was not created by Golden Path; "
                                "set adopt: true to apply settings only")
        marker = _parse_marker(found)
        owner = recorded_owner(owner=marker.get("owner"), team=marker.get("team"))
        if owner is not None and not same_owner(owner, self.owner_ref):  # adopt is for unmarked repositories only
            raise ConflictError(f"repository {self.locator} is owned by {owner}", owner=owner)
        if owner is None:  # Golden Path's marker always names its owner: this one was not written by it
            raise ConflictError(f"repository {self.locator} has a {MARKER} that names no owner, so it was not "
                                "created by Golden Path; choose another name")
        return bool(marker.get("publishing"))  # only the seed commit is there: a run stopped mid-publish

    def _is_empty(self, branch: str) -> bool:
        status, _ = self.api.call("GET", f"{self.base}/git/ref/heads/{quote(branch)}",
                                  what=f"read branch {branch} of {self.locator}", accept=CREATING_STATUSES)
        if status == 404:  # the default branch of a repository with commits exists: GitHub is still creating it
            raise UpstreamUnavailable(f"GitHub does not show branch {branch} of {self.locator} yet (HTTP 404): it "
                                      "may still be creating the repository; retry", provider=PROVIDER)
        return status == 409  # GitHub: "Git Repository is empty."


class _Run(_Ownership):
    """One ensure_repository call: the spec, the API view and the change callback it reports to."""

    def __init__(self, api: GitHubApi, spec: RepositorySpec, on_change: Callable[[Change], object], *,
                 dry_run: bool, pace: _Pace) -> None:
        super().__init__(api, org=spec.org, name=spec.name, owner_ref=spec.owner_ref, owner_team=spec.owner_team)
        self.spec, self.on_change, self.dry_run, self.pace = spec, on_change, dry_run, pace
        self._settle_by: float | None = None

    def create_repository(self) -> dict[str, Any] | None:
        """The new repository, or None when the name was taken in the meantime (GitHub answers 422)."""
        spec = self.spec
        body = {"name": spec.name, "description": spec.description, "visibility": spec.visibility,
                "auto_init": False, "has_wiki": False, "delete_branch_on_merge": True}
        status, repo = self.api.call("POST", f"/orgs/{quote(spec.org)}/repos", body=body, accept=(422,),
                                     what=f"create repository {self.locator}")
        answer = repo if isinstance(repo, dict) else {}
        listed = answer.get("errors")
        errors: list[Any] = listed if isinstance(listed, list) else []
        if status == 422:
            if any(isinstance(e, dict) and e.get("field") == "name" for e in errors):
                return None
            raise UpstreamError(f"GitHub refused to create repository {self.locator} (HTTP 422): "
                                f"{cap(_show(errors or answer.get('message')), 300)}", provider=PROVIDER)
        field_of(answer, "html_url", f"create repository {self.locator}")
        return dict(answer)

    def publish(self, files: dict[str, bytes], *, new: bool) -> str:
        """`new`: this run created the repository a moment ago, so it is known to be empty."""
        spec, base = self.spec, self.base
        if new or self._is_empty(spec.default_branch):
            self._seed()
        entries = [self._tree_entry(path, content) for path, content in sorted(files.items())]
        what = f"write the skeleton tree of {self.locator}"
        tree = self._settled("POST", f"{base}/git/trees", what=what, body={"tree": entries})
        what = f"commit the skeleton to {self.locator}"
        commit = self._settled("POST", f"{base}/git/commits", what=what, body={
            "message": spec.commit_message, "tree": field_of(tree, "sha", what), "parents": []})
        sha = str(field_of(commit, "sha", what))
        self._settled("PATCH", f"{base}/git/refs/heads/{quote(spec.default_branch)}", body={"sha": sha, "force": True},
                      what=f"point {spec.default_branch} of {self.locator} at the skeleton commit")
        return sha

    def _settled(self, verb: str, path: str, *, what: str, body: Any = None) -> Any:
        """A publishing call: GitHub answers 404 or 409 while it is still creating the repository, so those
        are retried (with backoff) for `creation_window_seconds` from the first one, then retryable."""
        attempt = 0
        while True:
            status, data = self.api.call(verb, path, what=what, body=body, accept=CREATING_STATUSES)
            if status not in CREATING_STATUSES:
                return data
            now = self.pace.clock()
            self._settle_by = self._settle_by if self._settle_by is not None else now + self.pace.window_seconds
            if now >= self._settle_by:
                raise UpstreamUnavailable(
                    f"GitHub is still creating {self.locator}: {what} answered HTTP {status} for "
                    f"{self.pace.window_seconds:.0f} s (github.creation_window_seconds); retry", provider=PROVIDER)
            self.pace.sleep(min(2.0, 0.25 * 2 ** attempt, max(0.0, self._settle_by - now)))
            attempt += 1

    def _seed(self) -> None:
        """Git Data needs a first commit. The seed's marker says publishing is under way, so a run that stops
        before the branch points at the skeleton is finished by the next one."""
        spec = self.spec
        seed = yaml.safe_dump({"skeleton": spec.skeleton, "owner": spec.owner_ref, "team": spec.owner_team,
                               "publishing": True}).encode()
        body = {"message": SEED_MESSAGE, "content": base64.b64encode(seed).decode(), "branch": spec.default_branch}
        self._settled("PUT", f"{self.base}/contents/{MARKER}", body=body, what=f"give {self.locator} its first commit")

    def _tree_entry(self, path: str, content: bytes) -> dict[str, Any]:
        mode = "100755" if content.startswith(b"#!") else "100644"
        try:
            return {"path": path, "mode": mode, "type": "blob", "content": content.decode("utf-8")}
        except UnicodeDecodeError:  # binary content cannot go inline: one blob call for each such file
            what = f"write {path} to {self.locator}"
            blob = self._settled("POST", f"{self.base}/git/blobs", what=what,
                                 body={"content": base64.b64encode(content).decode(), "encoding": "base64"})
            return {"path": path, "mode": mode, "type": "blob", "sha": field_of(blob, "sha", what)}

    def head(self) -> str:
        branch = self.spec.default_branch
        what = f"read branch {branch} of {self.locator}"
        status, ref = self.api.call("GET", f"{self.base}/git/ref/heads/{quote(branch)}", what=what,
                                    accept=CREATING_STATUSES)
        return str(field_of(field_of(ref, "object", what), "sha", what)) if status == 200 else ""

    def converge(self, repo: dict[str, Any] | None, *, content_exists: bool) -> dict[str, Any]:
        """`repo` is GitHub's answer when it is still current, None to read it afresh."""
        report: dict[str, Any] = {}
        settings = self._settings(repo, content_exists=content_exists)
        for setting in settings:
            current = setting.read()
            if setting.satisfied(current, setting.wanted):
                self.on_change(Change(f"repository.{setting.name}", self.locator, Outcome.UNCHANGED))
            else:
                outcome = Outcome.CREATED if current in (None, {}, [], "none") else Outcome.UPDATED
                change = Change(f"repository.{setting.name}", self.locator, outcome, fields=(setting.name,),
                                details={"differences": [{"field": setting.name, "expected": setting.wanted,
                                                          "actual": current}]})
                self.on_change(change)
                if not self.dry_run:
                    intend(change)
                    setting.write()
                    current = setting.read()
                    if not setting.satisfied(current, setting.wanted):
                        raise UpstreamError(
                            f"GitHub did not apply the {setting.name} of {self.locator}: asked for "
                            f"{_show(setting.wanted)}, in force {_show(current)}", provider=PROVIDER)
            report[setting.name] = current
        if content_exists:
            report["codeowners"] = self._check_codeowners()
        if self.moved_from is not None:
            report["renamedFrom"] = self.moved_from
        return _report(report)

    def _settings(self, repo: dict[str, Any] | None, *, content_exists: bool) -> list[_Setting]:
        spec, base, api = self.spec, self.base, self.api
        known: dict[str, Any] = {"repo": repo, "fields": {}}

        def read_repo() -> dict[str, Any]:
            current = known["repo"] or api.get(base, what=f"read repository {self.locator}")
            known["repo"] = None  # a read after a write asks GitHub again
            known["fields"] = _repo_fields(current)
            return dict(known["fields"])

        def write_repo() -> None:
            changes = {k: v for k, v in _wanted_fields(spec).items() if known["fields"].get(k) != v}
            api.call("PATCH", base, what=f"update {', '.join(sorted(changes))} of {self.locator}", body=changes)

        settings = [
            _Setting("repository", _wanted_fields(spec), read_repo, write_repo),
            _Setting("topics", sorted(spec.topics), self._read_topics,
                     lambda: api.call("PUT", f"{base}/topics", what=f"set the topics of {self.locator}",
                                      body={"names": sorted(spec.topics)})),
            self._team_setting(),
        ]
        settings.extend(self._collaborator(login, permission) for login, permission in spec.collaborators)
        if content_exists:  # a dry-run of an empty repository: nothing to protect yet
            settings.append(self._protection_setting())
        return settings

    def _read_topics(self) -> list[str]:
        data = self.api.get(f"{self.base}/topics", what=f"read the topics of {self.locator}")
        return sorted(field_of(data, "names", f"read the topics of {self.locator}"))

    def _team_setting(self) -> _Setting:
        """The owning team's own grant, read from the repository's teams (direct grants only): the check endpoint
        reports effective access, where a parent team's grant would stand in for the one asked for."""
        spec, team = self.spec, self.spec.owner_team
        team_path = f"/orgs/{quote(self.org)}/teams/{quote(team)}/repos/{quote(self.org)}/{quote(self.name)}"

        def read() -> dict[str, str]:
            teams = self.api.get_all(f"{self.base}/teams", what=f"read the teams of {self.locator}")
            for entry in teams or []:
                if isinstance(entry, dict) and str(entry.get("slug", "")).lower() == team.lower():
                    return {team: _permission_of(entry)}
            return {}

        return _Setting("teams", {team: spec.team_permission}, read,
                        lambda: self.api.call("PUT", team_path, what=f"grant team {team} access to {self.locator}",
                                              body={"permission": spec.team_permission}))

    def _protection_setting(self) -> _Setting:
        spec, base = self.spec, self.base
        branch = spec.default_branch
        if self._protection_mode() == "classic":
            path = f"{base}/branches/{quote(branch)}/protection"
            return _Setting("protection", github_protection.wanted(spec), self._read_protection,
                            lambda: self.api.call("PUT", path, what=f"protect {branch} of {self.locator}",
                                                  body=github_protection.classic_body(spec)))
        found: dict[str, int | None] = {"id": None}

        def read() -> dict[str, Any] | None:
            found["id"] = self._ruleset_id()
            if found["id"] is None:
                return None
            what = f"read ruleset {github_protection.RULESET_NAME} of {self.locator}"
            data = self.api.get(f"{base}/rulesets/{found['id']}", what=what)
            if not isinstance(data, dict):
                raise UpstreamError(f"GitHub answered {what} without the ruleset; re-run", provider=PROVIDER,
                                    retryable=True)
            return github_protection.from_ruleset(data)

        def write() -> object:
            body, what = github_protection.ruleset_body(spec), f"protect {branch} of {self.locator} with a ruleset"
            if found["id"] is None:
                return self.api.call("POST", f"{base}/rulesets", what=what, body=body)
            return self.api.call("PUT", f"{base}/rulesets/{found['id']}", what=what, body=body)

        return _Setting("protection", github_protection.wanted_ruleset(spec), read, write)

    def _protection_mode(self) -> str:
        """As asked; else a ruleset where GitHub offers repository rulesets (an older Enterprise Server answers
        404, a plan without them 403), classic protection otherwise."""
        if self.spec.protection.mode:
            return self.spec.protection.mode
        rulesets = self._rulesets(absent=(403, 404))
        return "classic" if rulesets is None else "ruleset"

    def _rulesets(self, absent: tuple[int, ...] = ()) -> list[Any] | None:
        return self.api.get_all(f"{self.base}/rulesets", what=f"read the rulesets of {self.locator}",
                                params={"includes_parents": "false"}, absent=absent)

    def _ruleset_id(self) -> int | None:
        """Golden Path's ruleset, by name, among the repository's own (an organization's cannot stand in)."""
        for ruleset in self._rulesets() or []:
            if (isinstance(ruleset, dict) and ruleset.get("name") == github_protection.RULESET_NAME
                    and ruleset.get("source_type", "Repository") == "Repository"
                    and isinstance(ruleset.get("id"), int)):
                return int(ruleset["id"])
        return None

    def _read_protection(self) -> dict[str, Any] | None:
        data = self.api.get(f"{self.base}/branches/{quote(self.spec.default_branch)}/protection",
                            what=f"read the protection of {self.spec.default_branch} in {self.locator}",
                            missing_ok=True)
        return None if data is None else github_protection.from_classic(data)

    def _collaborator(self, login: str, permission: str) -> _Setting:
        """A person's access. GitHub lists direct collaborators with their highest role from any grant (a team,
        the organization's base role), so a role above the one asked for is accepted when such a grant explains
        it, and otherwise is the direct grant raised beyond what was asked, which is set back. A pending
        invitation holds exactly the permission it offers."""
        path = f"{self.base}/collaborators/{quote(login)}"
        role = ROLE_OF_PERMISSION.get(permission, permission)
        seen: dict[str, Any] = {"direct": False, "explained": None}

        def read() -> str | None:
            # direct grants only: people with access through teams or the base role only are not collaborators
            listed = self.api.get_all(f"{self.base}/collaborators", what=f"read the collaborators of {self.locator}",
                                      params={"affiliation": "direct"})
            granted = {str(c.get("login", "")).lower(): str(c.get("role_name") or "") for c in listed or []
                       if isinstance(c, dict)}
            seen["direct"], seen["explained"] = login.lower() in granted, None
            if seen["direct"]:
                current = granted[login.lower()]
                above = ROLE_RANK.get(current, -1) > ROLE_RANK[role]
                seen["explained"] = self._role_from_other_grants(login) if above else None
                return current
            invitations = self.api.get_all(f"{self.base}/invitations", what=f"read the invitations of {self.locator}")
            for invitation in invitations or []:
                if not isinstance(invitation, dict) or not isinstance(invitation.get("invitee"), dict):
                    continue
                invitee = str(invitation["invitee"].get("login", "")).lower()
                if invitee == login.lower() and not invitation.get("expired"):
                    return str(invitation.get("permissions"))
            return None

        def satisfied(current: str | None, wanted: str) -> bool:
            if current == wanted:
                return True
            rank = ROLE_RANK.get(str(current), -1)
            explained = seen["explained"]
            return bool(seen["direct"]) and rank > ROLE_RANK[wanted] and (
                explained == UNREADABLE or ROLE_RANK.get(str(explained), -1) >= rank)

        return _Setting(f"collaborator {login}", role, read,
                        lambda: self.api.call("PUT", path, what=f"invite {login} to {self.locator}",
                                              body={"permission": permission}), satisfied)

    def _role_from_other_grants(self, login: str) -> str:
        """The highest role `login` holds here other than directly: the organization's base role (members only)
        and the roles of the repository's teams they belong to. UNREADABLE when the base role is hidden from
        Golden Path's credentials (it is shown to organization owners and apps that may read administration)."""
        member, _ = self.api.call("GET", f"/orgs/{quote(self.org)}/members/{quote(login)}", accept=(302, 404),
                                  what=f"check whether {login} is a member of {self.org}")
        if member != 204:
            return "none"
        org = self.api.get(f"/orgs/{quote(self.org)}", what=f"read organization {self.org}")
        base = org.get("default_repository_permission") if isinstance(org, dict) else None
        if base is None:
            return UNREADABLE
        roles = [str(base)]
        for entry in self.api.get_all(f"{self.base}/teams", what=f"read the teams of {self.locator}") or []:
            slug = str(entry.get("slug", "")) if isinstance(entry, dict) else ""
            if not slug:
                continue
            membership = self.api.get(f"/orgs/{quote(self.org)}/teams/{quote(slug)}/memberships/{quote(login)}",
                                      what=f"read {login}'s membership of team {slug}", missing_ok=True)
            if isinstance(membership, dict) and membership.get("state") == "active":
                roles.append(ROLE_OF_PERMISSION.get(_permission_of(entry), "none"))
        return max(roles, key=lambda r: ROLE_RANK.get(r, -1))

    def _check_codeowners(self) -> str:
        branch = self.spec.default_branch
        status, data = self.api.call("GET", f"{self.base}/codeowners/errors", params={"ref": branch},
                                     what=f"check CODEOWNERS of {self.locator}", accept=(404,))
        if status == 404:
            raise PolicyViolation(f"{self.locator} has no CODEOWNERS file on {branch}, so code-owner review cannot "
                                  "be enforced", rule="codeowners", field="skeleton")
        listed = data.get("errors") if isinstance(data, dict) else None
        if not isinstance(listed, list):
            raise UpstreamError(f"GitHub's CODEOWNERS check of {self.locator} answered without its list of errors; "
                                "re-run", provider=PROVIDER, retryable=True)
        errors = [f"line {e.get('line')}: {e.get('message') or e.get('kind')}" for e in listed if isinstance(e, dict)]
        if errors:
            raise PolicyViolation(f"CODEOWNERS of {self.locator} is not valid on GitHub: " + "; ".join(errors[:5]),
                                  rule="codeowners", field="owner")
        return "valid"


def _permission_of(team_repository: dict[str, Any]) -> str:
    role = str(team_repository.get("role_name") or "")
    if role:
        return {"read": "pull", "write": "push"}.get(role, role)
    granted = team_repository.get("permissions") or {}
    return next((p for p in ("admin", "maintain", "push", "triage", "pull") if granted.get(p)), "none")


def _parse_marker(found: Any) -> dict[str, Any]:
    if not isinstance(found, dict):  # e.g. a directory of that name: the contents API answers a list
        return {}
    try:
        text = base64.b64decode(str(found.get("content") or "")).decode("utf-8")
        marker = yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return {}
    return marker if isinstance(marker, dict) else {}


def _wanted_fields(spec: RepositorySpec) -> dict[str, Any]:
    return {"description": spec.description, "visibility": spec.visibility, "default_branch": spec.default_branch}


def _repo_fields(repo: dict[str, Any]) -> dict[str, Any]:
    visibility = repo.get("visibility") or ("private" if repo.get("private") else "public")
    return {"description": repo.get("description") or "", "visibility": visibility,
            "default_branch": repo.get("default_branch")}


def _wanted_report(spec: RepositorySpec) -> dict[str, Any]:
    return _report({"repository": _wanted_fields(spec), "topics": sorted(spec.topics),
                    "teams": {spec.owner_team: spec.team_permission}, "protection": github_protection.wanted(spec)})


def _report(found: dict[str, Any]) -> dict[str, Any]:
    """The settings in force, in the action's camelCase vocabulary."""
    repo = found.pop("repository", {})
    collaborators = {k.removeprefix("collaborator "): found.pop(k)
                     for k in list(found) if k.startswith("collaborator ")}
    report = {"description": repo.get("description"), "visibility": repo.get("visibility"),
              "defaultBranch": repo.get("default_branch"), **found}
    if collaborators:
        report["collaborators"] = collaborators
    return report


def _show(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


def _web_url_of(api_url: str) -> str:
    api_url = api_url.rstrip("/")
    if api_url == "https://api.github.com":
        return "https://github.com"
    return api_url.removesuffix("/api/v3")


def _auth(connection: GitHubConnection, org: str) -> Auth.Auth:
    if connection.token:
        return Auth.Token(connection.token)
    if connection.app_id and connection.app_private_key:
        app = Auth.AppAuth(connection.app_id, connection.app_private_key)
        installation = connection.app_installation_id
        if installation is None:
            integration = GithubIntegration(auth=app, base_url=connection.api_url.rstrip("/"))
            installation = integration.get_org_installation(org).id
        return app.get_installation_auth(installation)
    raise ValueError("github needs a token or a GitHub App")
