"""A stateful GitHub REST emulator on loopback, every exchange checked against GitHub's OpenAPI description.

It serves the operations the repository action uses, each routed by its documented path template, with
the behaviours the action depends on: 422 for an existing repository name, 409 for Git Data on an empty
repository, 404s with GitHub's messages, primary and secondary rate limits, CODEOWNERS checks, real git
SHA-1s, roles inherited from parent teams and the organization's base permission, redirects from renamed
or transferred repositories, the lag of a repository GitHub is still creating, Link pagination, ETags and
304s, repository rulesets. Each request and each response is validated with openapi-core against the
operation it was routed to; anything that does not match is kept in `violations`, and the test fixture
fails the test.

Rate-limit and authentication refusals (401, and 403/429 carrying rate-limit headers) can come from
any GitHub operation although the description does not list them on each: those are checked against
GitHub's basic-error shape instead, as is any other answer GitHub gives that the description does not list
for the operation (a redirect, a creation lag, a plan refusal). A 304 has no body to check.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote

import jwt
from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tests.github_emulator import access, codeowners, conditional, payloads, rulesets
from tests.github_emulator.description import facts
from tests.github_emulator.errors import GitHubError
from tests.github_emulator.gitobjects import Commit
from tests.github_emulator.openapi_check import SpecCheck
from tests.github_emulator.pagination import Page, paginate
from tests.github_emulator.routes import ROUTES, werkzeug_rule
from tests.github_emulator.state import Org, Repo

__all__ = ["GitHubEmulator", "GitHubError", "Org", "Repo"]

TOPIC = re.compile(r"^[a-z0-9][a-z0-9-]{0,49}$")
BOT = "goldenpath-bot"
FREE_PLAN_MESSAGE = "Upgrade to GitHub Pro or make this repository public to enable this feature."
SECONDARY_LIMIT_MESSAGE = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
LAG_MESSAGES = {404: "Not Found", 409: "Git Repository is empty."}
REPOSITORY_MEDIA_TYPE = "application/vnd.github.v3.repository+json"

Reply = tuple[int, Any] | tuple[int, Any, dict[str, str]]


class Answer(NamedTuple):
    status: int
    payload: Any
    headers: dict[str, str]
    checked: bool  # against the operation's declared response; else against GitHub's basic-error shape


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


@dataclass
class Lag:
    remaining: int
    status: int


class GitHubEmulator:
    def __init__(self, spec: SpecCheck, *, base_path: str = "", token: str = "emulator-token",
                 plan: str = "enterprise") -> None:
        self.spec = spec
        self.facts = facts(spec.variant)
        self.base_path = base_path.rstrip("/")
        self.tokens = {token}
        self.plan = plan  # "free": branch protection and rulesets on private repositories are refused
        self.rulesets_supported = True  # False: ruleset operations answer 404, as on an older Enterprise Server
        self.orgs: dict[str, Org] = {}
        self.users: dict[str, int] = {BOT: 1}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.redirects: dict[tuple[str, str], int] = {}  # a renamed or transferred repository's old place -> id
        self.apps: dict[str, App] = {}
        self.violations: list[str] = []
        self.log: list[tuple[str, str, int]] = []
        self.rate_limit_cost = 0  # requests counted against the primary rate limit (not 304s, not 401s)
        self.not_modified = 0
        self.secondary_limited = 0
        self.secondary_retry_after: int | None = 1
        self.secondary_status = 403
        self.primary_reset_at = 0.0
        self.faults: list[Fault] = []
        self.hooks: list[tuple[str, str, Callable[[], object]]] = []
        self.ignored: list[Fault] = []
        self.accept = ""
        self._route = ("", "")  # (method, template) of the request being answered
        self._creation_lag: Lag | None = None
        self._lagging_repos: dict[int, Lag] = {}  # repository id -> what remains of its creation lag
        self._ids = iter(range(1000, 10**9))
        self._lock = threading.RLock()
        self._map = Map([Rule(self.base_path + werkzeug_rule(t), methods=[m], endpoint=(m, t, h))
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
        if login not in self.orgs:
            self.orgs[login] = Org(login, next(self._ids))
        org = self.orgs[login]
        for slug in teams:
            self.add_team(login, slug)
        for member in members:
            self._add_member(org, member)
        return org

    def add_team(self, org: str, slug: str, *, parent: str | None = None, members: tuple[str, ...] = ()) -> None:
        """Creates the team if needed (and its parent); its members become members of the organization."""
        holder = self.add_org(org)
        if slug not in holder.teams:
            holder.teams[slug] = next(self._ids)
        holder.team_repos.setdefault(slug, {})
        holder.team_members.setdefault(slug, set())
        holder.team_parent.setdefault(slug, None)
        if parent is not None:
            self.add_team(org, parent)
            if slug in access.team_lineage(holder, parent):
                raise ValueError(f"team {parent} cannot be the parent of its ancestor {slug}")
            holder.team_parent[slug] = parent
        for member in members:
            self._add_member(holder, member)
            holder.team_members[slug].add(member)

    def _add_member(self, org: Org, login: str) -> None:
        self.add_user(login)
        org.members.add(login)

    def add_user(self, login: str) -> None:
        self.users.setdefault(login, next(self._ids))

    def add_app(self, app_id: str, public_key_pem: str, *, installation_id: int, org: str) -> None:
        self.apps[app_id] = App(app_id, public_key_pem, {installation_id: org})

    def rename(self, org: str, name: str, new_name: str) -> Repo:
        return self.transfer(org, name, org, new_name)

    def transfer(self, org: str, name: str, new_org: str, new_name: str | None = None) -> Repo:
        """Moves the repository; requests naming its old place are redirected, as GitHub does, until a new
        repository takes that name."""
        repo = self.repos[(org, name)]
        target = (new_org, new_name or name)
        if new_org not in self.orgs:
            raise KeyError(f"no organization {new_org} in the emulator")
        if target in self.repos:
            raise ValueError(f"{new_org}/{target[1]} already exists")
        self._move_team_grants(self.orgs[org], name, target)
        del self.repos[(org, name)]
        repo.org, repo.name = target
        self.repos[target] = repo
        self.redirects.pop(target, None)
        self.redirects[(org, name)] = repo.id
        return repo

    @staticmethod
    def _move_team_grants(org: Org, name: str, target: tuple[str, str]) -> None:
        """A renamed repository keeps its teams; one transferred to another organization loses them."""
        for grants in org.team_repos.values():
            permission = grants.pop(name, None)
            if permission is not None and target[0] == org.login:
                grants[target[1]] = permission

    # --- faults ---------------------------------------------------------------------------------

    def secondary_limit(self, times: int = 1, *, retry_after: int | None = 1, status: int = 403) -> None:
        """The next `times` requests hit a secondary rate limit. retry_after=None: no `retry-after` header, with
        requests left in the primary limit: GitHub then expects a client to wait at least a minute."""
        self.secondary_limited, self.secondary_retry_after, self.secondary_status = times, retry_after, status

    def exhaust_primary(self, *, reset_in: float) -> None:
        self.primary_reset_at = time.time() + reset_in

    def creation_lag(self, requests: int, *, status: int = 404) -> None:
        """Every repository created from now on answers the next `requests` requests naming it with `status`
        (404 Not Found, or 409 Git Repository is empty.) and no effect, as GitHub does while still creating it."""
        if status not in LAG_MESSAGES:
            raise ValueError(f"GitHub answers {sorted(LAG_MESSAGES)} for a repository it is still creating")
        self._creation_lag = Lag(requests, status)

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
            answer = self._answer(request, method, template, handler, args, body)
            status, raw = answer.status, b"" if answer.payload is None else json.dumps(answer.payload).encode()
            if method == "GET" and status == 200:
                status, raw = self._conditional(request, raw, answer.headers)
            self._count(status)
            headers = {**self._rate_headers(), **answer.headers}
            self.log.append((method, template, status))
        content_type = "application/json; charset=utf-8" if raw else None
        self._check_response(method, path, template, args, status, raw, content_type, checked=answer.checked)
        return Response(raw, status=status, headers=headers, content_type=content_type)

    def _check_response(self, method: str, path: str, template: str, args: dict[str, str], status: int, raw: bytes,
                        content_type: str | None, *, checked: bool) -> None:
        where = f"{status} to {method} {path}"
        if status == 304 and not self.facts.declares(method, template, 304):
            return  # GitHub may answer any conditional GET so; a 304 has no body to check
        if checked or status == 304:
            for problem in self.spec.response_problems(method, path, template, args, status, raw, content_type):
                self.violations.append(f"response {where}: {problem}")
        else:
            _check_basic_error(json.loads(raw or b"null"), where, self.violations)

    def _conditional(self, request: Request, raw: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """A 200 to a GET carries an ETag; asked again with it in If-None-Match, the answer is 304."""
        headers["ETag"] = conditional.etag(raw, request.headers.get("Accept", ""))
        if conditional.matches(request.headers.get("If-None-Match", ""), headers["ETag"]):
            return 304, b""
        return 200, raw

    def _count(self, status: int) -> None:
        if status == 304:
            self.not_modified += 1
        elif status != 401:
            self.rate_limit_cost += 1

    def _answer(self, request: Request, method: str, template: str, handler: str, args: dict[str, str],
                body: bytes) -> Answer:
        identity = self._authenticate(request.headers.get("Authorization", ""), template)
        if identity is None:
            return Answer(401, payloads.error("Bad credentials", status=401), {}, False)
        limited = self._rate_limited()
        if limited is not None:
            return limited
        for hook_method, hook_template, hook in list(self.hooks):
            if (hook_method, hook_template) == (method, template):
                self.hooks.remove((hook_method, hook_template, hook))
                hook()
        early = (self._redirect(request, method, template, args) or self._lagging(method, template, args)
                 or self._fault(method, template))
        if early is not None:
            return early
        return self._handle(request, method, template, handler, args, body, identity)

    def _rate_limited(self) -> Answer | None:
        if self.primary_reset_at > time.time():
            headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(self.primary_reset_at))}
            return Answer(403, payloads.error("API rate limit exceeded for installation.", status=403), headers,
                          False)
        if self.secondary_limited > 0:
            self.secondary_limited -= 1
            headers = {} if self.secondary_retry_after is None else {"retry-after": str(self.secondary_retry_after)}
            return Answer(self.secondary_status, payloads.error(SECONDARY_LIMIT_MESSAGE, status=self.secondary_status),
                          headers, False)
        return None

    def _redirect(self, request: Request, method: str, template: str, args: dict[str, str]) -> Answer | None:
        """GitHub redirects a renamed or transferred repository's old place: 301 for GET, 307 for the rest."""
        old = (args.get("owner", ""), args.get("repo", ""))
        if not template.startswith("/repos/{owner}/{repo}") or old in self.repos or old not in self.redirects:
            return None
        repo = next((r for r in self.repos.values() if r.id == self.redirects[old]), None)
        if repo is None:
            return None
        raw_path, query = _raw_target(request)
        rest = raw_path.removeprefix(self.base_path).split("/", 4)[4:]  # after "", "repos", owner, name
        location = f"{self._urls(repo)[0]}{''.join('/' + part for part in rest)}{'?' + query if query else ''}"
        status = 301 if request.method in {"GET", "HEAD"} else 307
        return Answer(status, payloads.moved(location), {"Location": location},
                      self.facts.declares(method, template, status))

    def _lagging(self, method: str, template: str, args: dict[str, str]) -> Answer | None:
        repo = self.repos.get((args.get("owner", ""), args.get("repo", "")))
        lag = self._lagging_repos.get(repo.id) if repo else None
        if lag is None or lag.remaining <= 0:
            return None
        lag.remaining -= 1
        return Answer(lag.status, payloads.error(LAG_MESSAGES[lag.status], status=lag.status), {},
                      self.facts.declares(method, template, lag.status))

    def _fault(self, method: str, template: str) -> Answer | None:
        for fault in self.faults:
            if fault.times > 0 and fault.method == method and fault.template == template:
                fault.times -= 1
                return Answer(fault.status, payloads.error(fault.message, status=fault.status), {}, True)
        return None

    def _handle(self, request: Request, method: str, template: str, handler: str, args: dict[str, str],
                body: bytes, identity: str) -> Answer:
        kept = self._kept_state(method, template, args)
        try:
            data = json.loads(body) if body else {}
            self.accept, self._route = request.headers.get("Accept", ""), (method, template)
            reply = getattr(self, handler)(args, data, dict(request.args), identity)
        except GitHubError as error:
            return Answer(error.status, payloads.error(error.message, status=error.status, errors=error.errors), {},
                          not error.undeclared)
        finally:
            for holder, state in kept:  # an ignored write: its answer was given, its effect is undone
                vars(holder).clear()
                vars(holder).update(state)
        status, payload = reply[0], reply[1]
        headers = dict(reply[2]) if len(reply) == 3 else {}
        if isinstance(payload, Page):
            raw_path, query = _raw_target(request)
            payload, link = paginate(payload.items, self.origin + raw_path, query)
            headers.update(link)
        return Answer(status, payload, headers, True)

    def _kept_state(self, method: str, template: str, args: dict[str, str]) -> list[tuple[Any, dict[str, Any]]]:
        """A copy of the repository and the organization the request names, when this write is to be ignored."""
        ignored = next((i for i in self.ignored if i.times > 0 and (i.method, i.template) == (method, template)), None)
        if ignored is None:
            return []
        ignored.times -= 1
        holders = [self.repos.get((args.get("owner", ""), args.get("repo", ""))), self.orgs.get(args.get("org", ""))]
        return [(holder, copy.deepcopy(vars(holder))) for holder in holders if holder is not None]

    def _rate_headers(self) -> dict[str, str]:
        used = self.rate_limit_cost
        return {"x-ratelimit-limit": "5000", "x-ratelimit-remaining": str(max(0, 5000 - used)),
                "x-ratelimit-reset": str(int(time.time()) + 3600), "x-ratelimit-used": str(used),
                "x-ratelimit-resource": "core"}

    def _authenticate(self, header: str, template: str) -> str | None:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() in {"token", "bearer"} and credential in self.tokens:
            return BOT
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

    def _undeclared(self, status: int) -> bool:
        """Whether the description leaves `status` out for the operation being answered."""
        return not self.facts.declares(*self._route, status)

    def _urls(self, repo: Repo) -> tuple[str, str]:
        return f"{self.api_url}/repos/{repo.org}/{repo.name}", f"{self.web_url}/{repo.org}/{repo.name}"

    def _repo_json(self, repo: Repo, role: str = "admin") -> dict[str, Any]:
        """A repository as an identity with `role` sees it (the emulator's token is the organization's admin)."""
        org = self.orgs[repo.org]
        owner = payloads.user(self.api_url, self.web_url, org.login, org.id, kind="Organization")
        return payloads.repository(self.api_url, self.web_url, repo, owner, access.permission_flags(role))

    def _user_json(self, login: str, role: str | None = None) -> dict[str, Any]:
        user = payloads.user(self.api_url, self.web_url, login, self.users[login])
        if role is not None:
            user.update({"role_name": role, "permissions": access.permission_flags(role)})
        return user

    def _team_json(self, org: Org, slug: str, permission: str = "pull") -> dict[str, Any]:
        parent = org.team_parent.get(slug)
        parent_json = None if parent is None else payloads.team_simple(
            self.api_url, self.web_url, org.login, parent, org.teams[parent], "pull")
        return payloads.team(self.api_url, self.web_url, org.login, slug, org.teams[slug], permission, parent_json)

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

    # --- operations: organization, installation, repository -------------------------------------

    def get_org(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        org = self.orgs.get(args["org"])
        if org is None:
            raise GitHubError(404, "Not Found")
        return 200, {**payloads.organization(self.api_url, self.web_url, org.login, org.id),
                     "default_repository_permission": org.base_permission}

    def check_member(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        org = self.orgs.get(args["org"])
        if org is None or args["username"] not in org.members:
            raise GitHubError(404, "Not Found")
        return 204, None

    def get_team_membership(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        org = self.orgs.get(args["org"])
        slug, login = args["team_slug"], args["username"]
        if org is None or slug not in org.teams or login not in access.team_members(org, slug):
            raise GitHubError(404, "Not Found")
        return 200, {"url": f"{self.api_url}/orgs/{org.login}/teams/{slug}/memberships/{login}", "role": "member",
                     "state": "active"}

    def get_team(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        org = self.orgs.get(args["org"])
        slug = args["team_slug"]
        if org is None or slug not in org.teams:
            raise GitHubError(404, "Not Found")
        org_json = payloads.organization(self.api_url, self.web_url, org.login, org.id)
        return 200, payloads.team_full(self._team_json(org, slug), org_json, len(org.team_members.get(slug, ())),
                                       len(org.team_repos.get(slug, {})))

    def get_org_installation(self, args: dict[str, str], _body: Any, _query: Any, who: str) -> Reply:
        app = self.apps.get(who.removeprefix("app:"))
        found = [i for i, org in (app.installations.items() if app else ()) if org == args["org"]]
        if not found:
            raise GitHubError(404, "Not Found")
        org = self.orgs[args["org"]]
        account = payloads.user(self.api_url, self.web_url, org.login, org.id, kind="Organization")
        return 200, payloads.installation(self.api_url, self.web_url, found[0], int(app.app_id) if app else 0,
                                          account)

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
        self.redirects.pop((org.login, name), None)  # the name is taken again: the old redirect ends
        if self._creation_lag is not None and self._creation_lag.remaining > 0:
            self._lagging_repos[repo.id] = dataclasses.replace(self._creation_lag)
        return 201, self._repo_json(repo), {"Location": self._urls(repo)[0]}

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

    # --- operations: contents and Git data ------------------------------------------------------

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
        """201 for a file new on the branch (an empty repository's first commit too), 200 for a replaced one."""
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
        return (200 if existing else 201), {
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
        created = payloads.git_ref(self._urls(repo)[0], body["ref"], body["sha"])
        return 201, created, {"Location": created["url"]}

    def update_ref(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        self._not_empty(repo)
        full = f"refs/{args['ref']}"
        if full not in repo.refs:
            raise GitHubError(422, "Reference does not exist")
        sha = body["sha"]
        if sha not in repo.objects.commits:
            raise GitHubError(422, "Object does not exist")
        if not body.get("force") and repo.refs[full] not in repo.objects.ancestors(sha):
            raise GitHubError(422, "Update is not a fast forward")
        repo.refs[full] = sha
        return 200, payloads.git_ref(self._urls(repo)[0], full, sha)

    def create_blob(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        self._not_empty(repo)
        raw = body["content"]
        content = base64.b64decode(raw) if body.get("encoding") == "base64" else raw.encode("utf-8")
        sha = repo.objects.put_blob(content)
        url = f"{self._urls(repo)[0]}/git/blobs/{sha}"
        return 201, {"url": url, "sha": sha}, {"Location": url}

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
        created = payloads.git_tree(self._urls(repo)[0], sha, repo.objects.trees[sha], sizes)
        return 201, created, {"Location": created["url"]}

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
        created = payloads.git_commit(api, web, sha, repo.objects.commits[sha])
        return 201, created, {"Location": created["url"]}

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

    # --- operations: access -------------------------------------------------------------------

    def get_team_repo(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        """The team's effective access: its own grant or one inherited from a parent team, the highest."""
        org = self.orgs.get(args["org"])
        repo = self._repo(args)
        slug = args["team_slug"]
        role = access.team_role(org, slug, repo.name) if org and slug in org.teams and org.login == repo.org else "none"
        if role == "none":
            raise GitHubError(404, "Not Found")
        if REPOSITORY_MEDIA_TYPE not in self.accept:
            return 204, None
        return 200, {**self._repo_json(repo, role), "role_name": role}

    def put_team_repo(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        org = self.orgs.get(args["org"])
        repo = self._repo(args)
        if org is None or args["team_slug"] not in org.teams:
            raise GitHubError(404, "Not Found")
        org.team_repos.setdefault(args["team_slug"], {})[repo.name] = body.get("permission", "pull")
        return 204, None

    def list_repo_teams(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        """The teams granted the repository directly (not those inheriting access from a parent team)."""
        repo = self._repo(args)
        org = self.orgs[repo.org]
        return 200, Page([{**self._team_json(org, slug, access.TEAM_PERMISSION.get(role, "pull")),
                           "permissions": access.permission_flags(role)}
                          for slug, role in access.teams_with_direct_grant(org, repo)])

    def list_collaborators(self, args: dict[str, str], _body: Any, query: dict[str, str], _who: str) -> Reply:
        """affiliation=direct: direct grants; outside: direct grants to non-members; all: also the members with
        access through teams or the base permission. Each with the highest role from any grant."""
        repo = self._repo(args)
        affiliation = query.get("affiliation", "all")
        if affiliation not in access.AFFILIATIONS:
            raise GitHubError(422, "Validation Failed")
        listed = access.collaborators(self.orgs[repo.org], repo, affiliation)
        if wanted := query.get("permission"):
            listed = [(login, role) for login, role in listed if access.permission_flags(role).get(wanted)]
        return 200, Page([self._user_json(login, role) for login, role in listed])

    def get_collaborator_permission(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        login = args["username"]
        if login not in self.users:
            raise GitHubError(404, f"{login} is not a user")
        role = access.user_role(self.orgs[repo.org], repo, login)
        return 200, {"permission": access.LEGACY_PERMISSION.get(role, "none"), "role_name": role,
                     "user": self._user_json(login, role)}

    def put_collaborator(self, args: dict[str, str], body: dict[str, Any], _query: Any, identity: str) -> Reply:
        repo = self._repo(args)
        login = args["username"]
        if login not in self.users:
            raise GitHubError(422, "Validation Failed", [
                {"resource": "Repository", "code": "invalid", "field": "username",
                 "message": f"{login} is not a user"}])
        role = access.ROLES[body.get("permission", "push")]
        if login in self.orgs[repo.org].members:
            repo.collaborators[login] = role
            return 204, None
        repo.invitations[login] = role
        invitation = self._invitation(repo, login, identity)
        return 201, invitation, {"Location": invitation["url"]}

    def _invitation(self, repo: Repo, login: str, identity: str) -> dict[str, Any]:
        api, web = self._urls(repo)
        return {"id": self.users[login] * 7, "node_id": f"I_{login}", "permissions": repo.invitations[login],
                "inviter": payloads.user(self.api_url, self.web_url, identity, self.users.get(identity, 1)),
                "invitee": self._user_json(login), "repository": self._repo_json(repo),
                "url": f"{api}/invitations/{login}", "html_url": f"{web}/invitations", "created_at": payloads.STAMP,
                "expired": False}

    def list_invitations(self, args: dict[str, str], _body: Any, _query: Any, identity: str) -> Reply:
        repo = self._repo(args)
        return 200, Page([self._invitation(repo, login, identity) for login in sorted(repo.invitations)])

    # --- operations: branch protection and CODEOWNERS -------------------------------------------

    def get_protection(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        branch = args["branch"]
        if f"refs/heads/{branch}" not in repo.refs:
            raise GitHubError(404, "Branch not found")
        if self.plan == "free" and repo.visibility != "public":
            raise GitHubError(403, FREE_PLAN_MESSAGE, undeclared=True)
        if branch not in repo.protection:
            raise GitHubError(404, "Branch not protected")
        return 200, {**self._protection_json(repo, branch), "enabled": True, "name": branch}

    def put_protection(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._repo(args)
        branch = args["branch"]
        if f"refs/heads/{branch}" not in repo.refs:
            raise GitHubError(404, "Branch not found")
        if self.plan == "free" and repo.visibility != "public":
            raise GitHubError(403, FREE_PLAN_MESSAGE)
        reviews = body.get("required_pull_request_reviews")
        if reviews is not None:  # GitHub requires one approving review unless told otherwise
            reviews = {"required_approving_review_count": 1, **reviews}
            if not 0 <= int(reviews["required_approving_review_count"]) <= 6:
                raise GitHubError(422, "Invalid request.\n\nrequired_approving_review_count must be between 0 and 6.")
        repo.protection[branch] = {**body, "required_pull_request_reviews": reviews}
        return 200, self._protection_json(repo, branch)

    def _protection_json(self, repo: Repo, branch: str) -> dict[str, Any]:
        rules = repo.protection[branch]
        api = self._urls(repo)[0]
        restricted = rules.get("restrictions")
        if restricted is None:
            return payloads.protection(api, branch, rules)
        org = self.orgs[repo.org]
        users = [self._user_json(login) for login in restricted.get("users") or [] if login in self.users]
        teams = [self._team_json(org, slug) for slug in restricted.get("teams") or [] if slug in org.teams]
        apps = [{"slug": slug, "name": slug} for slug in restricted.get("apps") or []]
        return payloads.protection(api, branch, rules, payloads.restrictions(api, branch, users, teams, apps))

    def codeowners_errors(self, args: dict[str, str], _body: Any, query: dict[str, str], _who: str) -> Reply:
        repo = self._repo(args)
        if repo.empty:
            raise GitHubError(404, "Not Found")
        commit = repo.objects.commits[self._commit_of(repo, query.get("ref") or repo.default_branch)]
        files = repo.objects.files(commit.tree)
        path = next((p for p in codeowners.PATHS if p in files), None)
        if path is None:
            raise GitHubError(404, "Not Found")
        text = repo.objects.blobs[files[path][1]].decode("utf-8", "replace")
        return 200, {"errors": list(codeowners.problems(self.orgs[repo.org], repo, path, text))}

    # --- operations: repository rulesets ------------------------------------------------------

    def _ruleset_repo(self, args: dict[str, str]) -> Repo:
        repo = self._repo(args)
        if not self.rulesets_supported:
            raise GitHubError(404, "Not Found", undeclared=self._undeclared(404))
        if self.plan == "free" and repo.visibility != "public":
            raise GitHubError(403, FREE_PLAN_MESSAGE, undeclared=self._undeclared(403))
        return repo

    def _ruleset(self, repo: Repo, args: dict[str, str]) -> dict[str, Any]:
        ruleset_id = args["ruleset_id"]
        found = repo.rulesets.get(int(ruleset_id)) if ruleset_id.isdigit() else None
        if found is None:
            raise GitHubError(404, "Not Found")
        return found

    def list_rulesets(self, args: dict[str, str], _body: Any, query: dict[str, str], _who: str) -> Reply:
        repo = self._ruleset_repo(args)
        targets = set(query["targets"].split(",")) if query.get("targets") else rulesets.TARGETS
        return 200, Page([rulesets.summary(repo, ruleset, *self._urls(repo))
                          for _, ruleset in sorted(repo.rulesets.items()) if ruleset["target"] in targets])

    def create_ruleset(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._ruleset_repo(args)
        rulesets.check(body, self.facts.rule_types, repo.rulesets.values(), creating=True)
        ruleset = rulesets.create(next(self._ids), body, _now())
        repo.rulesets[ruleset["id"]] = ruleset
        created = rulesets.answer(repo, ruleset, *self._urls(repo))
        return 201, created, {"Location": created["_links"]["self"]["href"]}

    def get_ruleset(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        repo = self._ruleset_repo(args)
        return 200, rulesets.answer(repo, self._ruleset(repo, args), *self._urls(repo))

    def update_ruleset(self, args: dict[str, str], body: dict[str, Any], _query: Any, _who: str) -> Reply:
        repo = self._ruleset_repo(args)
        ruleset = self._ruleset(repo, args)
        others = [other for other in repo.rulesets.values() if other["id"] != ruleset["id"]]
        rulesets.check(body, self.facts.rule_types, others, creating=False)
        rulesets.update(ruleset, body, _now())
        return 200, rulesets.answer(repo, ruleset, *self._urls(repo))

    def delete_ruleset(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        repo = self._ruleset_repo(args)
        del repo.rulesets[self._ruleset(repo, args)["id"]]
        return 204, None

    def get_branch_rules(self, args: dict[str, str], _body: Any, _query: Any, _who: str) -> Reply:
        """The rules of the active rulesets that apply to the branch (which need not exist yet)."""
        repo = self._ruleset_repo(args)
        return 200, Page(rulesets.branch_rules(repo, args["branch"]))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _raw_target(request: Request) -> tuple[str, str]:
    """The request's path and query string as the client sent them (still percent-encoded)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
    path, _, query = str(raw).partition("?")
    return path, query


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
