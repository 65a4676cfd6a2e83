"""A stateful GitHub REST emulator on loopback, every exchange checked against GitHub's OpenAPI description.

It serves the operations the repository action uses, each routed by its documented path template, with
the behaviours the action depends on: 422 for an existing repository name, 409 for Git Data on an empty
repository, 404s with GitHub's messages, primary and secondary rate limits, CODEOWNERS checks, real git
SHA-1s. Each request and each response is validated with openapi-core against the operation it was
routed to; anything that does not match is kept in `violations`, and the test fixture fails the test.

Rate-limit and authentication refusals (401, and 403/429 carrying rate-limit headers) can come from
any GitHub operation although the description does not list them on each: those are checked against
GitHub's basic-error shape instead.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import jwt
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.github_emulator import payloads
from tests.github_emulator.gitobjects import Commit, ObjectStore
from tests.github_emulator.openapi_check import SpecCheck

PATH_LIKE = {"ref", "path", "branch"}  # parameters GitHub documents as able to hold '/'
TOPIC = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
ROLES = {"pull": "read", "triage": "triage", "push": "write", "maintain": "maintain", "admin": "admin"}
LEGACY_PERMISSION = {"read": "read", "triage": "read", "write": "write", "maintain": "write", "admin": "admin"}
WRITE_ROLES = {"write", "maintain", "admin"}
FREE_PLAN_MESSAGE = "Upgrade to GitHub Pro or make this repository public to enable this feature."
CODEOWNERS_PATHS = (".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS")

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/orgs/{org}/teams/{team_slug}", "get_team"),
    ("GET", "/orgs/{org}/installation", "get_org_installation"),
    ("POST", "/app/installations/{installation_id}/access_tokens", "create_installation_token"),
    ("POST", "/orgs/{org}/repos", "create_repo"),
    ("GET", "/repos/{owner}/{repo}", "get_repo"),
    ("PATCH", "/repos/{owner}/{repo}", "update_repo"),
    ("GET", "/repos/{owner}/{repo}/contents/{path}", "get_content"),
    ("PUT", "/repos/{owner}/{repo}/contents/{path}", "put_content"),
    ("GET", "/repos/{owner}/{repo}/git/ref/{ref}", "get_ref"),
    ("POST", "/repos/{owner}/{repo}/git/refs", "create_ref"),
    ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}", "update_ref"),
    ("POST", "/repos/{owner}/{repo}/git/blobs", "create_blob"),
    ("POST", "/repos/{owner}/{repo}/git/trees", "create_tree"),
    ("POST", "/repos/{owner}/{repo}/git/commits", "create_commit"),
    ("GET", "/repos/{owner}/{repo}/topics", "get_topics"),
    ("PUT", "/repos/{owner}/{repo}/topics", "put_topics"),
    ("GET", "/orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}", "get_team_repo"),
    ("PUT", "/orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}", "put_team_repo"),
    ("GET", "/repos/{owner}/{repo}/collaborators", "list_collaborators"),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", "get_collaborator_permission"),
    ("PUT", "/repos/{owner}/{repo}/collaborators/{username}", "put_collaborator"),
    ("GET", "/repos/{owner}/{repo}/invitations", "list_invitations"),
    ("GET", "/repos/{owner}/{repo}/branches/{branch}/protection", "get_protection"),
    ("PUT", "/repos/{owner}/{repo}/branches/{branch}/protection", "put_protection"),
    ("GET", "/repos/{owner}/{repo}/codeowners/errors", "codeowners_errors"),
)

Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]


class GitHubError(Exception):
    """An error answer. `undeclared`: GitHub sends it although the description does not list that status for
    the operation; it is then checked against GitHub's basic-error shape instead."""

    def __init__(self, status: int, message: str, errors: list[dict[str, Any]] | None = None, *,
                 undeclared: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.errors, self.undeclared = status, message, errors, undeclared


@dataclass
class Repo:
    id: int
    org: str
    name: str
    description: str
    visibility: str
    default_branch: str = "main"
    has_wiki: bool = True
    delete_branch_on_merge: bool = False
    topics: list[str] = field(default_factory=list)
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" -> commit sha
    objects: ObjectStore = field(default_factory=ObjectStore)
    protection: dict[str, dict[str, Any]] = field(default_factory=dict)
    collaborators: dict[str, str] = field(default_factory=dict)  # login -> role
    invitations: dict[str, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.refs


@dataclass
class Org:
    login: str
    id: int
    teams: dict[str, int] = field(default_factory=dict)  # slug -> id
    team_repos: dict[str, dict[str, str]] = field(default_factory=dict)  # slug -> {repo name: permission}
    members: set[str] = field(default_factory=set)


@dataclass
class App:
    app_id: str
    public_key: str
    installations: dict[int, str]  # installation id -> org


@dataclass
class Fault:
    method: str
    template: str
    status: int
    message: str
    times: int


class GitHubEmulator:
    def __init__(self, spec: SpecCheck, *, base_path: str = "", token: str = "emulator-token",
                 plan: str = "enterprise") -> None:
        self.spec = spec
        self.base_path = base_path.rstrip("/")
        self.tokens = {token}
        self.plan = plan  # "free": branch protection on private repositories is refused, as on GitHub Free
        self.orgs: dict[str, Org] = {}
        self.users: dict[str, int] = {"goldenpath-bot": 1}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.apps: dict[str, App] = {}
        self.violations: list[str] = []
        self.log: list[tuple[str, str, int]] = []
        self.secondary_limited = 0
        self.secondary_retry_after = 1
        self.secondary_status = 403
        self.primary_reset_at = 0.0
        self.faults: list[Fault] = []
        self.hooks: list[tuple[str, str, Callable[[], object]]] = []
        self.ignored: list[Fault] = []
        self.accept = ""
        self._ids = iter(range(1000, 10**9))
        self._lock = threading.RLock()
        self._map = Map([Rule(self.base_path + _werkzeug_rule(t), methods=[m], endpoint=(m, t, h))
                         for m, t, h in ROUTES], strict_slashes=False)
        undocumented = [f"{m} {t}" for m, t, _ in ROUTES if not spec.documents(m, t)]
        if undocumented:
            raise ValueError(f"routes missing from GitHub's {spec.variant} description: {undocumented}")
        self._server: Any = None
        self._thread: threading.Thread | None = None

    # --- lifecycle and set-up -------------------------------------------------------------------

    def start(self) -> GitHubEmulator:
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="github-emulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def api_url(self) -> str:
        return self.origin + self.base_path

    @property
    def web_url(self) -> str:
        return self.origin + "/web"

    def add_org(self, login: str, *, teams: tuple[str, ...] = (), members: tuple[str, ...] = ()) -> Org:
        org = self.orgs.setdefault(login, Org(login, next(self._ids)))
        for slug in teams:
            org.teams.setdefault(slug, next(self._ids))
            org.team_repos.setdefault(slug, {})
        for member in members:
            self.add_user(member)
            org.members.add(member)
        return org

    def add_user(self, login: str) -> None:
        self.users.setdefault(login, next(self._ids))

    def add_app(self, app_id: str, public_key_pem: str, *, installation_id: int, org: str) -> None:
        self.apps[app_id] = App(app_id, public_key_pem, {installation_id: org})

    # --- faults ---------------------------------------------------------------------------------

    def secondary_limit(self, times: int = 1, *, retry_after: int = 1, status: int = 403) -> None:
        self.secondary_limited, self.secondary_retry_after, self.secondary_status = times, retry_after, status

    def exhaust_primary(self, *, reset_in: float) -> None:
        self.primary_reset_at = time.time() + reset_in

    def refuse(self, method: str, template: str, status: int, message: str, *, times: int = 1) -> None:
        self.faults.append(Fault(method, template, status, message, times))

    def before_next(self, method: str, template: str, action: Callable[[], object]) -> None:
        """Run `action` just before the next such request is answered (e.g. another client's write)."""
        self.hooks.append((method, template, action))

    def ignore(self, method: str, template: str, *, times: int = 1) -> None:
        """Answer the next such write as GitHub answers one it accepted, yet leave everything as it was, as when an
        organization policy, a ruleset or another client's write undoes it: only a read afterwards tells."""
        self.ignored.append(Fault(method, template, 200, "", times))

    # --- inspection -----------------------------------------------------------------------------

    @property
    def writes(self) -> int:
        return sum(1 for method, _, _ in self.log if method != "GET")

    def calls(self) -> Counter[str]:
        return Counter(f"{method} {template}" for method, template, _ in self.log)

    def files(self, org: str, name: str, branch: str | None = None) -> dict[str, bytes]:
        repo = self.repos[(org, name)]
        commit = repo.objects.commits[repo.refs[f"refs/heads/{branch or repo.default_branch}"]]
        return {path: repo.objects.blobs[sha] for path, (_, sha) in repo.objects.files(commit.tree).items()}

    def history(self, org: str, name: str, branch: str | None = None) -> list[Commit]:
        repo = self.repos[(org, name)]
        sha: str | None = repo.refs[f"refs/heads/{branch or repo.default_branch}"]
        out = []
        while sha:
            commit = repo.objects.commits[sha]
            out.append(commit)
            sha = commit.parents[0] if commit.parents else None
        return out

    def assert_clean(self) -> None:
        assert not self.violations, "GitHub emulator traffic broke GitHub's OpenAPI description:\n" + "\n".join(
            self.violations)

    # --- WSGI -----------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        response = self._dispatch(request)
        return response(environ, start_response)

    def _dispatch(self, request: Request) -> Response:
        try:
            (method, template, handler), args = self._map.bind_to_environ(request.environ).match(
                method=request.method)
        except (NotFound, MethodNotAllowed):
            self.violations.append(f"{request.method} {request.path}: no such operation in the emulator")
            return _json(404, payloads.error("Not Found", status=404))
        args = {k: unquote(v) for k, v in args.items()}
        path = request.path.removeprefix(self.base_path)
        body = request.get_data()
        query = {k: v for k, v in request.args.items()}
        for problem in self.spec.request_problems(method, path, template, args, query, body, request.content_type):
            self.violations.append(f"request {method} {path}: {problem}")
        with self._lock:
            status, payload, headers, checked = self._answer(request, method, template, handler, args, body)
            self.log.append((method, template, status))
        raw = b"" if payload is None else json.dumps(payload).encode()
        content_type = "application/json; charset=utf-8" if payload is not None else None
        if checked:
            for problem in self.spec.response_problems(method, path, template, args, status, raw, content_type):
                self.violations.append(f"response {status} to {method} {path}: {problem}")
        else:
            _check_basic_error(payload, f"{status} to {method} {path}", self.violations)
        return Response(raw, status=status, headers=headers, content_type=content_type)

    def _answer(self, request: Request, method: str, template: str, handler: str, args: dict[str, str],
                body: bytes) -> tuple[int, Any, dict[str, str], bool]:
        headers = self._rate_headers()
        identity = self._authenticate(request.headers.get("Authorization", ""), template)
        if identity is None:
            return 401, payloads.error("Bad credentials", status=401), headers, False
        if self.primary_reset_at > time.time():
            headers.update({"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(self.primary_reset_at))})
            return 403, payloads.error("API rate limit exceeded for installation.", status=403), headers, False
        if self.secondary_limited > 0:
            self.secondary_limited -= 1
            headers["retry-after"] = str(self.secondary_retry_after)
            return self.secondary_status, payloads.error(
                "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                status=self.secondary_status), headers, False
        for hook_method, hook_template, hook in list(self.hooks):
            if (hook_method, hook_template) == (method, template):
                self.hooks.remove((hook_method, hook_template, hook))
                hook()
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.template == template:
                fault.times -= 1
                return fault.status, payloads.error(fault.message, status=fault.status), headers, True
        kept = self._kept_state(method, template, args)
        try:
            data = json.loads(body) if body else {}
            self.accept = request.headers.get("Accept", "")
            reply = getattr(self, handler)(args, data, dict(request.args), identity)
        except GitHubError as error:
            return (error.status, payloads.error(error.message, status=error.status, errors=error.errors), headers,
                    not error.undeclared)
        finally:
            for holder, state in kept:  # an ignored write: its answer was given, its effect is undone
                vars(holder).clear()
                vars(holder).update(state)
        status, payload = reply[0], reply[1]
        if len(reply) == 3:
            headers.update(reply[2])  # type: ignore[misc]
        return status, payload, headers, True

    def _kept_state(self, method: str, template: str, args: dict[str, str]) -> list[tuple[Any, dict[str, Any]]]:
        """A copy of the repository and the organization the request names, when this write is to be ignored."""
        ignored = next((i for i in self.ignored if i.times > 0 and (i.method, i.template) == (method, template)), None)
        if ignored is None:
            return []
        ignored.times -= 1
        holders = [self.repos.get((args.get("owner", ""), args.get("repo", ""))), self.orgs.get(args.get("org", ""))]
        return [(holder, copy.deepcopy(vars(holder))) for holder in holders if holder is not None]

    def _rate_headers(self) -> dict[str, str]:
        used = len(self.log) + 1
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(max(0, 5000 - used)),
                "x-ratelimit-reset": str(int(time.time()) + 3600), "x-ratelimit-used": str(used),
                "x-ratelimit-resource": "core"}

    def _authenticate(self, header: str, template: str) -> str | None:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() in {"token", "bearer"} and credential in self.tokens:
            return "goldenpath-bot"
        if scheme.lower() == "bearer" and template.startswith(("/app/", "/orgs/{org}/installation")):
            for app in self.apps.values():
                try:
                    jwt.decode(credential, app.public_key, algorithms=["RS256"], issuer=app.app_id)
                except jwt.PyJWTError:
                    continue
                return f"app:{app.app_id}"
        return None

    # --- helpers --------------------------------------------------------------------------------

    def _repo(self, args: dict[str, str]) -> Repo:
        repo = self.repos.get((args["owner"], args["repo"]))
        if repo is None:
            raise GitHubError(404, "Not Found")
        return repo

    def _urls(self, repo: Repo) -> tuple[str, str]:
        return f"{self.api_url}/repos/{repo.org}/{repo.name}", f"{self.web_url}/{repo.org}/{repo.name}"

    def _repo_json(self, repo: Repo) -> dict[str, Any]:
        org = self.orgs[repo.org]
        owner = payloads.user(self.api_url, self.web_url, org.login, org.id, kind="Organization")
        return payloads.repository(self.api_url, self.web_url, repo, owner)

    @staticmethod
    def _not_empty(repo: Repo) -> None:
        if repo.empty:
            raise GitHubError(409, "Git Repository is empty.")

    def _commit_of(self, repo: Repo, ref: str) -> str:
        for candidate in (f"refs/heads/{ref}", f"refs/tags/{ref}"):
            if candidate in repo.refs:
                return repo.refs[candidate]
        if ref in repo.objects.commits:
            return ref
        raise GitHubError(404, f"No commit found for the ref {ref}")

    def _author(self, identity: str, given: dict[str, Any] | None) -> dict[str, str]:
        if given:
            return {"name": given["name"], "email": given["email"], "date": given.get("date", payloads.STAMP)}
        return {"name": identity, "email": f"{identity}@users.noreply.github.emulator", "date": payloads.STAMP}

    def _new_commit(self, repo: Repo, identity: str, tree: str, parents: tuple[str, ...], message: str,
                    author: dict[str, Any] | None = None, committer: dict[str, Any] | None = None) -> str:
        who = self._author(identity, author)
        return repo.objects.put_commit(Commit(tree, parents, message, who, self._author(identity, committer) if
                                              committer else who))

    # --- operations -----------------------------------------------------------------------------

    def get_team(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        org = self.orgs.get(args["org"])
        if org is None or args["team_slug"] not in org.teams:
            raise GitHubError(404, "Not Found")
        slug = args["team_slug"]
        org_json = payloads.organization(self.api_url, self.web_url, org.login, org.id)
        return 200, payloads.team_full(self.api_url, self.web_url, org_json, slug, org.teams[slug],
                                       len(org.team_repos[slug]))

    def get_org_installation(self, args: dict[str, str], _body: Any, _query: Any, who: str) -> Reply:
        app = self.apps.get(who.removeprefix("app:"))
        found = [i for i, org in (app.installations.items() if app else ()) if org == args["org"]]
        if not found:
            raise GitHubError(404, "Not Found")
        org = self.orgs[args["org"]]
        account = payloads.user(self.api_url, self.web_url, org.login, org.id, kind="Organization")
        return 200, {
            "id": found[0], "app_id": int(app.app_id) if app else 0, "app_slug": "goldenpath",
            "target_id": org.id, "target_type": "Organization", "single_file_name": None,
            "repository_selection": "all", "access_tokens_url": f"{self.api_url}/app/installations/{found[0]}/"
            "access_tokens", "html_url": f"{self.web_url}/organizations/{org.login}/settings/installations/"
            f"{found[0]}", "repositories_url": f"{self.api_url}/installation/repositories", "events": [],
            "account": account, "permissions": {"administration": "write", "contents": "write"},
            "created_at": payloads.STAMP, "updated_at": payloads.STAMP, "suspended_by": None,
            "suspended_at": None}

    def create_installation_token(self, args: dict[str, str], _body: Any, _query: Any, who: str) -> Reply:
        app = self.apps.get(who.removeprefix("app:"))
        if app is None or int(args["installation_id"]) not in app.installations:
            raise GitHubError(404, "Not Found")
        token = f"ghs_emulated{next(self._ids)}"
        self.tokens.add(token)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        return 201, {"token": token, "expires_at": expires, "repository_selection": "all",
                     "permissions": {"administration": "write", "contents": "write"}}

    def create_repo(self, args: dict[str, str], body: dict[str, Any], _query: Any, identity: str) -> Reply:
        org = self.orgs.get(args["org"])
        if org is None:
            raise GitHubError(404, "Not Found")
        name = body["name"]
        if (org.login, name) in self.repos:
            raise GitHubError(422, "Repository creation failed.", [
                {"resource": "Repository", "code": "custom", "field": "name",
                 "message": "name already exists on this account"}])
        visibility = body.get("visibility") or ("private" if body.get("private") else "public")
        repo = Repo(next(self._ids), org.login, name, body.get("description") or "", visibility,
                    has_wiki=body.get("has_wiki", True), delete_branch_on_merge=body.get("delete_branch_on_merge",
                                                                                           False))
        if body.get("auto_init"):
            blob = repo.objects.put_blob(f"# {name}\n".encode())
            tree = repo.objects.build_tree({"README.md": ("100644", blob)})
            repo.refs["refs/heads/main"] = self._new_commit(repo, identity, tree, (), "Initial commit")
        self.repos[(org.login, name)] = repo
        return 201, self._repo_json(repo)

    def get_repo(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        return 200, self._repo_json(self._repo(args))

    def update_repo(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        if "default_branch" in body and f"refs/heads/{body['default_branch']}" not in repo.refs:
            raise GitHubError(422, "Validation Failed", [
                {"resource": "Repository", "code": "invalid", "field": "default_branch",
                 "message": f"Cannot update default branch for this repository to {body['default_branch']}"}])
        for key in ("description", "visibility", "default_branch", "has_wiki", "delete_branch_on_merge"):
            if key in body:
                setattr(repo, key, body[key])
        if "private" in body and "visibility" not in body:
            repo.visibility = "private" if body["private"] else "public"
        return 200, self._repo_json(repo)

    def get_content(self, args: dict[str, str], _body: Any, query: dict[str, str], _who: str) -> Reply:
        repo = self._repo(args)
        if repo.empty:
            raise GitHubError(404, "This repository is empty.")
        ref = query.get("ref") or repo.default_branch
        commit = repo.objects.commits[self._commit_of(repo, ref)]
        found = repo.objects.files(commit.tree).get(args["path"])
        if found is None:
            raise GitHubError(404, "Not Found")
        api, web = self._urls(repo)
        return 200, payloads.content_file(api, web, args["path"], found[1], repo.objects.blobs[found[1]], ref)

    def put_content(self, args: dict[str, str], body: dict[str, Any], _query: Any, identity: str) -> Reply:
        repo = self._repo(args)
        branch = body.get("branch") or repo.default_branch
        content = base64.b64decode(body["content"])
        blob = repo.objects.put_blob(content)
        parents: tuple[str, ...] = ()
        files: dict[str, tuple[str, str]] = {}
        if not repo.empty:
            head = repo.refs.get(f"refs/heads/{branch}")
            if head is None:
                raise GitHubError(404, f"Branch {branch} not found")
            parents = (head,)
            files = repo.objects.files(repo.objects.commits[head].tree)
            existing = files.get(args["path"])
            if existing and body.get("sha") != existing[1]:
                raise GitHubError(422, 'Invalid request.\n\n"sha" wasn\'t supplied.')
        files[args["path"]] = ("100644", blob)
        tree = repo.objects.build_tree(files)
        sha = self._new_commit(repo, identity, tree, parents, body["message"], body.get("author"),
                               body.get("committer"))
        if repo.empty:
            repo.default_branch = branch  # the first branch of an empty repository becomes its default
        repo.refs[f"refs/heads/{branch}"] = sha
        api, web = self._urls(repo)
        file_json = payloads.content_file(api, web, args["path"], blob, content, branch)
        file_json.pop("content"), file_json.pop("encoding")
        return (201 if not parents else 200), {
            "content": file_json, "commit": payloads.git_commit(api, web, sha, repo.objects.commits[sha])}

    def get_ref(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        self._not_empty(repo)
        full = f"refs/{args['ref']}"
        if full not in repo.refs:
            raise GitHubError(404, "Not Found")
        return 200, payloads.git_ref(self._urls(repo)[0], full, repo.refs[full])

    def create_ref(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        self._not_empty(repo)
        if body["ref"] in repo.refs:
            raise GitHubError(422, "Reference already exists")
        if body["sha"] not in repo.objects.commits:
            raise GitHubError(422, "Object does not exist")
        repo.refs[body["ref"]] = body["sha"]
        return 201, payloads.git_ref(self._urls(repo)[0], body["ref"], body["sha"])

    def update_ref(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        self._not_empty(repo)
        full = f"refs/{args['ref']}"
        if full not in repo.refs:
            raise GitHubError(422, "Reference does not exist")
        sha = body["sha"]
        if sha not in repo.objects.commits:
            raise GitHubError(422, "Object does not exist")
        if not body.get("force") and repo.refs[full] not in self._ancestors(repo, sha):
            raise GitHubError(422, "Update is not a fast forward")
        repo.refs[full] = sha
        return 200, payloads.git_ref(self._urls(repo)[0], full, sha)

    @staticmethod
    def _ancestors(repo: Repo, sha: str) -> set[str]:
        seen, todo = set(), [sha]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(repo.objects.commits[current].parents)
        return seen

    def create_blob(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        self._not_empty(repo)
        raw = body["content"]
        content = base64.b64decode(raw) if body.get("encoding") == "base64" else raw.encode("utf-8")
        sha = repo.objects.put_blob(content)
        return 201, {"url": f"{self._urls(repo)[0]}/git/blobs/{sha}", "sha": sha}

    def create_tree(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        self._not_empty(repo)
        files: dict[str, tuple[str, str]] = {}
        if base := body.get("base_tree"):
            if base not in repo.objects.trees:
                raise GitHubError(422, "base_tree is not a valid tree oid")
            files = repo.objects.files(base)
        for entry in body["tree"]:
            if "content" in entry:
                files[entry["path"]] = (entry["mode"], repo.objects.put_blob(entry["content"].encode("utf-8")))
            elif entry.get("sha") is None:
                files.pop(entry["path"], None)
            elif entry["sha"] not in repo.objects.blobs:
                raise GitHubError(422, f"tree.sha {entry['sha']} is not a valid blob")
            else:
                files[entry["path"]] = (entry["mode"], entry["sha"])
        sha = repo.objects.build_tree(files)
        sizes = {s: len(b) for s, b in repo.objects.blobs.items()}
        return 201, payloads.git_tree(self._urls(repo)[0], sha, repo.objects.trees[sha], sizes)

    def create_commit(self, args: dict[str, str], body: dict[str, Any], _query: Any, identity: str) -> Reply:
        repo = self._repo(args)
        self._not_empty(repo)
        if body["tree"] not in repo.objects.trees:
            raise GitHubError(422, "Tree SHA does not exist")
        parents = tuple(body.get("parents") or ())
        if any(p not in repo.objects.commits for p in parents):
            raise GitHubError(422, "Parent SHA does not exist or is not a commit object")
        sha = self._new_commit(repo, identity, body["tree"], parents, body["message"], body.get("author"),
                               body.get("committer"))
        api, web = self._urls(repo)
        return 201, payloads.git_commit(api, web, sha, repo.objects.commits[sha])

    def get_topics(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        return 200, {"names": list(self._repo(args).topics)}

    def put_topics(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        bad = [name for name in body["names"] if not TOPIC.match(name)]
        if bad:
            raise GitHubError(422, "Invalid topics", [
                {"resource": "Repository", "field": "topics", "code": "invalid",
                 "message": f"Topics must start with a lowercase letter or number: {bad[0]}"}])
        repo.topics = sorted(set(body["names"]))
        return 200, {"names": list(repo.topics)}

    def get_team_repo(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        org = self.orgs.get(args["org"])
        repo = self._repo(args)
        permission = org.team_repos.get(args["team_slug"], {}).get(repo.name) if org else None
        if permission is None:
            raise GitHubError(404, "Not Found")
        if "application/vnd.github.v3.repository+json" not in self.accept:
            return 204, None
        role = ROLES[permission]
        body = self._repo_json(repo)
        body["role_name"] = role
        body["permissions"] = _permission_flags(role)
        return 200, body

    def list_collaborators(self, args: dict[str, str], _body: Any, query: dict[str, str], _who: str) -> Reply:
        repo = self._repo(args)
        if query.get("affiliation", "all") not in {"direct", "all", "outside"}:
            raise GitHubError(422, "Validation Failed")
        out = []
        for login, role in sorted(repo.collaborators.items()):
            user = payloads.user(self.api_url, self.web_url, login, self.users[login])
            user.update({"role_name": role, "permissions": _permission_flags(role)})
            out.append(user)
        return 200, out

    def put_team_repo(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        org = self.orgs.get(args["org"])
        repo = self._repo(args)
        if org is None or args["team_slug"] not in org.teams:
            raise GitHubError(404, "Not Found")
        org.team_repos[args["team_slug"]][repo.name] = body.get("permission", "pull")
        return 204, None

    def get_collaborator_permission(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        login = args["username"]
        if login not in self.users:
            raise GitHubError(404, f"{login} is not a user")
        role = repo.collaborators.get(login, "none")
        user = payloads.user(self.api_url, self.web_url, login, self.users[login])
        user.update({"role_name": role, "permissions": _permission_flags(role)})
        return 200, {"permission": LEGACY_PERMISSION.get(role, "none"), "role_name": role, "user": user}

    def put_collaborator(self, args: dict[str, str], body: dict[str, Any], _query: Any, identity: str) -> Reply:
        repo = self._repo(args)
        login = args["username"]
        if login not in self.users:
            raise GitHubError(422, "Validation Failed", [
                {"resource": "Repository", "code": "invalid", "field": "username",
                 "message": f"{login} is not a user"}])
        role = ROLES[body.get("permission", "push")]
        if login in self.orgs[repo.org].members:
            repo.collaborators[login] = role
            return 204, None
        repo.invitations[login] = role
        return 201, self._invitation(repo, login, identity)

    def _invitation(self, repo: Repo, login: str, identity: str) -> dict[str, Any]:
        api, web = self._urls(repo)
        minimal = {k: v for k, v in self._repo_json(repo).items()}
        return {"id": self.users[login] * 7, "node_id": f"I_{login}", "permissions": repo.invitations[login],
                "inviter": payloads.user(self.api_url, self.web_url, identity, self.users.get(identity, 1)),
                "invitee": payloads.user(self.api_url, self.web_url, login, self.users[login]),
                "repository": minimal, "url": f"{api}/invitations/{login}", "html_url": f"{web}/invitations",
                "created_at": payloads.STAMP, "expired": False}

    def list_invitations(self, args: dict[str, str], _body: Any, _query: Any, identity: str) -> Reply:
        repo = self._repo(args)
        return 200, [self._invitation(repo, login, identity) for login in sorted(repo.invitations)]

    def get_protection(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        branch = args["branch"]
        if f"refs/heads/{branch}" not in repo.refs:
            raise GitHubError(404, "Branch not found")
        if self.plan == "free" and repo.visibility != "public":
            raise GitHubError(403, FREE_PLAN_MESSAGE, undeclared=True)
        if branch not in repo.protection:
            raise GitHubError(404, "Branch not protected")
        body = payloads.protection(self._urls(repo)[0], branch, repo.protection[branch])
        return 200, {**body, "enabled": True, "name": branch}

    def put_protection(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        branch = args["branch"]
        if f"refs/heads/{branch}" not in repo.refs:
            raise GitHubError(404, "Branch not found")
        if self.plan == "free" and repo.visibility != "public":
            raise GitHubError(403, FREE_PLAN_MESSAGE)
        reviews = body.get("required_pull_request_reviews") or {}
        if not 0 <= int(reviews.get("required_approving_review_count", 0)) <= 6:
            raise GitHubError(422, "Invalid request.\n\nrequired_approving_review_count must be between 0 and 6.")
        repo.protection[branch] = body
        return 200, payloads.protection(self._urls(repo)[0], branch, body)

    def codeowners_errors(self, args: dict[str, str], _body: Any, query: dict[str, str], _who: str) -> Reply:
        repo = self._repo(args)
        if repo.empty:
            raise GitHubError(404, "Not Found")
        commit = repo.objects.commits[self._commit_of(repo, query.get("ref") or repo.default_branch)]
        files = repo.objects.files(commit.tree)
        path = next((p for p in CODEOWNERS_PATHS if p in files), None)
        if path is None:
            raise GitHubError(404, "Not Found")
        text = repo.objects.blobs[files[path][1]].decode("utf-8", "replace")
        return 200, {"errors": list(self._codeowners_problems(repo, path, text))}

    def _codeowners_problems(self, repo: Repo, path: str, text: str) -> Any:
        org = self.orgs[repo.org]
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.split("#", 1)[0].strip()
            if not stripped:
                continue
            pattern, *owners = stripped.split()
            for owner in owners:
                if self._owner_can_review(org, repo, owner):
                    continue
                column = line.index(owner) + 1
                yield {"line": number, "column": column, "kind": "Unknown owner", "source": line,
                       "suggestion": None, "path": path,
                       "message": f"Unknown owner on line {number}: make sure {owner} exists and has write access "
                                  f"to the repository\n\n  {line}\n  {' ' * (column - 1)}^"}
            if not owners:
                yield {"line": number, "column": len(pattern) + 1, "kind": "Missing owner", "source": line,
                       "suggestion": None, "path": path, "message": f"Missing owner on line {number}"}

    def _owner_can_review(self, org: Org, repo: Repo, owner: str) -> bool:
        if "@" in owner and not owner.startswith("@"):
            return True  # an e-mail address: GitHub matches it to a user later
        handle = owner.removeprefix("@")
        if "/" in handle:
            org_login, slug = handle.split("/", 1)
            permission = org.team_repos.get(slug, {}).get(repo.name) if org_login == org.login else None
            return permission in {"push", "maintain", "admin"}
        return repo.collaborators.get(handle) in WRITE_ROLES


def _permission_flags(role: str) -> dict[str, bool]:
    return {"pull": role != "none", "triage": role in {"triage", *WRITE_ROLES}, "push": role in WRITE_ROLES,
            "maintain": role in {"maintain", "admin"}, "admin": role == "admin"}


def _werkzeug_rule(template: str) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: f"<{'path:' if m.group(1) in PATH_LIKE else ''}{m.group(1)}>",
                  template)


def _json(status: int, payload: Any) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json; charset=utf-8")


def _check_basic_error(payload: Any, where: str, violations: list[str]) -> None:
    if not (isinstance(payload, dict) and isinstance(payload.get("message"), str)
            and isinstance(payload.get("documentation_url"), str)):
        violations.append(f"response {where}: not GitHub's basic-error shape")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log(self, *args: Any, **kwargs: Any) -> None:
        pass
