"""Repair by policy: a pass puts back the drifted or missing resources `reconcile.repair` lists, by running again,
for real, the run whose input is their desired state. A repair is a normal run (Runner.run): audited, in the runs
list, convergent, writing only the fields Golden Path owns. Everything else is reported only.

A run is not run again when its desired state also reaches a resource a later run holds (running it would undo
that run's work), nor for a resource another owner holds now (`foreign`), nor one that could not be read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from backend.errors import GoldenPathError
from backend.plugin_api import Requester
from backend.services.conformance import RECONCILER, ConformanceChecker, Inspection
from backend.services.runner import Runner, RunRequest
from backend.settings import RepairRule

_log = logging.getLogger("goldenpath.repair")
REPAIRABLE = frozenset({"drifted", "missing"})
# the reconciler acts for every owner, but only ever runs again an input Golden Path accepted and sealed
REPAIRER = Requester(user=None, caller=RECONCILER, admin=True)


@dataclass(frozen=True)
class Repair:
    service: str
    desired_by: str  # the run whose input was run again
    run_id: str | None  # the repair's own run (None: not run)
    outcome: str  # repaired | failed | skipped
    detail: str = ""


class Repairer:
    def __init__(self, checker: ConformanceChecker, runner: Runner, rules: tuple[RepairRule, ...]) -> None:
        self._checker, self._runner, self._rules = checker, runner, rules

    def wanted(self, resource: dict[str, Any]) -> bool:
        """A drifted or missing resource that a rule lists."""
        return resource["status"] in REPAIRABLE and any(
            rule.kind in ("*", resource["kind"]) and rule.environment in ("*", resource.get("environment"))
            for rule in self._rules)

    def repair(self, service: str, inspection: Inspection) -> list[Repair]:
        wanted: dict[str, set[str | None]] = {}
        held: dict[str, set[tuple[str, str]]] = {}
        now = self._checker.desired_by(service)  # a run since the check may have made them anew: not undone
        for resource in inspection.report["resources"]:
            run_id, key = resource["desiredBy"]["runId"], (resource["kind"], resource["locator"])
            if self.wanted(resource) and now.get(key) == run_id:
                wanted.setdefault(run_id, set()).add(resource.get("environment"))
                held.setdefault(run_id, set()).add(key)
        return [self._run_again(service, run_id, environments, inspection, held[run_id])
                for run_id, environments in sorted(wanted.items())]

    def _still_held(self, service: str, run_id: str, keys: set[tuple[str, str]]) -> str | None:
        """Asked again under the service's lock (a run may have finished since): None while `run_id` is still the
        desired state of every resource to repair."""
        now = self._checker.desired_by(service)
        if all(now.get(key) == run_id for key in keys):
            return None
        return "a run since the check made its resources anew: running the older one again would undo that run"

    def _run_again(self, service: str, run_id: str, environments: set[str | None], inspection: Inspection,
                   keys: set[tuple[str, str]]) -> Repair:
        desired = self._checker.desired_request(run_id, service)
        if isinstance(desired, str):
            return Repair(service, run_id, None, "skipped", desired)
        action, data, context = desired
        # only the environments to repair: one the rules do not list (prod, say) is reported only, even when the
        # same run made it
        per_environment = None not in environments and isinstance(data.get("environments"), list)
        if per_environment:
            data = {**data, "environments": [e for e in data["environments"] if e in environments]}
        reached = inspection.overlapping.get(run_id, frozenset())
        if reached and (not per_environment or reached & environments):
            return Repair(service, run_id, None, "skipped", "its desired state also reaches resources a later run "
                                                            "made: running it again would undo that run's work")
        request_context = {"repairOf": run_id, **({"templateRef": context["templateRef"]}
                                                  if context.get("templateRef") else {})}
        try:
            record = self._runner.run(RunRequest(action_id=action.id, input=data, requester=REPAIRER,
                                                 context=request_context,
                                                 precondition=lambda: self._still_held(service, run_id, keys)))
        except GoldenPathError as exc:
            _log.warning("repair of %s (run %s again) failed: %s", service, run_id, exc.detail)
            return Repair(service, run_id, exc.run_id, "failed", exc.detail)
        _log.info("repaired %s: run %s again as run %s", service, run_id, record["id"])
        return Repair(service, run_id, str(record["id"]), "repaired")
