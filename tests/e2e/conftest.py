"""End-to-end fixtures: a real Backstage backend (from npm) driving a real Golden Path process.

Processes started here: an OpenBao dev server, `goldenpath serve`, and `node index.js` (Backstage
catalog + scaffolder). Each runs in its own session (process group) and is stopped in a finalizer;
on Linux the kernel also stops them if the test process dies (PR_SET_PDEATHSIG).

The Backstage backend is tests/e2e/backstage (package.json, package-lock.json, index.js, committed); it is
installed by `npm ci` into a cache directory outside the clone, once per lock file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from backend.embedded import EmbeddedOpenBao, die_with_parent, free_port
from tests import npm_cache

BACKSTAGE_DIR = Path(__file__).parent / "backstage"
GOLDENPATH_BIN = Path(sys.executable).parent / "goldenpath"
START_TIMEOUT = 60.0
LOG_TAIL_BYTES = 6000

TEMPLATE_NAME = "goldenpath-e2e-vault-secrets-path"
VAULT_ACTION = "goldenpath:vault:secrets-path:create"

# Timings and sizes shown in the terminal summary.
REPORT: dict[str, str] = {}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORT:
        terminalreporter.section("Backstage end-to-end")
        for key, value in REPORT.items():
            terminalreporter.write_line(f"{key}: {value}")


# --- processes -----------------------------------------------------------------------------------


@dataclass
class Service:
    """A child process in its own process group, with its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    base_url: str
    extra: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, limit: int = LOG_TAIL_BYTES) -> str:
        try:
            data = self.log_path.read_bytes()
        except OSError:
            return "(no log)"
        return data[-limit:].decode("utf-8", "replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            _signal_group(self.process, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                _signal_group(self.process, signal.SIGKILL)
                self.process.wait(timeout=10)
        # Children that outlived their leader (none expected, but never leave any behind).
        _signal_group(self.process, signal.SIGKILL)


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _spawn(name: str, argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path, base_url: str) -> Service:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=die_with_parent,  # noqa: PLW1509 - one prctl call
        )
    return Service(name=name, process=process, log_path=log_path, base_url=base_url)


def wait_until(service: Service, probe: Callable[[], bool], *, timeout: float, what: str) -> float:
    """Poll `probe` until it is true; fail with the service's log if it exits or times out. Returns seconds."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if service.process.poll() is not None:
            pytest.fail(f"{service.name} exited with status {service.process.returncode} while waiting for {what}:\n"
                        f"{service.log_tail()}")
        try:
            if probe():
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{service.name}: {what} not reached within {timeout:.0f} s:\n{service.log_tail()}")


# --- npm install ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def backstage_install() -> Path:
    """A directory with index.js and node_modules installed from the committed lock file (cached)."""
    try:
        target, how = npm_cache.installed(BACKSTAGE_DIR, prefix="backstage")
    except npm_cache.NpmUnavailable as missing:
        pytest.skip(f"Backstage end-to-end tests: {missing}")
    except npm_cache.NpmInstallFailed as failed:
        pytest.fail(str(failed))
    REPORT["npm install"] = how
    shutil.copy2(BACKSTAGE_DIR / "index.js", target / "index.js")
    REPORT["node_modules size"] = f"{npm_cache.tree_size(target / 'node_modules') / 1e6:.0f} MB"
    return target


# --- the stack -----------------------------------------------------------------------------------


@dataclass
class Stack:
    bao: EmbeddedOpenBao
    goldenpath: Service
    backstage: Service
    goldenpath_token: str
    backstage_token: str
    tmp: Path

    def backstage_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.backstage_token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.backstage.base_url + path, headers=headers,
                                timeout=kwargs.pop("timeout", 40), **kwargs)

    def goldenpath_api(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.goldenpath_token}", **kwargs.pop("headers", {})}
        return requests.request(method, self.goldenpath.base_url + path, headers=headers,
                                timeout=kwargs.pop("timeout", 20), **kwargs)


def template_entity() -> dict[str, Any]:
    """One step calling the Golden Path action; every value the action needs is explicit (the backend
    applies no parameter defaults), environments come from the task values so one template serves
    both the passing and the policy-violating case."""
    return {
        "apiVersion": "scaffolder.backstage.io/v1beta3",
        "kind": "Template",
        "metadata": {"name": TEMPLATE_NAME, "title": "Golden Path e2e: Vault secrets path"},
        "spec": {
            "type": "service",
            "owner": "group:default/team-a",
            "parameters": [{
                "title": "Service",
                "required": ["service", "system", "environments"],
                "properties": {
                    "service": {"type": "string"},
                    "system": {"type": "string"},
                    "environments": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                },
            }],
            "steps": [{
                "id": "vault",
                "name": "Create the Vault secrets path",
                "action": VAULT_ACTION,
                "input": {
                    "service": "${{ parameters.service }}",
                    "system": "${{ parameters.system }}",
                    "owner": "group:default/team-a",
                    "environments": "${{ parameters.environments }}",
                    "costCenter": "cc-1",
                    "secretKeys": ["API_KEY"],
                },
            }],
            "output": {
                "secretsPath": "${{ steps.vault.output.secretsPath }}",
                "changed": "${{ steps.vault.output.changed }}",
            },
        },
    }


def backstage_config(*, port: int, goldenpath_port: int, token: str, catalog_file: Path) -> dict[str, Any]:
    base = f"http://127.0.0.1:{port}"
    return {
        "app": {"baseUrl": "http://127.0.0.1:3000"},
        "backend": {
            "baseUrl": base,
            "listen": {"port": port, "host": "127.0.0.1"},
            "database": {"client": "better-sqlite3", "connection": ":memory:"},
            "auth": {"externalAccess": [
                {"type": "static", "options": {"token": token, "subject": "goldenpath-e2e"}},
            ]},
            "actions": {"pluginSources": ["goldenpath"]},
        },
        "discovery": {"endpoints": [
            {"target": f"http://127.0.0.1:{goldenpath_port}/api/{{{{pluginId}}}}", "plugins": ["goldenpath"]},
        ]},
        "catalog": {
            "rules": [{"allow": ["Component", "System", "API", "Resource", "Location", "Template", "Group",
                                 "User", "Domain"]}],
            "locations": [{"type": "file", "target": str(catalog_file)}],
        },
    }


@pytest.fixture(scope="module")
def stack(backstage_install: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("e2e-backstage")
    gp_port, bs_port = free_port(), free_port()
    while bs_port == gp_port:
        bs_port = free_port()
    goldenpath_token = secrets.token_urlsafe(24)
    backstage_token = secrets.token_hex(24)
    started: list[Service] = []

    bao = EmbeddedOpenBao(log_path=tmp / "openbao.log").start()
    try:
        env = {
            **os.environ,
            "VAULT_ADDR": bao.addr,
            "VAULT_TOKEN": bao.token,
            "GOLDENPATH_TOKEN": goldenpath_token,
            "GOLDENPATH_DATABASE_URL": f"sqlite:///{tmp}/gp.db",
            "PORT": str(gp_port),
            "GOLDENPATH_BACKSTAGE_URL": f"http://127.0.0.1:{bs_port}",
            "GOLDENPATH_VAULT__ENABLE_KUBERNETES_AUTH": "true",
        }
        env.pop("GOLDENPATH_CONFIG", None)
        goldenpath = _spawn("goldenpath", [str(GOLDENPATH_BIN), "serve", "--no-embedded-vault"], env=env, cwd=tmp,
                            log_path=tmp / "goldenpath.log", base_url=f"http://127.0.0.1:{gp_port}")
        started.append(goldenpath)
        seconds = wait_until(goldenpath, lambda: requests.get(f"{goldenpath.base_url}/api/v1/healthz",
                                                              timeout=2).status_code == 200,
                             timeout=START_TIMEOUT, what="GET /api/v1/healthz == 200")
        REPORT["Golden Path start"] = f"{seconds:.1f} s"

        catalog_file = tmp / "catalog-templates.yaml"
        catalog_file.write_text(yaml.safe_dump(template_entity(), sort_keys=False), encoding="utf-8")
        config_file = tmp / "app-config.yaml"
        config_file.write_text(yaml.safe_dump(backstage_config(
            port=bs_port, goldenpath_port=gp_port, token=backstage_token, catalog_file=catalog_file,
        ), sort_keys=False), encoding="utf-8")
        node_env = {**os.environ, "NODE_ENV": "production"}
        backstage = _spawn("backstage", ["node", str(backstage_install / "index.js"), "--config", str(config_file)],
                           env=node_env, cwd=backstage_install, log_path=tmp / "backstage.log", base_url=f"http://127.0.0.1:{bs_port}")
        started.append(backstage)
        seconds = wait_until(backstage, lambda: requests.get(f"{backstage.base_url}/.backstage/health/v1/readiness",
                                                             timeout=2).status_code == 200,
                             timeout=START_TIMEOUT, what="GET /.backstage/health/v1/readiness == 200")
        REPORT["Backstage start (to readiness)"] = f"{seconds:.1f} s"

        result = Stack(bao=bao, goldenpath=goldenpath, backstage=backstage, goldenpath_token=goldenpath_token,
                       backstage_token=backstage_token, tmp=tmp)
        _STACKS.append(result)
        yield result
    finally:
        for service in reversed(started):
            service.stop()
        bao.stop()
        _STACKS.clear()


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
