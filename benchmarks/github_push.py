"""Benchmark: publishing a skeleton of 10, 100 and 1,000 files to the GitHub emulator, side by side in one run.

- goldenpath: GitHubHost.ensure_repository (Git Data API: one tree with inline contents, one root commit,
  one ref update, plus the settings);
- per-file: the same files pushed one Contents API call per file (what a naive publisher does);
- re-run: GitHubHost.ensure_repository again on the repository it made (target: 0 write calls).

Both push modes run against the same spec-checked emulator (every request and response validated against
GitHub's OpenAPI description, which costs the same per call for both), interleaved round by round.
PyGithub's pacing between requests is off here; on real GitHub it defaults to 1 s between writes, so
there the write count is also roughly the number of seconds a push takes.
Run by hand: PYTHONPATH=. .venv/bin/python benchmarks/github_push.py [--rounds 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import secrets
import statistics
import time
from typing import Any

from backend.providers.github import GitHubConnection, GitHubHost
from backend.providers.repositories import Protection, RepositorySpec
from tests.github_emulator import GitHubEmulator, SpecCheck

ORG, TOKEN = "acme", "bench-token-" + secrets.token_hex(8)
PUSH_CALLS = {"POST /orgs/{org}/repos", "PUT /repos/{owner}/{repo}/contents/{path}",
              "POST /repos/{owner}/{repo}/git/trees", "POST /repos/{owner}/{repo}/git/commits",
              "PATCH /repos/{owner}/{repo}/git/refs/{ref}", "POST /repos/{owner}/{repo}/git/blobs"}
SIZES = (10, 100, 1000)


def skeleton(count: int) -> dict[str, bytes]:
    files = {"CODEOWNERS": f"* @{ORG}/team-payments\n".encode(),
             ".goldenpath.yaml": b"skeleton: bench\nversion: 1.0.0\nteam: team-payments\n"}
    for index in range(count - len(files)):
        files[f"src/pkg_{index // 50:02d}/module_{index:04d}.py"] = (f'"""Module {index}."""\n\nVALUE = {index}\n'
                                                                    * 4).encode()
    return files


def spec_for(name: str) -> RepositorySpec:
    return RepositorySpec(org=ORG, name=name, description="bench", visibility="private", default_branch="main",
                          owner_team="team-payments", owner_ref="group:default/team-payments",
                          team_permission="maintain", topics=("bench",),
                          protection=Protection(), commit_message="Initial commit", skeleton="bench@1.0.0")


def goldenpath_push(emulator: GitHubEmulator, host: GitHubHost, files: dict[str, bytes]) -> dict[str, Any]:
    spec = spec_for("gp-" + secrets.token_hex(4))
    before, logged, started = emulator.writes, len(emulator.log), time.perf_counter()
    host.ensure_repository(spec, files, adopt=False, dry_run=False, on_change=lambda _c: None)
    push = sum(1 for method, template, _ in emulator.log[logged:] if f"{method} {template}" in PUSH_CALLS)
    first = {"writes": emulator.writes - before, "push_writes": push, "seconds": time.perf_counter() - started}
    before, started = emulator.writes, time.perf_counter()
    host.ensure_repository(spec, files, adopt=False, dry_run=False, on_change=lambda _c: None)
    assert len(emulator.history(ORG, spec.name)) == 1 and emulator.files(ORG, spec.name) == files
    return {**first, "rerun_writes": emulator.writes - before, "rerun_seconds": time.perf_counter() - started}


def per_file_push(emulator: GitHubEmulator, host: GitHubHost, files: dict[str, bytes]) -> dict[str, Any]:
    name = "pf-" + secrets.token_hex(4)
    api = host.api()
    before, started = emulator.writes, time.perf_counter()
    api.call("POST", f"/orgs/{ORG}/repos", what="create", body={"name": name, "visibility": "private"})
    for path, content in files.items():
        api.call("PUT", f"/repos/{ORG}/{name}/contents/{path}", what=f"put {path}",
                 body={"message": f"Add {path}", "content": base64.b64encode(content).decode(), "branch": "main"})
    assert emulator.files(ORG, name) == files
    return {"writes": emulator.writes - before, "seconds": time.perf_counter() - started,
            "commits": len(emulator.history(ORG, name))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    emulator = GitHubEmulator(SpecCheck("api.github.com"), token=TOKEN).start()
    emulator.add_org(ORG, teams=("team-payments",))
    host = GitHubHost(GitHubConnection(api_url=emulator.api_url, token=TOKEN, seconds_between_requests=0,
                                       seconds_between_writes=0), org=ORG)
    results = []
    try:
        for size in SIZES:
            files = skeleton(size)
            golden, naive = [], []
            for _ in range(args.rounds):
                golden.append(goldenpath_push(emulator, host, files))
                naive.append(per_file_push(emulator, host, files))
            results.append(_summary(size, golden, naive))
            print(json.dumps(results[-1]))
    finally:
        emulator.stop()
    emulator.assert_clean()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)


def _summary(size: int, golden: list[dict[str, Any]], naive: list[dict[str, Any]]) -> dict[str, Any]:
    def median(rows: list[dict[str, Any]], key: str) -> float:
        return round(statistics.median(row[key] for row in rows), 3)

    return {"files": size, "rounds": len(golden),
            "goldenpath_push_writes": median(golden, "push_writes"),
            "goldenpath_writes_with_settings": median(golden, "writes"), "goldenpath_s": median(golden, "seconds"),
            "per_file_writes": median(naive, "writes"), "per_file_s": median(naive, "seconds"),
            "per_file_commits": median(naive, "commits"),
            "time_ratio_per_file_over_goldenpath": round(median(naive, "seconds") / median(golden, "seconds"), 1),
            "rerun_writes": max(row["rerun_writes"] for row in golden), "rerun_s": median(golden, "rerun_seconds")}


if __name__ == "__main__":
    main()
