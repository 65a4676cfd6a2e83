"""Benchmark: the catalog feed for N provisioned services (4 entities each) on SQLite, side by side with the
same YAML served as a static file (the floor), in one run.

The inventory is seeded through InventoryStore.upsert (one transaction), then the service runs as its own
process (uvicorn, `backend.app:app_from_env`) and the floor as `python -m http.server` over the saved body.
Requests alternate service / static. Reports: the first full response (it renders every service), later full
responses (cached body), a 304 answer, the full response after one service changed (it renders that service
only), and the service process's peak RSS (VmHWM).
Run by hand: PYTHONPATH=. .venv/bin/python benchmarks/catalog_feed.py [--services 10000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from backend.embedded import free_port
from backend.store.database import Database
from backend.store.inventory import InventoryStore, ResourceRecord


def seed(url: str, services: int) -> None:
    database = Database(url)
    database.migrate()
    records: list[ResourceRecord] = []
    for i in range(services):
        name, owner = f"svc-{i:05d}", f"group:default/team-{i % 50}"
        common = {"service": name, "system": f"sys-{i % 200}", "owner": owner}
        records += [
            ResourceRecord("service", name, **common, attributes={
                "description": f"Service {i}", "type": "service", "lifecycle": "production", "tags": ["python"],
                "links": [], "environments": ["prod"], "costCenter": f"cc-{i % 90}"}),
            ResourceRecord("repository", f"acme/{name}", **common, attributes={
                "provider": "github", "webUrl": f"https://github.com/acme/{name}",
                "remoteUrl": f"https://github.com/acme/{name}.git"}),
            ResourceRecord("vault.secrets-path", f"secret/prod/{name}", **common, environment="prod",
                           attributes={"mount": "secret", "path": f"prod/{name}"}),
            ResourceRecord("kubernetes.namespace", f"eu/{name}-prod", **common, environment="prod",
                           attributes={"cluster": "eu", "namespace": f"{name}-prod", "mode": "gitops"}),
        ]
    InventoryStore(database).upsert(records, action_id="bench", run_id="0" * 36)
    database.dispose()


def timed(url: str, **headers: str) -> tuple[float, requests.Response]:
    started = time.perf_counter()
    answer = requests.get(url, headers=headers, timeout=300)
    return (time.perf_counter() - started) * 1000, answer


def wait_up(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited")
        try:
            requests.get(url, timeout=1)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gp-feed-"))
    db_url = f"sqlite:///{work}/gp.db"
    started = time.perf_counter()
    seed(db_url, args.services)
    seed_s = time.perf_counter() - started

    port, static_port = free_port(), free_port()
    env = {**os.environ, "GOLDENPATH_DATABASE_URL": db_url, "GOLDENPATH_TOKEN": "b" * 32, "PORT": str(port),
           "GOLDENPATH_SERVER__LOG_LEVEL": "WARNING"}
    service = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "backend.app:app_from_env",
                                "--port", str(port), "--log-level", "warning"], env=env)
    feed_url = f"http://127.0.0.1:{port}/api/v1/catalog/entities.yaml"
    static = None
    try:
        wait_up(f"http://127.0.0.1:{port}/api/v1/healthz", service)
        cold_ms, first = timed(feed_url)
        (work / "entities.yaml").write_bytes(first.content)
        static = subprocess.Popen([sys.executable, "-m", "http.server", str(static_port), "--bind", "127.0.0.1"],
                                  cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        static_url = f"http://127.0.0.1:{static_port}/entities.yaml"
        wait_up(static_url, static)
        full, floor, not_modified = [], [], []
        for _ in range(args.rounds):
            full.append(timed(feed_url)[0])
            floor.append(timed(static_url)[0])
            ms, answer = timed(feed_url, **{"If-None-Match": first.headers["etag"]})
            assert answer.status_code == 304
            not_modified.append(ms)
        after_change = []  # one service changes (as a run would): the next full response renders only it
        inventory = InventoryStore(Database(db_url))
        for index in range(args.rounds):
            inventory.upsert([ResourceRecord("service", "svc-00007", service="svc-00007", system="sys-7",
                                             owner="group:default/team-7", attributes={
                "description": f"Changed {index}", "type": "service", "lifecycle": "production", "tags": ["python"],
                "links": [], "environments": ["prod"], "costCenter": "cc-7"})], action_id="bench", run_id="1" * 36)
            ms, answer = timed(feed_url)
            assert f"Changed {index}".encode() in answer.content
            after_change.append(ms)
        peak_kb = next(int(line.split()[1]) for line in Path(f"/proc/{service.pid}/status").read_text().splitlines()
                       if line.startswith("VmHWM"))
    finally:
        service.terminate()
        if static is not None:
            static.terminate()
    result: dict[str, Any] = {
        "services": args.services, "entities": int(first.headers["x-entity-count"]),
        "body_mb": round(len(first.content) / 1e6, 1), "seed_s": round(seed_s, 1),
        "first_full_ms_renders": round(cold_ms), "full_ms_median": round(statistics.median(full), 1),
        "full_after_one_change_ms_median": round(statistics.median(after_change), 1),
        "static_ms_median": round(statistics.median(floor), 1),
        "ratio_full_over_static": round(statistics.median(full) / statistics.median(floor), 2),
        "not_modified_ms_median": round(statistics.median(not_modified), 1),
        "service_peak_rss_mb": round(peak_kb / 1024), "rounds": args.rounds}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
