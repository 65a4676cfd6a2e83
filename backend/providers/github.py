"""GitHubHost: the RepositoryHost port over GitHub.com or GitHub Enterprise Server.

A new repository gets the rendered skeleton as one commit through the Git Data API (one tree with the
contents inline, one root commit, one ref update), so the push costs the same calls for 10 files or
1,000. Git Data answers 409 on an empty repository, so an empty one is first given a commit through
the Contents API; the branch is then forced to the root commit, which leaves that seed commit out of
history.

Settings (description, visibility, default branch, topics, team access, collaborators, branch
protection) are each read, compared and written only when they differ, then read back: what GitHub
reports is what the action returns, and anything GitHub did not apply fails the run (fail closed).
CODEOWNERS must exist and be valid by GitHub's own check.

Ownership lives in the repository: `.goldenpath.yaml` names the skeleton, the owner (a full entity ref)
and its team; a marker from before full refs names only the team, that is `group:default/<team>`. An
existing repository without it is a conflict unless `adopt`; one with another owner's always is. An empty
repository holds nothing to lose: that is how a run that stopped after creating it finishes on retry, when an
earlier run of the same owner began creating it (otherwise an empty repository is someone else's, made by hand).
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import requests
import yaml
from github import Auth, Github, GithubException, GithubIntegration

from backend.errors import ConflictError, PolicyViolation, UpstreamError, UpstreamUnavailable
from backend.ownership import canonical_ref, same_owner
from backend.providers.changes import Change, Outcome
from backend.providers.github_api import PROVIDER, GitHubApi
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
SEED_ATTEMPTS = 6
ROLE_OF_PERMISSION = {"pull": "read", "triage": "triage", "push": "write", "maintain": "maintain", "admin": "admin"}


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
    rate_limit_budget_seconds: float = 60.0

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


class GitHubHost(RepositoryHost):
    kind = "github"

    def __init__(self, connection: GitHubConnection, *, org: str) -> None:
        if not connection.token and not (connection.app_id and connection.app_private_key):
            raise ValueError("github needs a token (github.token, github.token_file or GITHUB_TOKEN) "
                             "or a GitHub App (github.app_id with github.app_private_key_file)")
        self.connection = connection
        self.org = org
        self.web_url = (connection.web_url or _web_url_of(connection.api_url)).rstrip("/")
        self._github: Github | None = None
        self._lock = threading.Lock()

    def api(self) -> GitHubApi:
        return GitHubApi(self._client().requester, budget_seconds=self.connection.rate_limit_budget_seconds)

    def _client(self) -> Github:
        """Built on first use: finding a GitHub App's installation is a call GitHub must answer."""
        with self._lock:
            if self._github is None:
                connection = self.connection
                try:
                    auth = _auth(connection, self.org)
                except GithubException as error:
                    raise UpstreamError(f"GitHub App: no installation for organization {self.org} "
                                        f"(HTTP {error.status})", provider=PROVIDER) from None
                except requests.RequestException as error:
                    raise UpstreamUnavailable(f"GitHub did not answer the App installation lookup "
                                              f"({type(error).__name__})", provider=PROVIDER) from None
                self._github = Github(
                    base_url=connection.api_url.rstrip("/"), auth=auth,
                    timeout=int(connection.timeout_seconds), retry=None, lazy=True, user_agent="goldenpath",
                    seconds_between_requests=connection.seconds_between_requests or None,
                    seconds_between_writes=connection.seconds_between_writes or None)
            return self._github

    def ensure_repository(
        self, spec: RepositorySpec, files: dict[str, bytes], *, adopt: bool, dry_run: bool,
        on_change: Callable[[Change], object], fresh_name: bool = False,
        before_create: Callable[[], object] | None = None,
    ) -> RepositoryResult:
        owner_team_of(spec.owner_ref)  # a person has no team: refused before anything is read or written
        api = self.api()
        run = _Run(api, spec, on_change, dry_run=dry_run)
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
            commit = run.publish(files)
        # publishing the first commit can move the default branch: read the repository afresh then
        settings = run.converge(None if commit else repo, content_exists=not dry_run or not publish)
        if not commit and not publish:
            commit = run.head()
        contents_url = f"{repo['html_url']}/blob/{spec.default_branch}"
        return RepositoryResult(remote_url=str(repo["clone_url"]), contents_url=contents_url,
                                commit_hash=commit, settings=settings, writes=api.writes)

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
        self.locator = f"{org}/{name}"
        self.base = f"/repos/{quote(org)}/{quote(name)}"

    def require_team(self) -> None:
        team = self.api.get(f"/orgs/{quote(self.org)}/teams/{quote(self.owner_team)}",
                            what=f"read team {self.owner_team}", missing_ok=True)
        if team is None:
            raise PolicyViolation(f"team {self.owner_team!r} does not exist in the GitHub organization {self.org}",
                                  rule="owner-team-exists", field="owner")

    def read_repository(self) -> dict[str, Any] | None:
        repo: dict[str, Any] | None = self.api.get(self.base, what=f"read repository {self.locator}", missing_ok=True)
        return repo

    def claim(self, repo: dict[str, Any], *, adopt: bool, resumable: bool = True) -> bool:
        """May this run manage `repo`? Returns whether its content still has to be published. `resumable`: an
        empty repository may be one a stopped run of this owner created (else someone made it by hand)."""
        branch = str(repo["default_branch"])
        found = self.api.get(f"{self.base}/contents/{MARKER}", what=f"read {MARKER} of {self.locator}",
                             params={"ref": branch}, missing_ok=True)
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
        return bool(marker.get("publishing"))  # only the seed commit is there: a run stopped mid-publish

    def _is_empty(self, branch: str) -> bool:
        status, _ = self.api.call("GET", f"{self.base}/git/ref/heads/{quote(branch)}",
                                  what=f"read branch {branch} of {self.locator}", accept=(404, 409))
        return status == 409  # GitHub: "Git Repository is empty."


class _Run(_Ownership):
    """One ensure_repository call: the spec, the API view and the change callback it reports to."""

    def __init__(self, api: GitHubApi, spec: RepositorySpec, on_change: Callable[[Change], object], *,
                 dry_run: bool) -> None:
        super().__init__(api, org=spec.org, name=spec.name, owner_ref=spec.owner_ref, owner_team=spec.owner_team)
        self.spec, self.on_change, self.dry_run = spec, on_change, dry_run

    def create_repository(self) -> dict[str, Any] | None:
        """The new repository, or None when the name was taken in the meantime (GitHub answers 422)."""
        spec = self.spec
        body = {"name": spec.name, "description": spec.description, "visibility": spec.visibility,
                "auto_init": False, "has_wiki": False, "delete_branch_on_merge": True}
        status, repo = self.api.call("POST", f"/orgs/{quote(spec.org)}/repos", body=body, accept=(422,),
                                     what=f"create repository {self.locator}")
        if status == 422:
            if any(e.get("field") == "name" for e in repo.get("errors") or [] if isinstance(e, dict)):
                return None
            raise UpstreamError(f"GitHub refused to create repository {self.locator} (HTTP 422): "
                                f"{_show(repo.get('errors') or repo.get('message'))}", provider=PROVIDER)
        return dict(repo)

    def publish(self, files: dict[str, bytes]) -> str:
        spec, base = self.spec, self.base
        if self._is_empty(spec.default_branch):
            self._seed()
        entries = [self._tree_entry(path, content) for path, content in sorted(files.items())]
        _, tree = self.api.call("POST", f"{base}/git/trees", what=f"write the skeleton tree of {self.locator}",
                                body={"tree": entries})
        _, commit = self.api.call("POST", f"{base}/git/commits", what=f"commit the skeleton to {self.locator}",
                                  body={"message": spec.commit_message, "tree": tree["sha"], "parents": []})
        self.api.call("PATCH", f"{base}/git/refs/heads/{quote(spec.default_branch)}",
                      what=f"point {spec.default_branch} of {self.locator} at the skeleton commit",
                      body={"sha": commit["sha"], "force": True})
        return str(commit["sha"])

    def _seed(self) -> None:
        """Git Data needs a first commit. The seed's marker says publishing is under way, so a run that stops
        before the branch points at the skeleton is finished by the next one."""
        spec = self.spec
        seed = yaml.safe_dump({"skeleton": spec.skeleton, "owner": spec.owner_ref, "team": spec.owner_team,
                               "publishing": True}).encode()
        body = {"message": SEED_MESSAGE, "content": base64.b64encode(seed).decode(), "branch": spec.default_branch}
        for attempt in range(SEED_ATTEMPTS):
            # a repository created a moment ago can answer 404/409 until GitHub has finished creating it
            status, _ = self.api.call("PUT", f"{self.base}/contents/{MARKER}", body=body, accept=(404, 409),
                                      what=f"give {self.locator} its first commit")
            if status < 400:
                return
            time.sleep(min(2.0, 0.25 * 2 ** attempt))
        raise UpstreamUnavailable(f"GitHub did not let {self.locator} take its first commit yet", provider=PROVIDER)

    def _tree_entry(self, path: str, content: bytes) -> dict[str, Any]:
        mode = "100755" if content.startswith(b"#!") else "100644"
        try:
            return {"path": path, "mode": mode, "type": "blob", "content": content.decode("utf-8")}
        except UnicodeDecodeError:  # binary content cannot go inline: one blob call for each such file
            _, blob = self.api.call("POST", f"{self.base}/git/blobs", what=f"write {path} to {self.locator}",
                                    body={"content": base64.b64encode(content).decode(), "encoding": "base64"})
            return {"path": path, "mode": mode, "type": "blob", "sha": blob["sha"]}

    def head(self) -> str:
        branch = self.spec.default_branch
        status, ref = self.api.call("GET", f"{self.base}/git/ref/heads/{quote(branch)}",
                                    what=f"read branch {branch} of {self.locator}", accept=(404, 409))
        return str(ref["object"]["sha"]) if status == 200 else ""

    def converge(self, repo: dict[str, Any] | None, *, content_exists: bool) -> dict[str, Any]:
        """`repo` is GitHub's answer when it is still current, None to read it afresh."""
        report: dict[str, Any] = {}
        settings = self._settings(repo)
        if not content_exists:  # a dry-run of an empty repository: nothing to protect yet
            settings = [s for s in settings if s.name != "protection"]
        for setting in settings:
            current = setting.read()
            if setting.satisfied(current, setting.wanted):
                self.on_change(Change(f"repository.{setting.name}", self.locator, Outcome.UNCHANGED))
            else:
                outcome = Outcome.CREATED if current in (None, {}, [], "none") else Outcome.UPDATED
                change = Change(f"repository.{setting.name}", self.locator, outcome)
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
        return _report(report)

    def _settings(self, repo: dict[str, Any] | None) -> list[_Setting]:
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

        team_path = f"/orgs/{quote(spec.org)}/teams/{quote(spec.owner_team)}/repos/{quote(spec.org)}/{quote(spec.name)}"
        protection_path = f"{base}/branches/{quote(spec.default_branch)}/protection"
        settings = [
            _Setting("repository", _wanted_fields(spec), read_repo, write_repo),
            _Setting("topics", sorted(spec.topics), self._read_topics,
                     lambda: api.call("PUT", f"{base}/topics", what=f"set the topics of {self.locator}",
                                      body={"names": sorted(spec.topics)})),
            _Setting("teams", {spec.owner_team: spec.team_permission}, lambda: self._read_team(team_path),
                     lambda: api.call("PUT", team_path, what=f"grant team {spec.owner_team} access to {self.locator}",
                                      body={"permission": spec.team_permission})),
        ]
        for login, permission in spec.collaborators:
            settings.append(self._collaborator(login, permission))
        settings.append(_Setting(
            "protection", _wanted_protection(spec), self._read_protection,
            lambda: api.call("PUT", protection_path, what=f"protect {spec.default_branch} of {self.locator}",
                             body=_protection_body(spec))))
        return settings

    def _read_topics(self) -> list[str]:
        data = self.api.get(f"{self.base}/topics", what=f"read the topics of {self.locator}")
        return sorted(data.get("names") or [])

    def _read_team(self, team_path: str) -> dict[str, str]:
        """The owning team's access to this repository ({} when none). The `permission` of a team in
        /repos/{o}/{r}/teams can be the team's default rather than its access here, so ask the team."""
        data = self.api.get(team_path, what=f"read team {self.spec.owner_team}'s access to {self.locator}",
                            missing_ok=True, headers={"Accept": "application/vnd.github.v3.repository+json"})
        if not data:
            return {}
        return {self.spec.owner_team: _permission_of(data)}

    def _read_protection(self) -> dict[str, Any] | None:
        data = self.api.get(f"{self.base}/branches/{quote(self.spec.default_branch)}/protection",
                            what=f"read the protection of {self.spec.default_branch} in {self.locator}",
                            missing_ok=True)
        return None if data is None else _protection_from(data)

    def _collaborator(self, login: str, permission: str) -> _Setting:
        path = f"{self.base}/collaborators/{quote(login)}"
        role = ROLE_OF_PERMISSION.get(permission, permission)

        def read() -> str | None:
            # direct grants only: the effective role also counts teams, the org's base role and public access
            direct = self.api.get(f"{self.base}/collaborators", what=f"read the collaborators of {self.locator}",
                                  params={"affiliation": "direct", "per_page": 100})
            granted = {str(c.get("login", "")).lower(): str(c.get("role_name") or "") for c in direct or []}
            if login.lower() in granted:
                return granted[login.lower()]
            invitations = self.api.get(f"{self.base}/invitations", what=f"read the invitations of {self.locator}",
                                       params={"per_page": 100})
            for invitation in invitations or []:
                invitee = str((invitation.get("invitee") or {}).get("login", "")).lower()
                if invitee == login.lower() and not invitation.get("expired"):
                    return str(invitation.get("permissions"))
            return None

        return _Setting(f"collaborator {login}", role, read,
                        lambda: self.api.call("PUT", path, what=f"invite {login} to {self.locator}",
                                              body={"permission": permission}))

    def _check_codeowners(self) -> str:
        branch = self.spec.default_branch
        status, data = self.api.call("GET", f"{self.base}/codeowners/errors", params={"ref": branch},
                                     what=f"check CODEOWNERS of {self.locator}", accept=(404,))
        if status == 404:
            raise PolicyViolation(f"{self.locator} has no CODEOWNERS file on {branch}, so code-owner review cannot "
                                  "be enforced", rule="codeowners", field="skeleton")
        errors = [f"line {e.get('line')}: {e.get('message') or e.get('kind')}" for e in data.get("errors") or []]
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


def _wanted_protection(spec: RepositorySpec) -> dict[str, Any]:
    p = spec.protection
    return {"requiredApprovingReviews": p.required_approving_reviews,
            "requireCodeOwnerReviews": p.require_code_owner_reviews, "dismissStaleReviews": p.dismiss_stale_reviews,
            "requiredStatusChecks": sorted(p.required_status_checks), "enforceAdmins": p.enforce_admins,
            "requiredLinearHistory": p.required_linear_history,
            "requiredConversationResolution": p.required_conversation_resolution,
            "allowForcePushes": False, "allowDeletions": False}


def _protection_body(spec: RepositorySpec) -> dict[str, Any]:
    p = spec.protection
    checks = {"strict": True, "contexts": sorted(p.required_status_checks)} if p.required_status_checks else None
    return {
        "required_status_checks": checks,
        "enforce_admins": p.enforce_admins,
        "required_pull_request_reviews": {
            "dismiss_stale_reviews": p.dismiss_stale_reviews,
            "require_code_owner_reviews": p.require_code_owner_reviews,
            "required_approving_review_count": p.required_approving_reviews},
        "restrictions": None,
        "required_linear_history": p.required_linear_history,
        "allow_force_pushes": False,
        "allow_deletions": False,
        "required_conversation_resolution": p.required_conversation_resolution,
    }


def _protection_from(data: dict[str, Any]) -> dict[str, Any]:
    reviews = data.get("required_pull_request_reviews") or {}
    checks = data.get("required_status_checks") or {}

    def enabled(key: str) -> bool:
        return bool((data.get(key) or {}).get("enabled"))

    return {"requiredApprovingReviews": reviews.get("required_approving_review_count", 0) if reviews else None,
            "requireCodeOwnerReviews": bool(reviews.get("require_code_owner_reviews")),
            "dismissStaleReviews": bool(reviews.get("dismiss_stale_reviews")),
            "requiredStatusChecks": sorted(checks.get("contexts") or []), "enforceAdmins": enabled("enforce_admins"),
            "requiredLinearHistory": enabled("required_linear_history"),
            "requiredConversationResolution": enabled("required_conversation_resolution"),
            "allowForcePushes": enabled("allow_force_pushes"), "allowDeletions": enabled("allow_deletions")}


def _wanted_report(spec: RepositorySpec) -> dict[str, Any]:
    return _report({"repository": _wanted_fields(spec), "topics": sorted(spec.topics),
                    "teams": {spec.owner_team: spec.team_permission}, "protection": _wanted_protection(spec)})


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
