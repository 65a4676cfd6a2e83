"""End-to-end fixtures: a real Backstage backend (from npm) driving a real Golden Path process, which works
against a real OpenBao, the spec-checked GitHub emulator, the Kubernetes emulator and a GitOps repository.

Processes started here: an OpenBao dev server, `goldenpath serve`, and `node index.js` (backstage/: catalog,
scaffolder, proxy, http:backstage:request, auth with the guest provider, MCP actions) with
backstage/app-config.yaml, the configuration `make backstage` uses, plus an override naming the test's extra
readable host and a guest file naming the person who signs in (people.py). Each runs in its own process group and
is stopped in a finalizer; on Linux the kernel also stops them if the test process dies (PR_SET_PDEATHSIG). The
GitHub and Kubernetes emulators and a static file server (a git host's raw files) run in threads.

Tasks run as a person (alice, of team-payments, unless a test says otherwise): Golden Path lets a person act only
for the groups they are a member of, which it reads from this Backstage's catalog with its own token.

The Backstage packages are installed by `npm ci` from backstage/package-lock.json into a cache directory
outside the clone, once per lock file.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from backend.embedded import EmbeddedOpenBao, free_port
from backstage import npm_cache
from tests.conftest import GITHUB_ORG, GITHUB_TOKEN, start_github
from tests.e2e.people import ALICE, Guests, write_guest_config
from tests.e2e.processes import Service, StaticFiles, spawn, wait_until
from tests.github_emulator import GitHubEmulator, SpecCheck
from tests.k8s_emulator import KubeEmulator

ROOT = Path(__file__).resolve().parents[2]
BACKSTAGE_DIR = ROOT / "backstage"
GOLDENPATH_BIN = Path(sys.executable).parent / "goldenpath"
START_TIMEOUT = 60.0
TASK_TIMEOUT = 90.0
TEMPLATE = "template:default/golden-path-service"
COST_CENTER_RULE = "cc-[0-9]{4}"
ENVIRONMENTS = ("dev", "prod")  # Golden Path's policy; the template also offers staging
ADMIN_GROUP = "group:default/platform"  # Golden Path's admin group (pat is a member)

REPORT: dict[str, str] = {}  # timings and sizes shown in the terminal summary


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("Backstage end-to-end")
        for key, value in REPORT.items():
            terminalreporter.write_line(f"{key}: {value}")


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)  # a pytest-xdist worker: tests/conftest.py shows it
    if workeroutput is not None and REPORT:
        workeroutput["goldenpath_e2e_report"] = dict(REPORT)


@pytest.fixture(scope="session")
def backstage_install() -> Path:
    """A directory with index.js and node_modules installed from the committed lock file (cached)."""
    try:
        target, how = npm_cache.installed(BACKSTAGE_DIR, prefix="backstage")
    except npm_cache.NpmUnavailable as missing:
        pytest.fail(f"the Backstage end-to-end tests need Node.js 20 and npm: {missing}")
    except npm_cache.NpmInstallFailed as failed:
        pytest.fail(str(failed))
    REPORT["npm install"] = how
    shutil.copy2(BACKSTAGE_DIR / "index.js", target / "index.js")
    REPORT["node_modules size"] = f"{npm_cache.tree_size(target / 'node_modules') / 1e6:.0f} MB"
    return target


@dataclass
class Stack:
    bao: EmbeddedOpenBao
    github: GitHubEmulator
    kube: KubeEmulator
    site: StaticFiles
    goldenpath: Service
    backstage: Service
    goldenpath_token: str
    backstage_token: str
    guests: Guests
    tmp: Path

    @property
    def gitops_remote(self) -> Path:
        return self.tmp / "clusters.git"

    def backstage_api(self, method: str, path: str, *, as_user: str | None = None, **kwargs: Any) -> requests.Response:
        """A call to Backstage's API as `as_user` (a user entity ref), or with the static token (no person)."""
        token = self.guests.token(as_user) if as_user else self.backstage_token
        headers = {"Authorization": f"Bearer {token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.backstage.base_url + path, headers=headers,
                                timeout=kwargs.pop("timeout", 40), **kwargs)

    def goldenpath_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.goldenpath_token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.goldenpath.base_url + path, headers=headers,
                                timeout=kwargs.pop("timeout", 20), **kwargs)

    def wait_for_entity(self, ref: str, *, timeout: float = 60.0, until: Any = None) -> dict[str, Any]:
        """The catalog entity `ref` (kind:namespace/name) once it exists (and `until(entity)` holds)."""
        kind, rest = ref.split(":", 1)
        namespace, name = rest.split("/", 1)
        deadline, last = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            last = self.backstage_api("GET", f"/api/catalog/entities/by-name/{kind}/{namespace}/{name}")
            if last.status_code == 200 and (until is None or until(last.json())):
                entity: dict[str, Any] = last.json()
                return entity
            time.sleep(0.5)
        pytest.fail(f"the catalog did not have {ref} within {timeout:.0f} s: "
                    f"{last.status_code if last is not None else '-'} {last.text[:500] if last is not None else ''}")

    def register_site_template(self, file: str, ref: str) -> None:
        """Register a template the static site serves (as a git host would) and wait for the catalog to show it."""
        target = f"{self.site.url}/{file}"
        registered = self.backstage_api("POST", "/api/catalog/locations", json={"type": "url", "target": target})
        assert registered.status_code == 201, registered.text
        self.wait_for_entity(ref)

    def run_task(
        self, values: dict[str, Any], template: str = TEMPLATE, *, as_user: str | None = ALICE,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Start a task as `as_user` (None: with the static token, so no person is behind its calls)."""
        self.wait_for_entity(template)
        created = self.backstage_api("POST", "/api/scaffolder/v2/tasks", as_user=as_user,
                                     json={"templateRef": template, "values": values})
        assert created.status_code == 201, created.text
        return self.finished(created.json()["id"])

    def retry_task(self, task_id: str, *, as_user: str | None = ALICE) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The retried steps run as whoever retries (their token replaces the task's)."""
        retried = self.backstage_api("POST", f"/api/scaffolder/v2/tasks/{task_id}/retry", as_user=as_user, json={})
        assert retried.status_code == 201, retried.text
        self.wait_for_status(task_id, lambda status: status not in {"completed", "failed", "cancelled"})
        return self.finished(task_id)

    def finished(self, task_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        task = self.wait_for_status(task_id, lambda status: status in {"completed", "failed", "cancelled"})
        events = self.backstage_api("GET", f"/api/scaffolder/v2/tasks/{task_id}/events").json()
        return task, events

    def wait_for_status(self, task_id: str, done: Any) -> dict[str, Any]:
        deadline = time.monotonic() + TASK_TIMEOUT
        while True:
            task: dict[str, Any] = self.backstage_api("GET", f"/api/scaffolder/v2/tasks/{task_id}").json()
            if done(task["status"]):
                return task
            if time.monotonic() > deadline:
                pytest.fail(f"task {task_id} still {task['status']} after {TASK_TIMEOUT:.0f} s")
            time.sleep(0.3)

    def restart_vault(self) -> None:
        """A new OpenBao dev server on the same address with the same token (dev servers keep no data)."""
        self.bao = EmbeddedOpenBao(port=self.bao.port, token=self.bao.token,
                                   log_path=self.tmp / "openbao-restarted.log").start()


def goldenpath_config(tmp: Path, *, port: int, backstage_url: str, bao: EmbeddedOpenBao, github: GitHubEmulator,
                      kube: KubeEmulator, token: str, backstage_token: str) -> dict[str, Any]:
    """dev runs in a cluster reached through its API (the emulator), prod through a GitOps repository."""
    return {
        "server": {"port": port},
        "database": {"url": f"sqlite:///{tmp}/goldenpath.db"},
        # the scaffolder and MCP actions may call; a person's groups come from Backstage's catalog
        "auth": {"token": token, "backstage_url": backstage_url, "backstage_plugins": ["scaffolder", "mcp-actions"],
                 "catalog_token": backstage_token, "admin_groups": [ADMIN_GROUP]},
        "vault": {"addr": bao.addr, "token": bao.token, "enable_kubernetes_auth": True},
        # workloads may be named (namespace, serviceAccount): only the owner rule stops another team rebinding them
        "policy": {"environments": list(ENVIRONMENTS), "cost_center_pattern": COST_CENTER_RULE,
                   "allow_workload_overrides": True},
        "repositories": {"provider": "github", "org": GITHUB_ORG},
        "github": {"api_url": github.api_url, "token": GITHUB_TOKEN, "seconds_between_requests": 0,
                   "seconds_between_writes": 0, "rate_limit_budget_seconds": 5},
        "kubernetes": {
            "clusters": {"eu-dev": {"mode": "direct", "server": kube.url},
                         "gitops": {"mode": "gitops", "remote": str(tmp / "clusters.git"),
                                    "workdir": str(tmp / "clusters-work")}},
            "environments": {"dev": ["eu-dev"], "prod": ["gitops"]},
        },
        "catalog": {"refresh_location": f"http://127.0.0.1:{port}/api/v1/catalog/entities.yaml",
                    "backstage_token": backstage_token},  # one token: catalog.entity.read and .refresh only
    }


def publish_site(root: Path) -> None:
    """What a git host would serve raw: Golden Path's own catalog entities (their API definition is a relative
    `$text`), the fallback template that calls Golden Path's REST API through Backstage's proxy, and a template
    of the Vault step alone."""
    for relative in ("catalog-info/catalog-info.yaml", "openapi/goldenpath.yaml"):
        (root / "golden-path" / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, root / "golden-path" / relative)
    for template in ("fallback-template.yaml", "vault-secrets-template.yaml"):
        shutil.copy2(Path(__file__).parent / template, root / template)


@pytest.fixture(scope="session")  # one stack for every module: each start costs 5-8 s; tests use fresh names
def stack(backstage_install: Path, github_spec: SpecCheck,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e-backstage")
    gp_port, bs_port = free_port(), free_port()
    while bs_port == gp_port:
        bs_port = free_port()
    tokens = {name: secrets.token_hex(24) for name in ("goldenpath", "backstage", "goldenpath-backstage")}
    bs_url, gp_url = f"http://127.0.0.1:{bs_port}", f"http://127.0.0.1:{gp_port}"
    (tmp / "site").mkdir()
    publish_site(tmp / "site")
    threads = [KubeEmulator().start(), start_github(github_spec), StaticFiles(tmp / "site").start()]
    kube, github, site = threads
    started: list[Service] = []
    bao = EmbeddedOpenBao(log_path=tmp / "openbao.log").start()
    stack: Stack | None = None
    try:
        config = tmp / "goldenpath.yaml"
        config.write_text(yaml.safe_dump(goldenpath_config(
            tmp, port=gp_port, backstage_url=bs_url, bao=bao, github=github, kube=kube,
            token=tokens["goldenpath"], backstage_token=tokens["goldenpath-backstage"])), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GOLDENPATH_", "VAULT_"))}
        subprocess.run([str(GOLDENPATH_BIN), "--config", str(config), "db", "upgrade"], env=env, cwd=tmp,
                       check=True, capture_output=True, timeout=120)
        goldenpath = spawn("goldenpath", [str(GOLDENPATH_BIN), "--config", str(config), "serve",
                                          "--no-embedded-vault"],
                           env=env, cwd=tmp, log_path=tmp / "goldenpath.log", base_url=gp_url)
        started.append(goldenpath)
        seconds = wait_until(goldenpath, lambda: requests.get(f"{gp_url}/api/v1/healthz", timeout=2).ok,
                             timeout=START_TIMEOUT, what="GET /api/v1/healthz == 200")
        REPORT["Golden Path start"] = f"{seconds:.1f} s"

        override = tmp / "app-config.e2e.yaml"  # arrays replace: both readable hosts are listed again
        override.write_text(yaml.safe_dump({
            "backend": {"reading": {"allow": [{"host": f"127.0.0.1:{gp_port}", "paths": ["/api/v1/catalog/"]},
                                              {"host": site.host}]}},
            # the catalog reads a location again only when asked: what Golden Path adds, it adds by its refresh
            "catalog": {"processingInterval": {"hours": 1}},
        }), encoding="utf-8")
        guest = tmp / "app-config.guest.yaml"  # who signs in as guest: rewritten to switch person (people.py)
        write_guest_config(guest, ALICE)
        node_env = {  # what backstage/app-config.yaml refers to, as `make backstage` sets it
            **env, "NODE_ENV": "production", "BACKSTAGE_URL": bs_url, "BACKSTAGE_LISTEN": f"127.0.0.1:{bs_port}",
            "GOLDENPATH_URL": gp_url, "GOLDENPATH_HOST": f"127.0.0.1:{gp_port}", "BACKSTAGE_TOKEN": tokens["backstage"],
            "GOLDENPATH_BACKSTAGE_TOKEN": tokens["goldenpath-backstage"], "GOLDENPATH_TOKEN": tokens["goldenpath"],
            "BACKSTAGE_GUEST_USER": ALICE}
        backstage = spawn("backstage", ["node", str(backstage_install / "index.js"), "--config",
                                        str(BACKSTAGE_DIR / "app-config.yaml"), "--config", str(override),
                                        "--config", str(guest)],
                          env=node_env, cwd=BACKSTAGE_DIR, log_path=tmp / "backstage.log", base_url=bs_url)
        started.append(backstage)
        seconds = wait_until(backstage, lambda: requests.get(f"{bs_url}/.backstage/health/v1/readiness",
                                                             timeout=2).status_code == 200,
                             timeout=START_TIMEOUT, what="GET /.backstage/health/v1/readiness == 200")
        REPORT["Backstage start (to readiness)"] = f"{seconds:.1f} s"
        stack = Stack(bao=bao, github=github, kube=kube, site=site, goldenpath=goldenpath, backstage=backstage,
                      goldenpath_token=tokens["goldenpath"], backstage_token=tokens["backstage"],
                      guests=Guests(base_url=bs_url, config=guest), tmp=tmp)
        _STACKS.append(stack)
        yield stack
    finally:
        if stack is not None and stack.guests.switches:
            REPORT["guest sign-in switches"] = ", ".join(f"{s:.1f} s" for s in stack.guests.switches)
        for service in reversed(started):
            service.stop()
        (stack.bao if stack else bao).stop()
        for thread in threads:
            thread.stop()
        _STACKS.clear()
    github.assert_clean()  # every exchange with the GitHub emulator matched GitHub's OpenAPI description


_STACKS: list[Stack] = []


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """On a failure, attach the tails of the Golden Path and Backstage logs to the report."""
    report = yield
    if report.failed and _STACKS:
        for service in (_STACKS[-1].goldenpath, _STACKS[-1].backstage):
            report.sections.append((f"{service.name} log (tail, {service.log_path})", service.log_tail()))
    return report
