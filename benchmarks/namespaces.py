"""Benchmark: provision N services x 2 environments with the namespace action, GitOps and direct mode.

Each mode runs in its own process (so peak memory is that mode's). The action runs through the real
runner (validation, audit, inventory) on SQLite. Direct mode talks HTTP to the kmock emulator, a fresh one
per 10 services (kmock slows down with every request it has logged); GitOps mode commits to a local bare
repository. Reports total time, writes per namespace on the first run and on a re-run (target: one per
object, then zero), and peak RSS.
Run by hand: PYTHONPATH=. .venv/bin/python benchmarks/namespaces.py [--services 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ACTION = "goldenpath:kubernetes:namespace:create"


CHUNK = 10  # kmock keeps every request and slows down with each one: a fresh emulator per chunk


def run_mode(mode: str, services: int) -> dict[str, Any]:
    totals = {"first_s": 0.0, "rerun_s": 0.0, "first_writes": 0, "rerun_writes": 0, "objects": 0}
    chunk = CHUNK if mode == "direct" else services
    for offset in range(0, services, chunk):
        part = _run_chunk(mode, range(offset, min(offset + chunk, services)))
        for key in totals:
            totals[key] += part[key]
    namespaces = services * 2
    return {
        "mode": mode, "namespaces": namespaces, "objects": totals["objects"],
        "first_run_s": round(totals["first_s"], 2),
        "per_namespace_ms": round(totals["first_s"] / namespaces * 1000, 1),
        "rerun_s": round(totals["rerun_s"], 2),
        "first_run_writes_per_namespace": totals["first_writes"] / namespaces,
        "write_unit": "API write requests" if mode == "direct" else "git commits",
        "rerun_writes": totals["rerun_writes"],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _run_chunk(mode: str, numbers: range) -> dict[str, Any]:
    from backend.app import build_services
    from backend.plugin_api import Requester
    from backend.services.runner import RunRequest
    from backend.settings import settings_from_dict
    from tests.k8s_emulator import KubeEmulator

    work = Path(tempfile.mkdtemp(prefix=f"gp-bench-{mode}-"))
    emulator = KubeEmulator().start() if mode == "direct" else None
    cluster = ({"mode": "direct", "server": emulator.url} if emulator else
               {"mode": "gitops", "remote": str(work / "remote.git"), "workdir": str(work / "work")})
    settings = settings_from_dict({"database": {"url": f"sqlite:///{work}/gp.db"}, "auth": {"token": "x" * 16},
                                   "audit": {"key_file": f"{work}/audit.key", "witness_file": f"{work}/witness.jsonl"},
                                   "kubernetes": {"clusters": {"c1": cluster},
                                                  "environments": {"dev": ["c1"], "prod": ["c1"]}}})
    runner = build_services(settings, upgrade_schema=True).runner

    def provision() -> tuple[float, int]:
        started, objects = time.perf_counter(), 0
        for n in numbers:
            record = runner.run(RunRequest(action_id=ACTION, requester=Requester(None, "bench"), input={
                "service": f"svc-{n:04d}", "system": "bench", "owner": "group:default/team-a",
                "costCenter": "cc-1", "environments": ["dev", "prod"]}))
            objects += sum(len(ns["objects"]) for ns in record["output"]["namespaces"])
        return time.perf_counter() - started, objects

    def writes() -> int:
        if emulator:
            return len(emulator.writes())
        count = subprocess.run(["git", "rev-list", "--count", "main"], cwd=work / "remote.git",
                               capture_output=True, text=True, check=True).stdout
        return int(count)

    first_s, objects = provision()
    first_writes = writes()
    rerun_s, _ = provision()
    rerun_writes = writes() - first_writes
    if emulator:
        emulator.stop()
    return {"first_s": first_s, "rerun_s": rerun_s, "first_writes": first_writes, "rerun_writes": rerun_writes,
            "objects": objects}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--mode", choices=["gitops", "direct"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.services)))
        return
    results = []
    for mode in ("gitops", "direct"):
        out = subprocess.run([sys.executable, __file__, "--mode", mode, "--services", str(args.services)],
                             capture_output=True, text=True, check=True).stdout
        results.append(json.loads(out.strip().splitlines()[-1]))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
