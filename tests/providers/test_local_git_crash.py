"""The local git provider survives `kill -9` at any instant, on real bare repositories and real processes.

A child Python process calls LocalGitHost.ensure_repository and is killed with SIGKILL, either exactly at a crash
point (GOLDENPATH_CRASHPOINTS, backend/crashpoints.py) or at a random instant; then this process runs the same
request again. The crash points of backend/providers/local_git.py:

- `local-git.after-init`: the temporary repository <root>/<org>/.tmp-<name>-<hex>.git is initialised, nothing else;
- `local-git.before-rename`: the temporary repository is complete (settings, markers, the skeleton commit), not
  yet renamed to <root>/<org>/<name>.git;
- `local-git.after-rename`: the repository is in place, the run has not reported it yet.

What must hold after any of them: the retry finds either no repository (and creates it) or a complete one (and
reports it unchanged), never an empty one, never a 409, never an empty commit hash; the repository holds exactly
one commit with exactly the skeleton's files; a third run writes nothing. An empty repository that an older version
left, marked as Golden Path's for this owner, is finished on the next run. Two processes creating the same
repository both succeed with one commit between them.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from backend.errors import ConflictError
from backend.providers.changes import Change
from backend.providers.local_git import LocalGitHost
from backend.providers.repositories import Protection, RepositoryResult, RepositorySpec
from tests.conftest import unique

ROOT = Path(__file__).resolve().parents[2]
ORG = "acme"
PAYMENTS, LEDGER = "group:default/team-payments", "group:default/team-ledger"
SKELETON = {
    "README.md": "# payments-api\n",
    "CODEOWNERS": "* @acme/team-payments\n",
    "catalog-info.yaml": "apiVersion: backstage.io/v1alpha1\nkind: Component\n",
    "src/payments_api/__init__.py": "",
    "src/payments_api/app.py": "print('hello')\n",
}
CRASH_POINTS = ("local-git.after-init", "local-git.before-rename")
CHILD_TIMEOUT = 60

# The child: builds the spec as spec_for does, says "ready" once imported (then, with "wait", waits for a line on
# stdin), runs ensure_repository and prints what it returned as one JSON line.
CHILD = """
import json, sys
from backend.providers.local_git import LocalGitHost
from backend.providers.repositories import Protection, RepositorySpec
root, request = sys.argv[1], json.loads(open(sys.argv[2], encoding="utf-8").read())
values = request["spec"]
spec = RepositorySpec(**{**values, "topics": tuple(values["topics"]),
                         "collaborators": tuple(tuple(c) for c in values["collaborators"])}, protection=Protection())
files = {path: text.encode() for path, text in request["files"].items()}
host = LocalGitHost(root=root, base_url="http://127.0.0.1:7070")
print("ready", flush=True)
if request["wait"]:
    sys.stdin.readline()
changes = []
result = host.ensure_repository(spec, files, adopt=False, dry_run=False, on_change=changes.append)
print(json.dumps({"commit": result.commit_hash, "changes": [[c.kind, c.outcome.value] for c in changes]}), flush=True)
"""


def spec_values(name: str, owner: str = PAYMENTS) -> dict[str, Any]:
    return dict(org=ORG, name=name, description="Payments API", visibility="private", default_branch="main",
                owner_team=owner.rsplit("/", 1)[-1], owner_ref=owner, team_permission="maintain",
                topics=["python", "api"], commit_message="Initial commit", skeleton="golden-path-service@1.1.0",
                collaborators=[["alice", "push"]])


def spec_for(name: str, owner: str = PAYMENTS) -> RepositorySpec:
    values = spec_values(name, owner)
    return RepositorySpec(**{**values, "topics": tuple(values["topics"]),
                             "collaborators": tuple(tuple(c) for c in values["collaborators"])},
                          protection=Protection())


def encoded(files: dict[str, str]) -> dict[str, bytes]:
    return {path: text.encode() for path, text in files.items()}


def git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=check)


@pytest.fixture
def host(tmp_path: Path) -> LocalGitHost:
    return LocalGitHost(root=str(tmp_path / "git"), base_url="http://127.0.0.1:7070")


def ensure(host: LocalGitHost, name: str, *, owner: str = PAYMENTS, files: dict[str, str] = SKELETON,
           dry_run: bool = False, **kwargs: Any) -> tuple[RepositoryResult, list[tuple[str, str]]]:
    changes: list[Change] = []
    result = host.ensure_repository(spec_for(name, owner), encoded(files), adopt=False, dry_run=dry_run,
                                    on_change=changes.append, **kwargs)
    return result, [(c.kind, c.outcome.value) for c in changes]


def bare(host: LocalGitHost, name: str) -> Path:
    return host.root / ORG / f"{name}.git"


def temporaries(host: LocalGitHost, name: str) -> list[Path]:
    folder = host.root / ORG
    return sorted(folder.glob(f".tmp-{name}-????????????????.git")) if folder.exists() else []


def commits(path: Path) -> list[str]:
    return git("--git-dir", str(path), "rev-list", "--all").stdout.split()


def tree(path: Path, commit: str) -> dict[str, str]:
    names = git("--git-dir", str(path), "ls-tree", "-r", "--name-only", commit).stdout.splitlines()
    return {name: git("--git-dir", str(path), "show", f"{commit}:{name}").stdout for name in names}


def child_command(root: Path, name: str, *, files: dict[str, str] = SKELETON, wait: bool = False) -> list[str]:
    request = root.parent / f"request-{name}.json"
    request.write_text(json.dumps({"spec": spec_values(name), "files": files, "wait": wait}), encoding="utf-8")
    return [sys.executable, "-c", CHILD, str(root), str(request)]


def child_env(crashpoints: str = "") -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("GOLDENPATH_CRASHPOINTS", None)
    if crashpoints:
        env["GOLDENPATH_CRASHPOINTS"] = crashpoints
    return env


def assert_complete(host: LocalGitHost, name: str, result: RepositoryResult, files: dict[str, str] = SKELETON) -> None:
    """Exactly one commit, the one reported, holding exactly the skeleton; no temporary repository left."""
    path = bare(host, name)
    assert result.commit_hash, "an empty commit hash"
    assert commits(path) == [result.commit_hash]
    assert git("--git-dir", str(path), "rev-parse", "main").stdout.strip() == result.commit_hash
    assert tree(path, result.commit_hash) == files
    assert result.settings["goldenpath.owner"] == PAYMENTS and result.settings["receive.denydeletes"] == "true"
    assert temporaries(host, name) == []


def assert_converged_again(host: LocalGitHost, name: str, commit: str) -> None:
    again, changes = ensure(host, name)
    assert changes == [("repository.settings", "unchanged")] and again.writes == 0
    assert again.commit_hash == commit and commits(bare(host, name)) == [commit]


def leave_like_an_older_version(host: LocalGitHost, name: str, settings: dict[str, str]) -> Path:
    """What the version before crash-safe creation left when killed after its `git config`s, before fast-import:
    a bare repository with (some of) the markers and no commit."""
    path = bare(host, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    git("init", "--bare", "--quiet", "--initial-branch=main", str(path))
    for key, value in settings.items():
        git("--git-dir", str(path), "config", key, value)
    return path


MARKERS = {"goldenpath.managed": "true", "goldenpath.owner": PAYMENTS, "goldenpath.owner-team": "team-payments",
           "goldenpath.team-permission": "maintain", "goldenpath.visibility": "private",
           "goldenpath.topics": "api,python", "goldenpath.skeleton": "golden-path-service@1.1.0",
           "goldenpath.collaborators": "alice:push", "goldenpath.required-approving-reviews": "1",
           "goldenpath.require-code-owner-reviews": "true", "receive.denyNonFastForwards": "true",
           "receive.denyDeletes": "true"}


# -- a kill at each crash point ------------------------------------------------------------------------------------

@pytest.mark.parametrize("point", CRASH_POINTS)
def test_a_kill_before_the_repository_is_in_place_leaves_none_and_the_retry_creates_it(
    host: LocalGitHost, point: str
) -> None:
    name = unique("svc")
    decoy = host.root / ORG / f".tmp-{name}-x-{'0' * 16}.git"  # another name's temporary repository: not ours
    decoy.mkdir(parents=True)
    killed = subprocess.run(child_command(host.root, name), env=child_env(point), cwd=ROOT, capture_output=True,
                            text=True, timeout=CHILD_TIMEOUT, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not bare(host, name).exists()
    [left] = temporaries(host, name)  # died where the crash point says
    has_commit = bool(git("--git-dir", str(left), "for-each-ref").stdout.strip())
    assert has_commit == (point == "local-git.before-rename")

    result, changes = ensure(host, name)
    assert changes == [("repository.repo", "created")] and result.writes == 1
    assert_complete(host, name, result)
    assert decoy.is_dir()
    assert_converged_again(host, name, result.commit_hash)


def test_a_kill_after_the_rename_leaves_a_complete_repository_that_the_retry_reports_unchanged(
    host: LocalGitHost,
) -> None:
    name = unique("svc")
    killed = subprocess.run(child_command(host.root, name), env=child_env("local-git.after-rename"), cwd=ROOT,
                            capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    [commit] = commits(bare(host, name))
    result, changes = ensure(host, name)
    assert changes == [("repository.settings", "unchanged")] and result.commit_hash == commit
    assert_complete(host, name, result)
    assert_converged_again(host, name, commit)


def test_kills_at_random_instants_never_leave_an_empty_repository(host: LocalGitHost) -> None:
    """10 trials, each a child killed after a random delay within about one run's duration, then a retry here."""
    calibration, _ = ensure(host, unique("calibrate"))
    started = time.monotonic()
    ensure(host, unique("calibrate"))
    one_run = time.monotonic() - started
    rng = random.Random()
    seen: list[str] = []
    began = time.monotonic()
    for _ in range(10):
        name = unique("svc")
        with subprocess.Popen(child_command(host.root, name), env=child_env(), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
            time.sleep(rng.uniform(0, one_run * 1.5))
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=CHILD_TIMEOUT)
        left = ("complete" if bare(host, name).exists() else
                "temporary" if temporaries(host, name) else "nothing")
        seen.append(f"{'killed' if child.returncode == -signal.SIGKILL else 'finished'}:{left}")
        result, changes = ensure(host, name)  # never a ConflictError
        assert changes == ([("repository.settings", "unchanged")] if left == "complete" else
                           [("repository.repo", "created")])
        assert_complete(host, name, result)
    elapsed = time.monotonic() - began
    print(f"one run {one_run * 1000:.0f} ms; 10 trials in {elapsed:.2f} s: {seen}")
    assert calibration.commit_hash


# -- what an older version left ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("left", "updated"), [
    (MARKERS, ()),
    ({"goldenpath.managed": "true", "goldenpath.owner": PAYMENTS},  # killed amid its `git config`s
     tuple(sorted(k for k in MARKERS if k not in ("goldenpath.managed", "goldenpath.owner")))),
], ids=["all-settings", "some-settings"])
def test_an_empty_repository_an_older_version_left_is_finished_on_the_next_run(
    host: LocalGitHost, left: dict[str, str], updated: tuple[str, ...]
) -> None:
    name = unique("svc")
    path = leave_like_an_older_version(host, name, left)
    planned, changes = ensure(host, name, dry_run=True)
    assert changes[0] == ("repository.content", "created") and planned.writes == 0 and planned.commit_hash == ""
    assert commits(path) == []

    changes_seen: list[Change] = []
    result = host.ensure_repository(spec_for(name), encoded(SKELETON), adopt=False, dry_run=False,
                                    on_change=changes_seen.append)
    assert [(c.kind, c.outcome.value, c.fields) for c in changes_seen] == [
        ("repository.content", "created", ()),
        ("repository.settings", "updated" if updated else "unchanged", updated)]
    assert_complete(host, name, result)
    assert (path / "description").read_text() == "Payments API\n"
    assert_converged_again(host, name, result.commit_hash)


def test_an_empty_repository_an_older_version_left_for_another_owner_is_refused_and_left_empty(
    host: LocalGitHost,
) -> None:
    name = unique("svc")
    path = leave_like_an_older_version(host, name, {**MARKERS, "goldenpath.owner": LEDGER})
    with pytest.raises(ConflictError) as refused:
        ensure(host, name)
    assert refused.value.owner == LEDGER and commits(path) == []


def test_a_kill_while_the_skeleton_streams_into_a_repository_commits_nothing_partial(host: LocalGitHost) -> None:
    """Finishing an older version's repository streams the skeleton straight into it: a stream cut short by a kill
    must commit nothing (`fast-import --done`), not the files that got through. A big skeleton, and the child is
    killed as soon as its `git fast-import` runs."""
    files = {f"src/module_{i:04d}.py": f"# {i}\n" + "x = 1\n" * 150 for i in range(3000)}  # ~2.7 MB
    cut = 0
    for _ in range(3):
        name = unique("svc")
        path = leave_like_an_older_version(host, name, MARKERS)
        with subprocess.Popen(child_command(host.root, name, files=files), env=child_env(), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as child:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
            importer = _wait_for_fast_import(child.pid)
            child.send_signal(signal.SIGKILL)
            child.communicate(timeout=CHILD_TIMEOUT)
        assert child.returncode == -signal.SIGKILL
        _wait_gone(importer)
        found = commits(path)
        if found:  # the stream got through before the kill: then all of it
            assert tree(path, found[0]).keys() == files.keys()
        else:
            cut += 1
        result, changes = ensure(host, name, files=files)
        assert changes[0] == (("repository.settings", "unchanged") if found else ("repository.content", "created"))
        assert commits(path) == [result.commit_hash] and result.commit_hash
        assert len(git("--git-dir", str(path), "ls-tree", "-r", "--name-only", "main").stdout.split()) == len(files)
    print(f"{cut} of 3 streams cut short by the kill")
    assert cut >= 1, "no kill landed while the skeleton was streamed: the test proved nothing"


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append((int(entry.name), " ".join(part.decode(errors="replace") for part in command)))
    return found


def _wait_for_fast_import(pid: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child, command in _children(pid):
            if "fast-import" in command:
                return child
        time.sleep(0.001)
    raise AssertionError("the child never ran git fast-import")


def _wait_gone(pid: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return
        if state in ("Z", "X"):
            return
        time.sleep(0.01)
    raise AssertionError(f"git fast-import {pid} outlived its killed parent by 30 s")


# -- two writers ----------------------------------------------------------------------------------------------------

def test_two_processes_creating_the_same_repository_both_succeed_with_one_commit(host: LocalGitHost) -> None:
    for _ in range(3):
        name = unique("svc")
        children = [subprocess.Popen(child_command(host.root, name, wait=True), env=child_env(), cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True) for _ in range(2)]
        try:
            for child in children:
                assert child.stdout is not None
                assert child.stdout.readline() == "ready\n"
            for child in children:  # both start at once
                assert child.stdin is not None
                child.stdin.write("go\n")
                child.stdin.flush()
            answers = []
            for child in children:
                out, err = child.communicate(timeout=CHILD_TIMEOUT)
                assert child.returncode == 0, err
                answers.append(json.loads(out))
        finally:
            for child in children:
                if child.poll() is None:
                    child.kill()
                    child.communicate()
        assert sorted(tuple(map(tuple, a["changes"])) for a in answers) == [
            (("repository.repo", "created"),), (("repository.settings", "unchanged"),)]
        assert answers[0]["commit"] and answers[0]["commit"] == answers[1]["commit"]
        assert commits(bare(host, name)) == [answers[0]["commit"]]
        assert temporaries(host, name) == []


def _put_in_place_meanwhile(host: LocalGitHost, name: str, tmp_path: Path, settings: dict[str, str]) -> None:
    """A writer that does not take Golden Path's lock (a person, or an older version) creates the repository, with a
    commit of its own, between our look and our rename."""
    work = tmp_path / f"work-{name}"
    git("init", "--quiet", "--initial-branch=main", str(work))
    (work / "README.md").write_text("theirs\n")
    git("add", "README.md", cwd=work)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "--quiet", "-m", "theirs", cwd=work)
    git("clone", "--bare", "--quiet", str(work), str(bare(host, name)))
    for key, value in settings.items():
        git("--git-dir", str(bare(host, name)), "config", key, value)


def test_a_repository_put_in_place_by_another_writer_meanwhile_is_converged_not_failed(
    host: LocalGitHost, tmp_path: Path
) -> None:
    name = unique("svc")
    result, changes = ensure(host, name, before_create=lambda: _put_in_place_meanwhile(
        host, name, tmp_path, {"goldenpath.managed": "true", "goldenpath.owner": PAYMENTS}))
    assert changes[0][0] == "repository.settings" and ("repository.repo", "created") not in changes
    [theirs] = commits(bare(host, name))
    assert result.commit_hash == theirs and tree(bare(host, name), theirs) == {"README.md": "theirs\n"}
    assert result.settings["receive.denydeletes"] == "true" and temporaries(host, name) == []


def test_a_repository_someone_else_put_in_place_meanwhile_is_refused_and_kept(
    host: LocalGitHost, tmp_path: Path
) -> None:
    name = unique("svc")
    with pytest.raises(ConflictError, match="not created by Golden Path"):
        ensure(host, name, before_create=lambda: _put_in_place_meanwhile(host, name, tmp_path, {}))
    [theirs] = commits(bare(host, name))
    assert tree(bare(host, name), theirs) == {"README.md": "theirs\n"} and temporaries(host, name) == []
