"""The mutation check: apply each realistic bug of the catalogue to a copy of the code, run the tests that guard
it, and fail unless every mutant is killed (some guarding test fails).

    python tests/mutants/run.py [--only ID ...] [--workers N] [--list]

The catalogue is tests/mutants/catalogue/*.yaml, one list per area. Each entry names a file, an exact piece of
source (`find`, which must occur exactly once: a stale entry is an error, not a pass), its `replace`ment, the
guarantee it breaks (docs/guarantees.md) and the tests that must catch it. The code is copied once per worker into
a temporary directory, so the working tree is never touched and a crash leaves nothing behind. Exit 0: every
mutant killed; 1: a survivor or a stale entry; 2: the unmutated copy fails its own guard tests (the catalogue
cannot be judged).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = Path(__file__).with_name("catalogue")  # one YAML list per area
IGNORED = shutil.ignore_patterns(".git", ".venv", "var", "node_modules", "__pycache__", "*.pyc", ".mypy_cache",
                                 ".ruff_cache", ".pytest_cache", "*.egg-info", "build", "dist")
TIMEOUT_SECONDS = 300


@dataclass(frozen=True)
class Mutant:
    id: str
    guarantee: str
    file: str
    find: str
    replace: str
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    verdict: str  # killed, survived, stale, error
    seconds: float
    detail: str = ""


def load(folder: Path = CATALOGUE) -> list[Mutant]:
    entries = [entry for path in sorted(folder.glob("*.yaml"))
               for entry in yaml.safe_load(path.read_text(encoding="utf-8")) or []]
    mutants = [Mutant(id=e["id"], guarantee=e["guarantee"], file=e["file"], find=e["find"], replace=e["replace"],
                      tests=tuple(e["tests"])) for e in entries]
    ids = [m.id for m in mutants]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise SystemExit(f"duplicate mutant ids: {', '.join(duplicates)}")
    return mutants


@contextmanager
def copy_of_the_code() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="goldenpath-mutants-") as tmp:
        target = Path(tmp) / "code"
        shutil.copytree(ROOT, target, ignore=IGNORED)
        yield target


def pytest(copy: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "--no-header", *tests]  # pyproject's options apply
    return subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
                          check=False)


def judge(copy: Path, mutant: Mutant) -> Outcome:
    started = time.monotonic()
    path = copy / mutant.file
    original = path.read_text(encoding="utf-8")
    if original.count(mutant.find) != 1:
        found = original.count(mutant.find)
        return Outcome(mutant, "stale", 0.0, f"`find` occurs {found} times in {mutant.file} (must be once)")
    path.write_text(original.replace(mutant.find, mutant.replace), encoding="utf-8")
    try:
        result = pytest(copy, mutant.tests)
    except subprocess.TimeoutExpired:
        return Outcome(mutant, "killed", time.monotonic() - started, f"timed out after {TIMEOUT_SECONDS} s")
    finally:
        path.write_text(original, encoding="utf-8")
    seconds = time.monotonic() - started
    last = (result.stdout.strip().splitlines() or [""])[-1]
    if result.returncode == 0:
        return Outcome(mutant, "survived", seconds, last)
    if result.returncode == 1:
        return Outcome(mutant, "killed", seconds, last)
    # 2-4: the tests could not run (an import error the mutant caused is no proof of a guard); 5: no tests
    return Outcome(mutant, "error", seconds, f"pytest exit {result.returncode}: {last or result.stderr[-300:]}")


def baseline(copy: Path, mutants: list[Mutant]) -> None:
    guards = tuple(sorted({test for mutant in mutants for test in mutant.tests}))
    result = pytest(copy, guards)
    if result.returncode != 0:
        print(result.stdout[-3000:], result.stderr[-2000:], sep="\n")
        print("mutants: the unmutated code fails its guard tests; fix that first", file=sys.stderr)
        raise SystemExit(2)


def run(mutants: list[Mutant], workers: int) -> list[Outcome]:
    shares = [mutants[i::workers] for i in range(workers)]

    def work(share: list[Mutant]) -> list[Outcome]:
        with copy_of_the_code() as copy:
            return [judge(copy, mutant) for mutant in share]

    with copy_of_the_code() as copy:
        baseline(copy, mutants)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [outcome for share in pool.map(work, shares) for outcome in share]
    order = {m.id: i for i, m in enumerate(mutants)}
    return sorted(results, key=lambda o: order[o.mutant.id])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="mutant ids to run (default: all)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    args = parser.parse_args()
    mutants = load()
    if args.only:
        unknown = set(args.only) - {m.id for m in mutants}
        if unknown:
            raise SystemExit(f"unknown mutant ids: {', '.join(sorted(unknown))}")
        mutants = [m for m in mutants if m.id in args.only]
    if args.list:
        for mutant in mutants:
            print(f"{mutant.id}\t{mutant.guarantee}\t{mutant.file}")
        return 0
    started = time.monotonic()
    outcomes = run(mutants, max(1, min(args.workers, len(mutants))))
    for outcome in outcomes:
        print(f"{outcome.verdict:8} {outcome.seconds:6.1f} s  {outcome.mutant.id}  ({outcome.mutant.guarantee})"
              + (f"  — {outcome.detail}" if outcome.verdict != "killed" else ""))
    killed = sum(o.verdict == "killed" for o in outcomes)
    print(f"mutants: {killed} of {len(outcomes)} killed ({100 * killed / max(1, len(outcomes)):.0f} %) in "
          f"{time.monotonic() - started:.0f} s")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
