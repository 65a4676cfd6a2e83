"""Shared fixtures: a real OpenBao dev server, real databases (SQLite and PostgreSQL), the real app."""

from __future__ import annotations

import importlib
import os
import secrets
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from connexion import FlaskApp
from starlette.testclient import TestClient

from backend.app import Services, build_services, create_app
from backend.embedded import EmbeddedOpenBao
from backend.providers.secrets import SecretsStore
from backend.settings import Settings, settings_from_dict
from tests.databases import PostgresServer
from tests.github_emulator import GitHubEmulator, SpecCheck, SpecUnavailable
from tests.k8s_emulator import KubeEmulator

API_TOKEN = "test-token-" + secrets.token_hex(8)
_postgres_source: list[str] = []


@pytest.fixture(scope="session")
def openbao() -> Iterator[EmbeddedOpenBao]:
    with EmbeddedOpenBao() as bao:
        yield bao


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    _postgres_source.append(server.source)
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/goldenpath.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/goldenpath.db"


SettingsFactory = Callable[..., Settings]


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeEmulator]:
    emulator = KubeEmulator().start()
    yield emulator
    emulator.stop()


GITHUB_ORG = "acme"
GITHUB_TOKEN = "ghp_emulated" + secrets.token_hex(16)
_github_spec_version: list[str] = []


@pytest.fixture(scope="session")
def github_spec() -> SpecCheck:
    """GitHub's OpenAPI description (api.github.com), installed from npm by the test set-up."""
    try:
        spec = SpecCheck("api.github.com")
    except SpecUnavailable as missing:
        pytest.fail(f"GitHub's OpenAPI description is needed to check the GitHub emulator: {missing}")
    _github_spec_version.append(f"@octokit/openapi {spec.variant} {spec.version}")
    return spec


def start_github(spec: SpecCheck, **options: Any) -> GitHubEmulator:
    emulator = GitHubEmulator(spec, token=GITHUB_TOKEN, **options).start()
    emulator.add_org(GITHUB_ORG, teams=("team-payments", "team-ledger"), members=("alice",))
    emulator.add_user("bob")
    return emulator


@pytest.fixture
def github(github_spec: SpecCheck) -> Iterator[GitHubEmulator]:
    """A fresh GitHub emulator; the test fails if any exchange broke GitHub's OpenAPI description."""
    emulator = start_github(github_spec)
    yield emulator
    emulator.stop()
    emulator.assert_clean()


def github_settings(emulator: GitHubEmulator) -> dict[str, Any]:
    """Settings sections that point the service at the emulator, without PyGithub's pacing."""
    return {"repositories": {"provider": "github", "org": GITHUB_ORG},
            "github": {"api_url": emulator.api_url, "token": GITHUB_TOKEN, "seconds_between_requests": 0,
                       "seconds_between_writes": 0, "rate_limit_budget_seconds": 5}}


@pytest.fixture
def gitops_dir(tmp_path: Path) -> Path:
    return tmp_path / "gitops"


@pytest.fixture
def make_settings(openbao: EmbeddedOpenBao, sqlite_url: str, gitops_dir: Path) -> SettingsFactory:
    def make(database_url: str | None = None, **sections: Any) -> Settings:
        raw: dict[str, Any] = {
            "database": {"url": database_url or sqlite_url},
            "auth": {"token": API_TOKEN},
            "vault": {"addr": openbao.addr, "token": openbao.token, "enable_kubernetes_auth": True},
            "kubernetes": {"clusters": {"local": {"mode": "gitops", "remote": str(gitops_dir / "local.git"),
                                                  "workdir": str(gitops_dir / "local-work")}}},
            "repositories": {"local_root": str(gitops_dir.parent / "git")},
            "audit": {"key_file": str(gitops_dir.parent / "audit.key"),
                      "witness_file": str(gitops_dir.parent / "audit-witness.jsonl")},
        }
        for section, values in sections.items():
            raw.setdefault(section, {}).update(values)
        return settings_from_dict(raw)

    return make


@pytest.fixture
def make_app(make_settings: SettingsFactory) -> Callable[..., tuple[FlaskApp, Services]]:
    def make(
        *, database_url: str | None = None, secrets_store: SecretsStore | None = None, **sections: Any
    ) -> tuple[FlaskApp, Services]:
        settings = make_settings(database_url, **sections)
        services = build_services(settings, secrets_store=secrets_store, upgrade_schema=True)
        return create_app(settings, services=services, validate_responses=True), services

    return make


@pytest.fixture
def client(make_app: Callable[..., tuple[FlaskApp, Services]]) -> TestClient:
    app, _ = make_app()
    return app.test_client(headers={"Authorization": f"Bearer {API_TOKEN}"})


def unique(prefix: str = "svc") -> str:
    return f"{prefix}-{secrets.token_hex(4)}"


def vault_input(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "service": unique(), "system": "payments", "owner": "group:default/team-payments",
        "environments": ["dev"], "costCenter": "cc-1234", "secretKeys": ["DATABASE_PASSWORD"],
    }
    data.update(overrides)
    return data


VAULT_ACTION = "goldenpath:vault:secrets-path:create"


FIXTURE = Path(__file__).parent / "fixtures" / "gp_example_action"


@pytest.fixture(scope="session")
def example_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site")
    # pip builds a local project in its own directory (build/, *.egg-info): each session (each pytest-xdist worker)
    # builds a copy of its own, so two never write the same files, and the checkout is left as it was
    source = tmp_path_factory.mktemp("src") / FIXTURE.name
    shutil.copytree(FIXTURE, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
         str(target), str(source)],
        check=True, capture_output=True, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return target


@pytest.fixture
def installed(example_package: Path) -> Iterator[Path]:
    sys.path.insert(0, str(example_package))
    importlib.invalidate_caches()
    yield example_package
    sys.path.remove(str(example_package))
    sys.modules.pop("gp_example_action", None)
    importlib.invalidate_caches()


# -- node ids, and pytest-xdist (`make unit` runs `-n 2 --dist loadgroup`) ------------------------------------------
NodeId: Any
try:
    from _pytest.nodeid import NodeId  # pytest >= 9.2 keeps an item's node id in `item._id`
except ImportError:  # earlier pytest kept the string in `item._nodeid`
    NodeId = None


def _set_node_id(item: pytest.Item, nodeid: str) -> None:
    if NodeId is not None and isinstance(getattr(item, "_id", None), NodeId):
        item._id = NodeId.parse(nodeid)  # type: ignore[attr-defined]
    else:
        item._nodeid = nodeid


@pytest.hookimpl(trylast=True)  # after pytest-xdist's own hook (which appends the group on pytest < 9.2)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test gets a node id of its own, and `xdist_group` works on pytest 9.2.

    schemathesis 4 makes one item per API operation, named `test[GET /path]`, but pytest 9.2 builds a Function's
    node id from `originalname` and its callspec, so all 16 fuzz items got the same id. Serially they all ran (and
    reported under one name); pytest-xdist schedules by node id and ran just one of them. pytest-xdist also marks a
    grouped test by assigning `item._nodeid += "@group"`, which pytest 9.2 no longer reads: `xdist_group` was
    ignored and the Backstage tests spread over both workers. Both are put right here; a duplicate left is an error.
    """
    for item in items:  # the id a test is reported under names it whole (its parameters, or schemathesis' operation)
        whole = f"{item.parent.nodeid}::{item.name}" if item.parent is not None else item.nodeid
        if isinstance(item, pytest.Function) and item.nodeid != whole and not item.nodeid.startswith(f"{whole}@"):
            _set_node_id(item, whole)
    if getattr(config.option, "loadgroup", False) is True:  # set by pytest-xdist on its workers for --dist loadgroup
        for item in items:
            groups = sorted({str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                             for mark in item.iter_markers("xdist_group")})
            if groups and item.nodeid.rfind("@") <= item.nodeid.rfind("]"):
                _set_node_id(item, f"{item.nodeid}@{'_'.join(groups)}")
    shared = sorted(nodeid for nodeid, count in Counter(item.nodeid for item in items).items() if count > 1)
    if shared:
        raise pytest.UsageError(f"tests share a node id (pytest-xdist would run only one of each): {shared}")


def summary_lines() -> list[str]:
    lines = []
    if _postgres_source:
        lines.append(f"PostgreSQL used by the tests: {_postgres_source[0]}")
    if _github_spec_version:
        lines.append(f"GitHub emulator checked against: {_github_spec_version[0]}")
    return lines


_from_workers: dict[str, Any] = {"lines": [], "e2e": {}}  # on the pytest-xdist controller: what workers' fixtures found


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)  # a pytest-xdist worker: hand the lines over
    if workeroutput is not None:
        workeroutput["goldenpath_summary"] = summary_lines()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    output = getattr(node, "workeroutput", {})
    _from_workers["lines"] += [line for line in output.get("goldenpath_summary", [])
                               if line not in _from_workers["lines"]]
    _from_workers["e2e"].update(output.get("goldenpath_e2e_report", {}))  # tests/e2e/conftest.py's REPORT


def pytest_terminal_summary(terminalreporter: Any) -> None:
    for line in summary_lines() or _from_workers["lines"]:
        terminalreporter.write_line(line)
    if _from_workers["e2e"]:
        terminalreporter.section("Backstage end-to-end")
        for key, value in _from_workers["e2e"].items():
            terminalreporter.write_line(f"{key}: {value}")
