"""Benchmark: Golden Path replicas on one PostgreSQL database, side by side in one run.

(a) distinct-service Vault runs through 1, 2 and 3 replicas (round-robin), the same client concurrency and the same
number of requests for each, the configurations interleaved round by round: throughput (runs/s), p50/p95 latency,
and the CPU seconds the replicas, OpenBao and PostgreSQL spent;
(b) contention: concurrent requests for one service across 3 replicas: 5xx count, every run finished, elapsed
time, and how many runs waited on the service lock (another run of the service finished between the run's
acceptance and its first change).

Three replicas are started once (`goldenpath serve` each, see tests/survival/replicas.py); a configuration of N
replicas sends only to the first N (the others idle). Run by hand:
PYTHONPATH=. .venv/bin/python benchmarks/replicas.py [--requests 150] [--concurrency 16] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from backend.embedded import EmbeddedOpenBao
from tests.databases import PostgresServer
from tests.survival.replicas import Replicas

ACTION = "goldenpath:vault:secrets-path:create"
TICK = os.sysconf("SC_CLK_TCK")


def action_input(service: str) -> dict[str, Any]:
    return {"service": service, "system": "bench", "owner": "group:default/team-a", "environments": ["dev"],
            "costCenter": "cc-1", "secretKeys": ["API_KEY"]}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def postgres_cpu() -> float:
    """Every PostgreSQL process on the machine (the server is shared: other users' work counts too)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except OSError:
                continue
    return total


@dataclass
class CpuMeter:
    harness: Replicas
    bao: EmbeddedOpenBao

    def sample(self) -> dict[str, float]:
        replicas = sum(cpu_seconds(r.process.pid) for r in self.harness.replicas if r.process is not None)
        return {"replicas": replicas, "openbao": cpu_seconds(self.bao.pid or 0), "postgres": postgres_cpu(),
                "client": time.process_time()}

    @staticmethod
    def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
        return {name: round(after[name] - before[name], 1) for name in before}


def post(base: str, token: str, service: str) -> tuple[int, float]:
    start = time.perf_counter()
    with requests.Session() as session:
        response = session.post(f"{base}/api/v1/actions/{ACTION}/runs", json={"input": action_input(service)},
                                headers={"Authorization": f"Bearer {token}"}, timeout=120)
    return response.status_code, time.perf_counter() - start


def distinct(harness: Replicas, meter: CpuMeter, replicas: int, requests_: int, concurrency: int) -> dict[str, Any]:
    bases = [r.url for r in harness.replicas[:replicas]]
    tag = secrets.token_hex(3)

    def one(n: int) -> tuple[int, float]:
        return post(bases[n % replicas], harness.token, f"d{replicas}-{tag}-{n}")

    before, start = meter.sample(), time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, range(requests_)))
    wall = time.perf_counter() - start
    latencies = [seconds for _, seconds in results]
    return {"replicas": replicas, "requests": requests_, "concurrency": concurrency, "wall_s": wall,
            "errors": sum(status != 201 for status, _ in results), "latencies": latencies,
            "cpu_s": CpuMeter.spent(before, meter.sample())}


def contention(harness: Replicas, meter: CpuMeter, requests_: int) -> dict[str, Any]:
    service, token = f"hot-{secrets.token_hex(3)}", harness.token
    bases = [r.url for r in harness.replicas]

    def one(n: int) -> tuple[int, float, str | None]:
        start = time.perf_counter()
        response = requests.post(f"{bases[n % len(bases)]}/api/v1/actions/{ACTION}/runs",
                                 json={"input": action_input(service)},
                                 headers={"Authorization": f"Bearer {token}"}, timeout=300)
        body = response.json()
        return response.status_code, time.perf_counter() - start, body.get("id") or body.get("runId")

    before, start = meter.sample(), time.perf_counter()
    with ThreadPoolExecutor(requests_) as pool:
        results = list(pool.map(one, range(requests_)))
    elapsed = time.perf_counter() - start
    run_ids = [run_id for _, _, run_id in results]
    records = [requests.get(f"{bases[0]}/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {token}"},
                            timeout=30).json() for run_id in run_ids if run_id]
    spans = [(at(r["createdAt"]), at(r["log"][0]["at"]) if r.get("log") else None,
              at(r["finishedAt"]) if r.get("finishedAt") else None) for r in records]
    waited = sum(1 for created, first, _ in spans if first is not None and any(
        other is not None and created < other < first for _, _, other in spans))
    waits = [first - created for created, first, _ in spans if first is not None]
    statuses: dict[str, int] = {}
    for status, _, _ in results:
        statuses[str(status)] = statuses.get(str(status), 0) + 1
    return {"requests": requests_, "replicas": len(bases), "elapsed_s": round(elapsed, 2), "statuses": statuses,
            "5xx": sum(status >= 500 for status, _, _ in results),
            "terminal": sum(r["status"] in {"succeeded", "failed", "refused"} for r in records),
            "created": sum(any(c["outcome"] == "created" for c in r["changes"]) for r in records),
            "waited_on_lock": waited, "max_lock_wait_s": round(max(waits, default=0.0), 2),
            "p50_ms": round(pct([s for _, s, _ in results], 0.5) * 1000),
            "cpu_s": CpuMeter.spent(before, meter.sample())}


def at(stamp: str) -> float:
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [s for row in rows for s in row["latencies"]]
    wall = sum(row["wall_s"] for row in rows)
    requests_ = sum(row["requests"] for row in rows)
    cpu = {name: round(sum(row["cpu_s"][name] for row in rows), 1) for name in rows[0]["cpu_s"]}
    return {"replicas": rows[0]["replicas"], "requests": requests_, "concurrency": rows[0]["concurrency"],
            "rounds": len(rows), "runs_per_s": round(requests_ / wall, 2),
            "runs_per_s_by_round": [round(row["requests"] / row["wall_s"], 2) for row in rows],
            "p50_ms": round(pct(latencies, 0.5) * 1000), "p95_ms": round(pct(latencies, 0.95) * 1000),
            "errors": sum(row["errors"] for row in rows), "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=150, help="distinct-service runs per configuration")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="each round runs 1, 2 and 3 replicas once")
    parser.add_argument("--contention", type=int, default=50, help="concurrent requests for one service")
    parser.add_argument("--json", dest="json_path", help="also write the results here "
                                                         "(e.g. benchmarks/results-replicas.json)")
    args = parser.parse_args()
    postgres = PostgresServer().start()
    url = postgres.create_database()
    load = os.getloadavg()
    try:
        with EmbeddedOpenBao() as bao, tempfile.TemporaryDirectory(prefix="gp-bench-replicas-") as workdir:
            harness = Replicas(Path(workdir), database_url=url, openbao=bao, count=3, lease_seconds=10,
                               takeover_interval_seconds=5, lock_timeout_seconds=300)
            with harness:
                meter = CpuMeter(harness, bao)
                for replica in harness.replicas:  # warm each replica (the first run also enables kubernetes auth)
                    for n in range(3):
                        status, _ = post(replica.url, harness.token, f"warm-{replica.index}-{n}")
                        assert status == 201, status
                rows: dict[int, list[dict[str, Any]]] = {1: [], 2: [], 3: []}
                for _ in range(args.rounds):
                    for replicas in (1, 2, 3):
                        rows[replicas].append(distinct(harness, meter, replicas, args.requests, args.concurrency))
                hot = contention(harness, meter, args.contention)
    finally:
        postgres.drop_database(url)
        postgres.stop()
    table = [summarize(rows[n]) for n in (1, 2, 3)]
    base = table[0]["runs_per_s"]
    for row in table:
        row["vs_1_replica"] = round(row["runs_per_s"] / base, 2)
    results = {"machine": {"cores": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load]},
               "distinct": table, "contention": hot}
    print(f"machine: {os.cpu_count()} cores, load average at start {load[0]:.2f}")
    print(f"(a) distinct-service Vault runs, {args.requests} per configuration x {args.rounds} rounds, "
          f"concurrency {args.concurrency}")
    print(f"{'replicas':>8} {'runs/s':>7} {'by round':>14} {'p50 ms':>7} {'p95 ms':>7} {'errors':>6} "
          f"{'vs 1':>5}  cpu s: replicas / openbao / postgres / client")
    for row in table:
        cpu = row["cpu_s"]
        print(f"{row['replicas']:>8} {row['runs_per_s']:>7} {row['runs_per_s_by_round']!s:>14} "
              f"{row['p50_ms']:>7} {row['p95_ms']:>7} {row['errors']:>6} {row['vs_1_replica']:>5}  "
              f"{cpu['replicas']} / {cpu['openbao']} / {cpu['postgres']} / {cpu['client']}")
    print(f"(b) contention: {hot['requests']} concurrent requests for one service across {hot['replicas']} "
          f"replicas: statuses {hot['statuses']}, 5xx {hot['5xx']}, terminal {hot['terminal']}/{hot['requests']}, "
          f"created by {hot['created']} run(s), {hot['waited_on_lock']} waited on the lock (longest "
          f"{hot['max_lock_wait_s']} s), elapsed {hot['elapsed_s']} s, p50 {hot['p50_ms']} ms")
    print(json.dumps({"ratios": {f"{row['replicas']}_vs_1": row["vs_1_replica"] for row in table}}))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
