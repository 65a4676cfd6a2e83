"""Handlers: a service's conformance report."""

from typing import Any

from backend.api.context import json_response, requester, services
from backend.errors import NotAllowedError, NotFoundError


def get_report(name: str, check: bool = False) -> tuple[dict[str, Any], int, dict[str, str]]:
    found = services()
    who = requester()
    owners = sorted({row["owner"] for row in found.stores.inventory.list(service=name) if row.get("owner")})
    if not owners:
        raise NotFoundError(f"Golden Path made nothing for service {name}")
    if not all(who.may_act_for(owner) for owner in owners):
        raise NotAllowedError(f"{who.actor} is not a member of {owners[0]}, so may not read the conformance of "
                              f"{name} (not-a-member-of-owner)", rule="not-a-member-of-owner", field="name")
    report = found.conformance.check(name, caller=who.caller) if check else found.conformance.stored(name)
    if report is None:
        raise NotFoundError(f"service {name} was not checked yet: run `goldenpath reconcile` or add check=true")
    return json_response(report, 200)
