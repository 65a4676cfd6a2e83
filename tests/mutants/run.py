"""The mutation check: apply each realistic bug of the catalogue to a copy of the code, run the tests that guard
it, and fail unless every mutant is killed (some guarding test fails).

    python tests/mutants/run.py [--only ID ...] [--workers N] [--list]

The catalogue is tests/mutants/catalogue/*.yaml, one list per area. Each entry names a file, an exact piece of
source (`find`, which must occur exactly once: a stale entry is an error, not a pass), its `replace`ment, the
guarantee it breaks (docs/guarantees.md) and the tests that must catch it. The code is copied once per worker into
a temporary directory, so the working tree is never touched and a crash leaves nothing behind. Exit 0: every
mutant killed; 1: a survivor, an error or a stale entry; 2: the unmutated copy fails its own guard tests (the
catalogue cannot be judged).

Speed: each worker is a process that imports the third-party libraries once, then forks one child per mutant; the
child imports our (mutated) code fresh and runs pytest in-process. A pytest start costs ~0.5 s instead of ~3 s.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = Path(__file__).with_name("catalogue")  # one YAML list per area
IGNORED = shutil.ignore_patterns(".git", ".venv", "var", "node_modules", "__pycache__", "*.pyc", ".mypy_cache",
                                 ".ruff_cache", ".pytest_cache", "*.egg-info", "build", "dist")
TIMEOUT_SECONDS = 60  # a guard that hangs under a mutant catches it; the slowest kill takes ~30 s
BASELINE_TIMEOUT_SECONDS = 1200  # every guard test at once, on the unmutated code
# imported once per worker, before any fork: everything heavy that is not ours (our code must load mutated), pytest
# plugins included (the child then tells pytest not to warn that it cannot rewrite their asserts)
PRELOAD = ("pytest", "_pytest.python", "hypothesis", "hypothesis.strategies", "schemathesis", "schemathesis.pytest",
           "kmock", "aiohttp", "anyio", "pytest_asyncio", "pytest_timeout", "connexion", "flask",
           "starlette.testclient", "uvicorn", "sqlalchemy", "alembic.command", "psycopg", "hvac", "kubernetes.client",
           "kubernetes_validate", "github", "jwt", "cryptography", "requests", "yaml", "marshmallow", "apispec",
           "detect_secrets", "openapi_core", "jsonschema", "structlog", "prometheus_client", "dulwich.web", "jinja2",
           "pydantic", "pydantic_core")
OURS = ("backend", "scaffolder_actions", "tests", "backstage")


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
    id: str
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


@contextlib.contextmanager
def copy_of_the_code() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="goldenpath-mutants-") as tmp:
        target = Path(tmp) / "code"
        shutil.copytree(ROOT, target, ignore=IGNORED)
        yield target


# --- a worker: preload, then one forked pytest per mutant ---------------------------------------------------

def forked_pytest(copy: Path, tests: tuple[str, ...], log: Path, timeout: float = TIMEOUT_SECONDS) -> int:
    """Run pytest on `tests` in a child forked from this preloaded process; its exit code (-1: timed out)."""
    pid = os.fork()
    if pid == 0:  # the child: fresh imports of our code, pytest in-process, never back into the parent's loop
        code = 3
        try:
            with open(log, "w", encoding="utf-8") as out:
                os.dup2(out.fileno(), 1)
                os.dup2(out.fileno(), 2)
                import pytest

                code = int(pytest.main(["-x", "-q", "--no-header", "-p", "no:cacheprovider",  # plugins preloaded:
                                        "-W", "ignore::pytest.PytestAssertRewriteWarning", *tests]))
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return -1
        time.sleep(0.02)


def judge(copy: Path, mutant: Mutant, log: Path) -> Outcome:
    started = time.monotonic()
    path = copy / mutant.file
    original = path.read_text(encoding="utf-8")
    if original.count(mutant.find) != 1:
        return Outcome(mutant.id, "stale", 0.0,
                       f"`find` occurs {original.count(mutant.find)} times in {mutant.file} (must be once)")
    path.write_text(original.replace(mutant.find, mutant.replace), encoding="utf-8")
    try:
        code = forked_pytest(copy, mutant.tests, log)
    finally:
        path.write_text(original, encoding="utf-8")
    seconds = time.monotonic() - started
    last = (log.read_text(encoding="utf-8", errors="replace").strip().splitlines() or [""])[-1]
    if code == -1:
        return Outcome(mutant.id, "killed", seconds, f"timed out after {TIMEOUT_SECONDS} s")
    verdict = {0: "survived", 1: "killed"}.get(code, "error")  # 2-5: could not run (no proof of a guard)
    return Outcome(mutant.id, verdict, seconds, last if verdict != "error" else f"pytest exit {code}: {last}")


def serve(copy: Path, ids: list[str], *, baseline_only: bool) -> int:
    """The worker's loop: one JSON line per outcome on stdout."""
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    assert not [m for m in sys.modules if m.split(".")[0] in OURS], "our code must not be preloaded"
    os.chdir(copy)
    sys.path.insert(0, str(copy))
    os.environ["PYTHONPATH"] = str(copy)  # for what the tests start (the goldenpath CLI, servers)
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    mutants = {m.id: m for m in load(copy / "tests" / "mutants" / "catalogue")}
    log = copy.parent / "pytest.log"
    if baseline_only:
        guards = tuple(sorted({test for i in ids for test in mutants[i].tests}))
        code = forked_pytest(copy, guards, log, timeout=BASELINE_TIMEOUT_SECONDS)
        if code != 0:
            print(log.read_text(encoding="utf-8", errors="replace")[-4000:], file=sys.stderr)
        return code
    for mutant_id in ids:
        print(json.dumps(asdict(judge(copy, mutants[mutant_id], log))), flush=True)
    return 0


# --- the coordinator ----------------------------------------------------------------------------------------

def worker(copy: Path, ids: list[str], *, baseline_only: bool = False) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(Path(__file__).resolve()), "--serve", str(copy),
               *(["--baseline"] if baseline_only else []), "--only", *ids]
    return subprocess.run(command, capture_output=True, text=True, check=False, cwd=copy)


def run(mutants: list[Mutant], workers: int) -> list[Outcome]:
    ids = [m.id for m in mutants]
    with copy_of_the_code() as copy:
        checked = worker(copy, ids, baseline_only=True)
    if checked.returncode != 0:
        print(checked.stderr[-4000:], file=sys.stderr)
        print("mutants: the unmutated code fails its guard tests; fix that first", file=sys.stderr)
        raise SystemExit(2)

    def work(share: list[str]) -> list[Outcome]:
        with copy_of_the_code() as copy:
            result = worker(copy, share)
        found = [Outcome(**json.loads(line)) for line in result.stdout.splitlines() if line.startswith("{")]
        seen = {o.id for o in found}
        return found + [Outcome(i, "error", 0.0, f"worker died: {result.stderr[-300:]}") for i in share
                        if i not in seen]

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = [o for share in pool.map(work, [ids[i::workers] for i in range(workers)]) for o in share]
    order = {i: n for n, i in enumerate(ids)}
    return sorted(results, key=lambda o: order[o.id])


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="mutant ids to run (default: all)")
    parser.add_argument("--workers", type=int, default=3)  # tests wait on servers: 3 keep 2 cores busy
    parser.add_argument("--list", action="store_true", help="list the catalogue and exit")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)  # a worker, on this copy of the code
    parser.add_argument("--baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve, args.only or [], baseline_only=args.baseline)
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
    guarantees = {m.id: m.guarantee for m in mutants}
    for outcome in outcomes:
        print(f"{outcome.verdict:8} {outcome.seconds:6.1f} s  {outcome.id}  ({guarantees[outcome.id]})"
              + (f"  — {outcome.detail}" if outcome.verdict != "killed" else ""))
    killed = sum(o.verdict == "killed" for o in outcomes)
    print(f"mutants: {killed} of {len(outcomes)} killed ({100 * killed / max(1, len(outcomes)):.0f} %) in "
          f"{time.monotonic() - started:.0f} s")
    return 0 if killed == len(outcomes) else 1


if __name__ == "__main__":
    raise SystemExit(main())
