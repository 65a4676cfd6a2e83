"""Benchmark: the Vault action through Golden Path vs. direct hvac calls, side by side in one run.

(a) latency ratio service/direct over N interleaved pairs (each call provisions a new service);
(b) 16 concurrent distinct runs: errors, p50/p95; (c) 16 concurrent runs with one idempotency key.
Run by hand: .venv/bin/python benchmarks/vault_service_vs_hvac.py [--pairs 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import hvac
import requests

from backend.embedded import EmbeddedOpenBao, free_port
from scaffolder_actions.vault_secrets_path_create import owners_policy, workload_policy

ROOT = Path(__file__).resolve().parent.parent

ACTION = "goldenpath:vault:secrets-path:create"


def start_service(bao: EmbeddedOpenBao, workdir: str) -> tuple[subprocess.Popen[bytes], str, str]:
    port, token = free_port(), secrets.token_urlsafe(16)
    env = {**os.environ, "VAULT_ADDR": bao.addr, "VAULT_TOKEN": bao.token, "GOLDENPATH_TOKEN": token,
           "GOLDENPATH_DATABASE_URL": f"sqlite:///{workdir}/gp.db", "PORT": str(port),
           "GOLDENPATH_SERVER__LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([str(ROOT / ".venv/bin/goldenpath"), "serve", "--no-embedded-vault"], env=env,
                               cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if requests.get(f"{base}/api/v1/healthz", timeout=1).status_code == 200:
                return process, base, token
        except requests.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError("Golden Path did not start")


def action_input(service: str) -> dict[str, Any]:
    return {"service": service, "system": "bench", "owner": "group:default/team-a", "environments": ["dev"],
            "costCenter": "cc-1", "secretKeys": ["API_KEY"]}


def via_service(session: requests.Session, base: str, service: str, key: str | None = None) -> requests.Response:
    body: dict[str, Any] = {"input": action_input(service)}
    if key:
        body["idempotencyKey"] = key
    return session.post(f"{base}/api/v1/actions/{ACTION}/runs", json=body, timeout=60)


def direct_hvac(client: hvac.Client, service: str) -> None:
    """The same reads and writes the action makes for one new service in one environment."""
    path, prefix = f"dev/bench/{service}", f"goldenpath-dev-bench-{service}"
    client.sys.list_mounted_secrets_engines()
    client.sys.list_auth_methods()
    with contextlib.suppress(hvac.exceptions.InvalidPath):
        client.secrets.kv.v2.read_secret_metadata(path, mount_point="secret")
    client.secrets.kv.v2.update_metadata(path, max_versions=10, mount_point="secret", custom_metadata={
        "owner": "group:default/team-a", "owner-team": "team-a", "system": "bench", "service": service,
        "environment": "dev", "cost-center": "cc-1", "managed-by": "goldenpath", "source-template": "none",
        "created-by": "bench"})
    client.secrets.kv.v2.create_or_update_secret(path, secret={"API_KEY": secrets.token_urlsafe(32)}, cas=0,
                                                 mount_point="secret")
    for name, hcl in ((f"{prefix}-workload", workload_policy("secret", path)),
                      (f"{prefix}-owners", owners_policy("secret", path))):
        with contextlib.suppress(hvac.exceptions.InvalidPath):
            client.sys.read_policy(name)
        client.sys.create_or_update_policy(name, hcl)
    role = f"bench-{service}-dev"
    with contextlib.suppress(hvac.exceptions.InvalidPath):
        client.auth.kubernetes.read_role(role)
    client.auth.kubernetes.create_role(role, bound_service_account_names=[service],
                                       bound_service_account_namespaces=[f"{service}-dev"],
                                       policies=[f"{prefix}-workload"], ttl="1h")


def timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_ratio(session: requests.Session, base: str, client: hvac.Client, pairs: int) -> dict[str, Any]:
    def service_call(name: str) -> None:
        assert via_service(session, base, name).status_code == 201

    for n in range(5):
        service_call(f"warm-s-{n}")
        direct_hvac(client, f"warm-d-{n}")
    ratios, svc, direct = [], [], []
    for n in range(pairs):
        a, b = timed(service_call, f"s-{n}"), timed(direct_hvac, client, f"d-{n}")
        svc.append(a)
        direct.append(b)
        ratios.append(a / b)
    return {"pairs": pairs, "service_median_ms": statistics.median(svc) * 1000,
            "direct_median_ms": statistics.median(direct) * 1000, "median_ratio": statistics.median(ratios),
            "ratio_min": min(ratios), "ratio_max": max(ratios)}


def bench_concurrent(base: str, token: str) -> dict[str, Any]:
    def one(n: int) -> tuple[int, float]:
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {token}"
            start = time.perf_counter()
            status = via_service(s, base, f"c-{n}-{secrets.token_hex(3)}").status_code
            return status, time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    wall = time.perf_counter() - start
    latencies = [t for _, t in results]
    return {"runs": 16, "errors": sum(status != 201 for status, _ in results), "p50_ms": pct(latencies, 0.5) * 1000,
            "p95_ms": pct(latencies, 0.95) * 1000, "wall_s": wall}


def bench_one_key(base: str, token: str) -> dict[str, Any]:
    key, service = f"bench-{secrets.token_hex(4)}", f"k-{secrets.token_hex(3)}"

    def one(_: int) -> tuple[int, bool]:
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {token}"
            response = via_service(s, base, service, key)
            return response.status_code, bool(response.json().get("replayed"))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16)))
    runs = requests.get(f"{base}/api/v1/runs", params={"limit": 500, "actionId": ACTION},
                        headers={"Authorization": f"Bearer {token}"}, timeout=30).json()["items"]
    return {"requests": 16, "statuses": sorted({s for s, _ in results}),
            "executed": sum(not replayed for _, replayed in results),
            "stored_runs_with_key": sum(r["idempotencyKey"] == key for r in runs)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    with EmbeddedOpenBao() as bao, tempfile.TemporaryDirectory() as workdir:
        client = hvac.Client(url=bao.addr, token=bao.token)
        client.sys.enable_auth_method("kubernetes")
        process, base, token = start_service(bao, workdir)
        try:
            with requests.Session() as session:
                session.headers["Authorization"] = f"Bearer {token}"
                results = {"a_latency": bench_ratio(session, base, client, args.pairs),
                           "b_concurrent_distinct": bench_concurrent(base, token),
                           "c_concurrent_one_key": bench_one_key(base, token)}
        finally:
            process.terminate()
            process.wait(10)
    print(json.dumps(results, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
