"""Benchmark: a conformance pass over N services, batched reads against per-object reads, side by side in one run.

Each service has what the golden path makes: a repository (the spec-checked GitHub emulator), two secrets paths
(real OpenBao), two namespaces (the Kubernetes emulator, direct mode) and a catalog entry. Then, interleaved round by
round, the same services are checked

- per object: `ConformanceChecker.check` for each service, as the verify action does (every object read on its
  own);
- batched: `Reconciler.run_pass`, which lists each Kubernetes kind once per cluster (GitHub reads carry ETags in
  both).

Reported per variant (median over rounds): wall seconds per pass, calls per service to each backend (Kubernetes
requests, GitHub requests and those counted against its rate limit, Vault HTTP requests), and the pass's peak
Python memory (tracemalloc, in a run of its own: it slows the in-process emulators). Every pass must find every
service conformant and write nothing.
Run by hand: PYTHONPATH=. .venv/bin/python benchmarks/conformance.py [--services 100] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.app import Services, build_services
from backend.embedded import EmbeddedOpenBao
from backend.plugin_api import Requester
from backend.services.runner import RunRequest
from backend.settings import settings_from_dict
from tests.github_emulator import GitHubEmulator, SpecCheck
from tests.k8s_emulator import KubeEmulator

ORG, TOKEN = "acme", "bench-token-" + secrets.token_hex(8)
OWNER = "group:default/team-payments"
ADMIN = Requester(user=None, caller="bench", admin=True)


def provision(services: Services, name: str) -> None:
    common = {"service": name, "system": "bench", "owner": OWNER, "costCenter": "cc-1234",
              "environments": ["dev", "prod"]}
    for action, data in [
        ("goldenpath:git:repository:create", {"name": name, "description": "bench", "owner": OWNER,
                                              "system": "bench"}),
        ("goldenpath:vault:secrets-path:create", {**common, "secretKeys": ["DATABASE_PASSWORD"]}),
        ("goldenpath:kubernetes:namespace:create", {**common, "tier": "small"}),
        ("goldenpath:catalog:service:register", {**common, "description": "bench"}),
    ]:
        services.runner.run(RunRequest(action_id=action, input=data, requester=ADMIN))


class VaultCalls:
    """Counts the HTTP requests the Vault client sends (its requests session), without changing them."""

    def __init__(self, services: Services) -> None:
        session = services.secrets_store._client.adapter.session  # type: ignore[union-attr]
        self.count, send = 0, session.send

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return send(*args, **kwargs)

        session.send = counted


def peak_mib(run: Callable[[], list[str]]) -> float:
    """The pass's peak Python memory, in a run of its own: tracemalloc slows everything (the emulators run in this
    process too), so timed runs go without it."""
    tracemalloc.start()
    run()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return round(peak / 2**20, 1)


def measure(label: str, run: Callable[[], list[str]], *, count: int, kube: KubeEmulator, github: GitHubEmulator,
            vault: VaultCalls) -> dict[str, float]:
    kube_before, github_before, cost_before, vault_before = len(kube.requests()), len(github.log), \
        github.rate_limit_cost, vault.count
    writes_before = len(kube.writes()), github.writes
    started = time.perf_counter()
    statuses = run()
    seconds = time.perf_counter() - started
    if set(statuses) != {"conformant"} or len(statuses) != count:
        raise SystemExit(f"{label}: not every service was conformant: {statuses[:5]}")
    if (len(kube.writes()), github.writes) != writes_before:
        raise SystemExit(f"{label}: a pass wrote")
    return {"seconds": seconds, "kubernetes_calls_per_service": (len(kube.requests()) - kube_before) / count,
            "github_calls_per_service": (len(github.log) - github_before) / count,
            "github_rate_limited_per_service": (github.rate_limit_cost - cost_before) / count,
            "vault_calls_per_service": (vault.count - vault_before) / count}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    bao, kube = EmbeddedOpenBao().start(), KubeEmulator().start()
    github = GitHubEmulator(SpecCheck("api.github.com"), token=TOKEN).start()
    github.add_org(ORG, teams=("team-payments",))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            settings = settings_from_dict({
                "database": {"url": f"sqlite:///{root}/goldenpath.db"}, "auth": {"token": TOKEN},
                "audit": {"key_file": str(root / "audit.key"), "witness_file": str(root / "witness.jsonl")},
                "vault": {"addr": bao.addr, "token": bao.token, "enable_kubernetes_auth": True},
                "repositories": {"provider": "github", "org": ORG},
                "github": {"api_url": github.api_url, "token": TOKEN, "seconds_between_requests": 0,
                           "seconds_between_writes": 0},
                "kubernetes": {"clusters": {"eu": {"mode": "direct", "server": kube.url}},
                               "environments": {"dev": ["eu"], "prod": ["eu"]}},
                "reconcile": {"interval_seconds": 0}})
            services = build_services(settings, upgrade_schema=True)
            names = [f"svc-{index:05d}" for index in range(args.services)]
            started = time.perf_counter()
            for name in names:
                provision(services, name)
            provisioned = time.perf_counter() - started
            vault = VaultCalls(services)
            checker, reconciler = services.conformance, services.reconciler

            def per_object() -> list[str]:
                return [checker.check(name)["status"] for name in names]

            def batched() -> list[str]:
                summary = reconciler.run_pass(names)
                return [status for status, count in summary.statuses.items() for _ in range(count)]

            variants = {"per_object": per_object, "batched": batched}
            for run in variants.values():  # warm: the first check stores every status, ETags get cached
                run()
            figures: dict[str, list[dict[str, float]]] = {label: [] for label in variants}
            for _ in range(args.rounds):
                for label, run in variants.items():
                    figures[label].append(measure(label, run, count=len(names), kube=kube, github=github,
                                                  vault=vault))
            memory = {label: peak_mib(run) for label, run in variants.items()}
    finally:
        github.stop()
        kube.stop()
        bao.stop()
    summary: dict[str, Any] = {label: {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
                               for label, runs in figures.items()}
    for label, mib in memory.items():
        summary[label]["peak_mib"] = mib
    summary["services"], summary["provision_seconds_per_service"] = args.services, round(provisioned / len(names), 3)
    summary["ratio_seconds_batched_to_per_object"] = round(
        summary["batched"]["seconds"] / summary["per_object"]["seconds"], 3)
    summary["ratio_kubernetes_calls_batched_to_per_object"] = round(
        summary["batched"]["kubernetes_calls_per_service"] / summary["per_object"]["kubernetes_calls_per_service"], 3)
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
