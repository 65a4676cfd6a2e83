"""Chaos: three replicas on one PostgreSQL database serve a pool of clients while one replica after another is
killed with SIGKILL and started again. Clients retry as Backstage does (a connection error, a 503 or a retryable
409: the same request, with the same idempotency key, on another replica).

Afterwards: every run is finished, no request failed except retryable problems retried to success, every Vault
object was created once and has its `created` audit event (recovered intents included), the audit chain is
intact, and every idempotency key answered one run id.

Below it, each problem the chaos test found (or whose window it drives), reproduced deterministically.
"""

from __future__ import annotations

import itertools
import os
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import pytest
import requests

from backend.app import Services, build_services
from backend.embedded import EmbeddedOpenBao
from backend.errors import BusyError, GoldenPathError
from backend.guardrails import TenantSpec, render
from backend.providers.clusters import TenantResult
from backend.providers.gitops import GitOpsCluster
from backend.services.audit import verify
from backend.services.runner import RunRequest
from backend.settings import load_settings
from backend.store.locks import Locks
from tests.conftest import VAULT_ACTION, SettingsFactory, unique, vault_input
from tests.databases import PostgresServer
from tests.survival.actions import ALICE, registry
from tests.survival.replicas import Replicas

NAMESPACE_ACTION = "goldenpath:kubernetes:namespace:create"
SYSTEM = "payments"
ENVIRONMENTS = ["dev", "prod"]  # two of each object per run: more writes in flight when a replica dies
CLIENTS = 5
BURST = 4  # requests sent at once for one new service
CHAOS_SECONDS = float(os.environ.get("GOLDENPATH_CHAOS_SECONDS", "40"))  # the soak: set it higher by hand
KILL_EVERY = (2.0, 3.0)
REQUEST_DEADLINE = 60.0  # a client gives up on one request after this long (it then counts as failed)
HTTP_TIMEOUT = 30.0
SETTLE_SECONDS = 30.0  # after the kills: how long the survivors get to finish every run
SEED = int(time.time())


@pytest.fixture
def harness(tmp_path: Path, postgres: PostgresServer, openbao: EmbeddedOpenBao) -> Iterator[Replicas]:
    url = postgres.create_database()
    replicas = Replicas(tmp_path / "replicas", database_url=url, openbao=openbao, count=3)
    try:
        yield replicas.start()
    finally:
        replicas.stop()
        postgres.drop_database(url)


@dataclass
class Attempt:
    replica: int
    status: int | None  # None: no answer (connection refused or reset, timeout)
    run_id: str | None
    problem: dict[str, Any] | None
    seconds: float
    error: str | None = None


@dataclass
class Request:
    number: int
    kind: str
    action: str
    service: str
    body: dict[str, Any]
    attempts: list[Attempt] = field(default_factory=list)
    seconds: float = 0.0  # from the first attempt to the last answer, retries and pauses included

    @property
    def key(self) -> str | None:
        return self.body.get("idempotencyKey")

    @property
    def answered(self) -> Attempt | None:
        last = self.attempts[-1] if self.attempts else None
        return last if last is not None and last.status is not None and 200 <= last.status < 300 else None


def failure(exc: requests.RequestException) -> str:
    """refused (the replica was down), cut-off (it died holding the request) or timeout."""
    if isinstance(exc, requests.Timeout):
        return "timeout"
    return "refused" if "refused" in str(exc) else "cut-off"


def vault(**overrides: Any) -> dict[str, Any]:
    return vault_input(**{"system": SYSTEM, "environments": ENVIRONMENTS, **overrides})


def retryable(attempt: Attempt) -> bool:
    if attempt.status is None or attempt.status == 503:
        return True
    return attempt.status == 409 and bool((attempt.problem or {}).get("retryable"))


class Clients:
    """A pool of clients, round-robin across replicas, recording every HTTP request they send."""

    def __init__(self, harness: Replicas, shared: list[str], rng: random.Random) -> None:
        self.harness, self.shared, self.rng = harness, shared, rng
        self.requests: list[Request] = []
        self.crashes: list[str] = []
        self._turn = itertools.count()
        self._numbers = itertools.count(1)
        self._guard = threading.Lock()
        self.stop = threading.Event()

    def next_request(self) -> Request:
        """A random request: a new service, a service others are running too, a dry-run, or a namespace."""
        with self._guard:
            roll, keyed, dry = self.rng.random(), self.rng.random() < 0.6, self.rng.random() < 0.5
            shared = self.rng.choice(self.shared[-2:])
        if roll < 0.35:
            return self.request("distinct", VAULT_ACTION, vault(), keyed=keyed)
        if roll < 0.65:
            return self.request("shared", VAULT_ACTION, vault(service=shared), keyed=keyed)
        if roll < 0.80:
            return self.request("dry-run", VAULT_ACTION, vault(**({"service": shared} if dry else {})), keyed=keyed)
        return self.request("namespace", NAMESPACE_ACTION, {
            "service": unique("ns"), "system": SYSTEM, "owner": "group:default/team-payments",
            "costCenter": "cc-1234", "environments": ["dev"]}, keyed=keyed)

    def request(self, kind: str, action: str, data: dict[str, Any], *, keyed: bool) -> Request:
        body: dict[str, Any] = {"input": data, "dryRun": kind == "dry-run"}
        if keyed:
            body["idempotencyKey"] = f"chaos-{uuid.uuid4()}"
        with self._guard:
            request = Request(next(self._numbers), kind, action, data["service"], body)
            self.requests.append(request)
        return request

    def send(self, session: requests.Session, request: Request) -> None:
        started = time.monotonic()
        deadline, pause = started + REQUEST_DEADLINE, 0.1
        while time.monotonic() < deadline:
            request.seconds = time.monotonic() - started
            index = next(self._turn) % len(self.harness.replicas)
            attempt = self._post(session, index, request)
            request.attempts.append(attempt)
            request.seconds = time.monotonic() - started
            if not retryable(attempt):
                return
            if attempt.status is not None:  # refused: straight on to the next replica; busy: back off
                time.sleep(pause)
                pause = min(pause * 2, 1.0)
            else:
                time.sleep(0.05)

    def _post(self, session: requests.Session, index: int, request: Request) -> Attempt:
        url = f"{self.harness.replicas[index].url}/api/v1/actions/{request.action}/runs"
        started = time.monotonic()
        try:
            response = session.post(url, json=request.body, timeout=HTTP_TIMEOUT,
                                    headers={"Authorization": f"Bearer {self.harness.token}"})
        except requests.RequestException as exc:
            return Attempt(index, None, None, None, time.monotonic() - started, failure(exc))
        body: dict[str, Any] = response.json() if response.content else {}
        ok = 200 <= response.status_code < 300
        return Attempt(index, response.status_code, body.get("id") if ok else body.get("runId"),
                       None if ok else body, time.monotonic() - started)

    def loop(self) -> None:
        try:
            with requests.Session() as session:
                while not self.stop.is_set():
                    self.send(session, self.next_request())
        except Exception as exc:  # recorded and asserted on: a crashed client hides nothing
            self.crashes.append(repr(exc))

    def bursts(self) -> None:
        """Again and again: a new service, BURST requests for it at once (half with keys) on every replica; the
        random clients then run it too. Only the service lock keeps them from each creating its objects."""
        try:
            while not self.stop.is_set():
                service = unique("shared")
                with self._guard:
                    self.shared.append(service)
                burst = [self.request("burst", VAULT_ACTION, vault(service=service), keyed=n % 2 == 0)
                         for n in range(BURST)]
                senders = [threading.Thread(target=self._send_alone, args=(r,)) for r in burst]
                for sender in senders:
                    sender.start()
                for sender in senders:
                    sender.join(REQUEST_DEADLINE + HTTP_TIMEOUT)
                self.stop.wait(1.0)
        except Exception as exc:
            self.crashes.append(repr(exc))

    def _send_alone(self, request: Request) -> None:
        try:
            with requests.Session() as session:
                self.send(session, request)
        except Exception as exc:
            self.crashes.append(repr(exc))


class Chaos:
    """Every 2-3 s, kill -9 a random serving replica and start it again, provided another one serves (a replica
    takes several seconds to start on this machine: more often, none would serve)."""

    def __init__(self, harness: Replicas, rng: random.Random) -> None:
        self.harness, self.rng = harness, rng
        self.kills: list[int] = []
        self.crashes: list[str] = []
        self.stop = threading.Event()

    def loop(self) -> None:
        try:
            while not self.stop.wait(self.rng.uniform(*KILL_EVERY)):
                serving = [r.index for r in self.harness.replicas if self.harness.ready(r.index)]
                if len(serving) < 2:
                    continue
                victim = self.rng.choice(serving)
                self.harness.kill(victim)
                self.kills.append(victim)
                self.harness.launch(victim)
        except Exception as exc:
            self.crashes.append(repr(exc))


def wait_until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.25)
    return True


def vault_objects(openbao: EmbeddedOpenBao, services: set[str]) -> set[tuple[str, str]]:
    """What OpenBao holds for `services`: (kind, locator) as the action's changes name them."""
    client = hvac.Client(url=openbao.addr, token=openbao.token)
    found: set[tuple[str, str]] = set()
    for env in ENVIRONMENTS:
        try:
            paths = client.secrets.kv.v2.list_secrets(f"{env}/{SYSTEM}", mount_point="secret")["data"]["keys"]
        except hvac.exceptions.InvalidPath:
            paths = []
        found |= {("vault.secret-path", f"secret/{env}/{SYSTEM}/{p}") for p in paths if p in services}
    for name in client.sys.list_policies()["data"]["policies"]:
        parts = name.split(".")  # goldenpath.<env>.<system>.<service>.<audience>
        if len(parts) == 5 and parts[0] == "goldenpath" and parts[2] == SYSTEM and parts[3] in services:
            found.add(("vault.policy", name))
    roles = client.auth.kubernetes.list_roles(mount_point="kubernetes")["keys"]
    found |= {("vault.kubernetes-role", f"auth/kubernetes/role/{r}") for r in roles
              if r.split(".")[-1] in services and r.split(".")[2:3] == [SYSTEM]}
    return found


def creations(services_: Services) -> dict[tuple[str, str], list[tuple[str, int | None]]]:
    """For each (kind, locator): the runs whose audit event says they created it (and the attempt that did, for
    a recovered intent)."""
    made: dict[tuple[str, str], list[tuple[str, int | None]]] = defaultdict(list)
    for event in services_.stores.audit.iterate():
        for change in event["changes"] or []:
            if change["outcome"] == "created":
                made[(change["kind"], change["locator"])].append(
                    (event["run_id"], (change.get("details") or {}).get("attempt")))
    return made


def test_replicas_killed_at_random_lose_no_run_and_create_each_object_once(
        harness: Replicas, openbao: EmbeddedOpenBao, record_property: Callable[[str, object], None]) -> None:
    started = time.monotonic() - harness.start_seconds
    # the first run enables the kubernetes auth mount, once: made before the chaos, so it is nobody's race
    warm_service = unique()
    warm = requests.post(f"{harness.replicas[0].url}/api/v1/actions/{VAULT_ACTION}/runs",
                         json={"input": vault(service=warm_service)},
                         headers={"Authorization": f"Bearer {harness.token}"}, timeout=60)
    assert warm.status_code == 201, warm.text
    clients, chaos = unleash(harness)
    chaos_done = time.monotonic()
    services_ = build_services(load_settings(str(harness.config)))
    runs = services_.stores.runs
    settled = wait_until(lambda: not runs.list(status="running", limit=500),
                         SETTLE_SECONDS + harness.lease_seconds + harness.takeover_interval_seconds)
    every_run = runs.list(limit=100_000)
    numbers = {**measured(clients, chaos, every_run), "start_s": round(harness.start_seconds, 1),
               "settle_s": round(time.monotonic() - chaos_done, 1)}
    problems = [f"a client crashed: {c}" for c in [*clients.crashes, *chaos.crashes]]
    if not settled:  # (a) every run finished: none left running
        stuck = [(r["id"], r["actionId"], r["attempt"]) for r in runs.list(status="running", limit=500)]
        problems.append(f"runs still running {SETTLE_SECONDS} s after the kills stopped: {stuck}")
    problems += answers(clients.requests)  # (b)
    vault_services = {r.service for r in clients.requests if r.action == VAULT_ACTION and r.kind != "dry-run"}
    problems += created_once(services_, openbao, vault_services | {warm_service},
                             {r.service for r in clients.requests if r.kind == "dry-run"})  # (c)
    verification = verify(services_.stores.audit)  # (d) the audit chain is intact, in-process and by the CLI
    if not verification.ok:
        problems.append(f"audit chain broken: {verification.to_dict()}")
    cli = harness.cli("audit", "verify")
    if cli.returncode != 0 or "audit chain intact" not in cli.stdout:
        problems.append(f"goldenpath audit verify: {cli.returncode} {cli.stdout} {cli.stderr[-1000:]}")
    problems += one_run_per_key(clients.requests, every_run, services_)  # (e)
    numbers["total_s"] = round(time.monotonic() - started, 1)
    for name, value in numbers.items():
        record_property(name, value)
    print(f"chaos: {numbers}")
    assert not problems, f"{len(problems)} problems ({numbers}):\n" + "\n".join(problems[:40])
    assert chaos.kills and numbers["taken_over"], f"the chaos did not exercise take-over: {numbers}"


def unleash(harness: Replicas) -> tuple[Clients, Chaos]:
    """Clients and kills for CHAOS_SECONDS; then every replica serves again and every request has its answer."""
    rng = random.Random(SEED)
    clients, chaos = Clients(harness, [unique("shared")], rng), Chaos(harness, rng)
    threads = [threading.Thread(target=clients.loop, name=f"client-{n}") for n in range(CLIENTS)]
    threads.append(threading.Thread(target=clients.bursts, name="bursts"))
    chaos_thread = threading.Thread(target=chaos.loop, name="chaos")
    for thread in [*threads, chaos_thread]:
        thread.start()
    time.sleep(CHAOS_SECONDS)
    chaos.stop.set()
    clients.stop.set()
    chaos_thread.join()
    for replica in harness.replicas:  # every killed replica comes back; in-flight requests finish
        if not replica.alive:
            harness.launch(replica.index)
    for replica in harness.replicas:
        harness.wait_ready(replica.index, timeout=60)
    for thread in threads:
        thread.join(REQUEST_DEADLINE + HTTP_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a client is still sending"
    return clients, chaos


def measured(clients: Clients, chaos: Chaos, every_run: list[dict[str, Any]]) -> dict[str, Any]:
    attempts = [a for r in clients.requests for a in r.attempts]
    took = sorted(r.seconds for r in clients.requests if r.answered is not None)
    return {
        "seed": SEED, "requests": len(clients.requests), "http_requests": len(attempts),
        "by_kind": dict(Counter(r.kind for r in clients.requests)),
        "statuses": dict(Counter(str(a.status or a.error) for a in attempts)),
        "kills": len(chaos.kills), "kills_by_replica": dict(Counter(chaos.kills)),
        "runs": len(every_run), "runs_by_status": dict(Counter(r["status"] for r in every_run)),
        "failed_runs": dict(Counter((r["error"] or {}).get("detail", "")[:60] for r in every_run
                                    if r["status"] == "failed")),
        "taken_over": sum(r["attempt"] > 1 for r in every_run),
        "max_attempt": max((r["attempt"] for r in every_run), default=0),
        "request_p50_s": round(took[len(took) // 2], 2) if took else None,
        "request_p95_s": round(took[int(len(took) * 0.95)], 2) if took else None,
        "request_max_s": round(took[-1], 2) if took else None,
    }


def answers(requests_: list[Request]) -> list[str]:
    """(b) every valid request ended in a 2xx, with nothing but retryable problems on the way (no 5xx but 503)."""
    problems = []
    for request in requests_:
        if request.answered is None:
            last = request.attempts[-1] if request.attempts else None
            problems.append(f"request {request.number} ({request.kind}, key {request.key}) ended with "
                            f"{last and (last.status or last.error)}: {last and last.problem}")
        for attempt in request.attempts:
            if attempt.status is not None and attempt.status >= 500 and attempt.status != 503:
                problems.append(f"request {request.number} got {attempt.status} from replica {attempt.replica}: "
                                f"{attempt.problem}")
            elif attempt.status is not None and attempt.status >= 400 and not retryable(attempt):
                problems.append(f"request {request.number} got a non-retryable {attempt.status}: {attempt.problem}")
    return problems


def created_once(services_: Services, openbao: EmbeddedOpenBao, used: set[str], dry: set[str]) -> list[str]:
    """(c) each Vault object was created once (recovered intents count), and everything OpenBao holds for the
    services used has its `created` event; nothing exists for a service only dry-runs named."""
    made = creations(services_)
    problems = [f"{kind} {locator} was created {len(by)} times, by runs {by}"
                for (kind, locator), by in made.items() if kind.startswith("vault.") and len(by) != 1]
    in_openbao = vault_objects(openbao, used | dry)
    problems += [f"{kind} {locator} exists in OpenBao but no audit event says it was created"
                 for kind, locator in sorted(in_openbao - set(made))]
    problems += [f"{kind} {locator} exists though only dry-runs named its service"
                 for kind, locator in in_openbao if any(s in locator for s in dry - used)]
    return problems


def one_run_per_key(requests_: list[Request], every_run: list[dict[str, Any]], services_: Services) -> list[str]:
    """(e) a key answered one run id, however often it was retried, and that run succeeded and holds the key."""
    problems = []
    for request in requests_:
        ids = {a.run_id for a in request.attempts if a.status is not None and 200 <= a.status < 300}
        if request.key and len(ids) > 1:
            problems.append(f"key {request.key} answered runs {ids}")
        answered = request.answered
        if request.key and answered is not None and answered.run_id:
            record = services_.stores.runs.get(answered.run_id) or {}
            if record.get("status") != "succeeded" or record.get("idempotencyKey") != request.key:
                problems.append(f"key {request.key} answered run {answered.run_id}, which is {record.get('status')}")
    held = Counter((r["actionId"], r["idempotencyKey"]) for r in every_run if r["idempotencyKey"])
    return problems + [f"key {key} is held by {n} runs" for (_, key), n in held.items() if n > 1]


def tenant(namespace: str, environment: str = "dev") -> list[dict[str, Any]]:
    return render(TenantSpec(
        service="pay", system=SYSTEM, owner_ref="group:default/team-a", owner_group="team-a",
        environment=environment, cost_center="cc-1", namespace=namespace, service_account="pay",
        pod_security="restricted", quota={"pods": "20"}, default_request={"cpu": "100m"},
        default_limit={"cpu": "500m"}, auditors_group="auditors", provenance={}))


def converge(cluster: GitOpsCluster, manifests: list[dict[str, Any]]) -> TenantResult:
    return cluster.ensure_tenant(manifests, owner_ref="group:default/team-a", message="m", dry_run=False,
                                 on_change=lambda _: None)


def test_a_gitops_clone_left_locked_by_a_killed_replica_is_used_again(tmp_path: Path) -> None:
    """Found by the chaos test: a replica killed during a git command left index.lock in its working clone, and
    every namespace run on that replica answered 502 (not retryable) until someone removed it by hand."""
    cluster = GitOpsCluster("local", remote=str(tmp_path / "remote.git"), workdir=str(tmp_path / "work"))
    assert converge(cluster, tenant("pay-dev")).commit
    git_dir = tmp_path / "work" / ".git"
    for lock in ("index.lock", "HEAD.lock", "refs/heads/main.lock"):  # what `git` leaves when SIGKILLed
        (git_dir / lock).write_text("")
    assert converge(cluster, tenant("pay-prod", "prod")).commit


def test_a_clone_killed_half_way_leaves_no_broken_working_clone(tmp_path: Path) -> None:
    """Found by the chaos test: a replica killed during its first `git clone` left a working clone with the
    remote's URL but no fetch refspec, and every namespace run on it answered 502 (`origin/main`: unknown
    revision) for good. Now the clone is made aside and renamed into place: a replica killed (SIGKILL) before the
    rename leaves only the staging folder, and the restarted replica clones again."""
    remote, workdir = tmp_path / "remote.git", tmp_path / "work"
    assert converge(GitOpsCluster("local", remote=str(remote), workdir=str(tmp_path / "other")),
                    tenant("pay-dev")).commit  # the remote has a branch
    child = subprocess.run([sys.executable, "-c", (
        "from backend.providers.gitops import GitOpsCluster\n"
        f"GitOpsCluster('local', remote={str(remote)!r}, workdir={str(workdir)!r})._sync()\n")],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "GOLDENPATH_CRASHPOINTS": "gitops.before-clone-rename"})
    assert child.returncode == -9, child.stderr[-1000:]
    assert not workdir.exists() and (tmp_path / "work.cloning" / ".git").exists()
    restarted = GitOpsCluster("local", remote=str(remote), workdir=str(workdir))  # the replica, started again
    assert converge(restarted, tenant("pay-prod", "prod")).commit


def test_a_retry_waiting_on_a_run_that_fails_gets_a_truthful_answer(postgres: PostgresServer,
                                                                    make_settings: SettingsFactory) -> None:
    """Found while reading the take-over path the chaos test drives: a retry that carries the key of a run still
    in progress waits for it; when that run then failed (here: busy, the service held elsewhere, which is
    retryable), the retry answered 500 `action-failed`, not retryable, though the failed run had released its key.
    It now runs under the key itself, as a retry arriving a moment later would."""
    url = postgres.create_database()
    try:
        services_ = build_services(make_settings(url, runs={"lock_timeout_seconds": 1.5, "lease_seconds": 2}),
                                   registry=registry(), upgrade_schema=True)
        data = vault()
        request = RunRequest(action_id=VAULT_ACTION, input=data, requester=ALICE, idempotency_key="waits")
        first: list[BaseException] = []

        def run_first() -> None:
            try:
                services_.runner.run(request)
            except BaseException as exc:  # asserted on below
                first.append(exc)

        with Locks(services_.database.engine).hold(f"service:{data['service']}", timeout=5):
            thread = threading.Thread(target=run_first)
            thread.start()
            time.sleep(0.5)  # the first is waiting for the service: the retry finds it running, and waits
            with pytest.raises(GoldenPathError) as retried:
                services_.runner.run(request)
            thread.join()
        assert isinstance(first[0], BusyError)
        assert retried.value.retryable and retried.value.status in {409, 503}, retried.value.to_problem()
        done = services_.runner.run(request)  # the service is free: the key runs, once
        assert done["status"] == "succeeded" and done["idempotencyKey"] == "waits"
    finally:
        postgres.drop_database(url)
