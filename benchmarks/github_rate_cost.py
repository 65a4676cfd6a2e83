"""Benchmark: what a converged re-run costs GitHub's rate limit, with and without conditional requests.

A converged re-run (nothing to change) only reads: the team, the repository, its marker, topics, team
access, collaborators, invitations, rulesets, CODEOWNERS check and the branch. GitHub does not count a 304
answer to a conditional request (`If-None-Match`) against the primary rate limit, so a provider that keeps
ETags pays only for what changed. Both variants run side by side in one process, interleaved round by round,
against the same spec-checked emulator, each with its own GitHubHost (its own cache) and its own
repositories:

- plain: `github.conditional_requests: false` (every read a full 200);
- conditional: the default (reads carry the last ETag).

Reported per re-run: requests sent, requests counted against the rate limit, 304 answers, writes (must be 0).
Run by hand: PYTHONPATH=. .venv/bin/python benchmarks/github_rate_cost.py [--services 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import secrets
import statistics
from dataclasses import replace
from typing import Any

from backend.providers.github import GitHubConnection, GitHubHost
from backend.providers.repositories import Protection, RepositorySpec
from tests.github_emulator import GitHubEmulator, SpecCheck

ORG, TOKEN = "acme", "bench-token-" + secrets.token_hex(8)
FILES = {"CODEOWNERS": f"* @{ORG}/team-payments\n".encode(), "README.md": b"# bench\n",
         ".goldenpath.yaml": b"skeleton: bench\nowner: group:default/team-payments\nteam: team-payments\n"}


def spec_for(name: str) -> RepositorySpec:
    return RepositorySpec(org=ORG, name=name, description="bench", visibility="private", default_branch="main",
                          owner_team="team-payments", owner_ref="group:default/team-payments",
                          team_permission="maintain", topics=("bench",), collaborators=(("alice", "push"),),
                          protection=Protection(required_status_checks=("ci",)), commit_message="Initial commit",
                          skeleton="bench@1.0.0")


def rerun_cost(emulator: GitHubEmulator, host: GitHubHost, specs: list[RepositorySpec]) -> dict[str, float]:
    cost, sent, not_modified, writes = emulator.rate_limit_cost, len(emulator.log), emulator.not_modified, \
        emulator.writes
    for spec in specs:
        host.ensure_repository(spec, FILES, adopt=False, dry_run=False, on_change=lambda _c: None)
    count = len(specs)
    return {"requests": (len(emulator.log) - sent) / count, "rate_limited": (emulator.rate_limit_cost - cost) / count,
            "not_modified": (emulator.not_modified - not_modified) / count, "writes": emulator.writes - writes}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    emulator = GitHubEmulator(SpecCheck("api.github.com"), token=TOKEN).start()
    emulator.add_org(ORG, teams=("team-payments",), members=("alice",))
    base = GitHubConnection(api_url=emulator.api_url, token=TOKEN, seconds_between_requests=0,
                            seconds_between_writes=0)
    hosts = {"plain": GitHubHost(replace(base, conditional_requests=False), org=ORG),
             "conditional": GitHubHost(base, org=ORG)}
    specs = {variant: [spec_for(f"{variant}-{secrets.token_hex(4)}") for _ in range(args.services)]
             for variant in hosts}
    for variant, host in hosts.items():  # the first run creates, the second reads what a converged run reads
        rerun_cost(emulator, host, specs[variant])
        rerun_cost(emulator, host, specs[variant])
    figures: dict[str, list[dict[str, float]]] = {variant: [] for variant in hosts}
    for _ in range(args.rounds):
        for variant, host in hosts.items():
            figures[variant].append(rerun_cost(emulator, host, specs[variant]))
    emulator.stop()
    emulator.assert_clean()
    summary: dict[str, Any] = {variant: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
                               for variant, runs in figures.items()}
    plain, conditional = summary["plain"], summary["conditional"]
    summary["ratio_rate_limited_conditional_to_plain"] = round(conditional["rate_limited"] / plain["rate_limited"], 3)
    print(f"converged re-run of one service, median of {args.rounds} rounds x {args.services} services:")
    for variant in hosts:
        row = summary[variant]
        print(f"  {variant:<12} requests {row['requests']:5.1f}  counted against the rate limit "
              f"{row['rate_limited']:5.1f}  304s {row['not_modified']:5.1f}  writes {row['writes']:.0f}")
    print(f"  conditional / plain rate-limit cost: {summary['ratio_rate_limited_conditional_to_plain']}")
    if any(summary[variant]["writes"] for variant in hosts):
        raise SystemExit("a converged re-run wrote to GitHub")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(summary, out, indent=2)


if __name__ == "__main__":
    main()
