"""Verify a service: is each thing Golden Path made for it still what it made?

Replays, as a dry-run, the run that made each of the service's resources (its sealed input is the desired state)
and answers, per resource, `conformant`, `drifted` (which object and field would change), `missing`, `foreign`
(someone else holds it now) or `unknown` (it could not be read: never treated as drift). Reads only, so it also
runs in Backstage dry-runs and as an MCP tool. The result is stored: the catalog shows it on the entity page, and
each newly found drift is an audit event. Members of the service's owner group (and admins) may verify it.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from backend.plugin_api import (
    Action,
    ActionContext,
    ActionInput,
    Example,
    NotAllowedError,
    NotFoundError,
    UpstreamUnavailable,
    dns_label,
)

STATUSES = ["conformant", "drifted", "missing", "foreign", "unknown"]


class VerifyInput(ActionInput):
    service = fields.String(required=True, validate=dns_label, metadata={
        "title": "Service", "description": "The service to verify, as registered (a DNS label)."})


class Difference(Schema):
    field = fields.String(required=True, metadata={"description": "metadata.labels.goldenpath.dev/cost-center, "
                                                   "spec, rules, token_policies, protection..."})
    expected = fields.Raw(required=True, allow_none=True, metadata={"description": "What Golden Path made."})
    actual = fields.Raw(required=True, allow_none=True, metadata={"description": "What is there now (null: "
                                                                 "absent)."})


Finding = Schema.from_dict({  # a dict, because one of its keys is `fields`
    "kind": fields.String(required=True, metadata={"description": "The object: kubernetes.NetworkPolicy, "
                                                   "vault.policy, repository.protection..."}),
    "locator": fields.String(required=True),
    "status": fields.String(required=True, validate=validate.OneOf(["drifted", "missing"])),
    "wouldBe": fields.String(required=True, metadata={"description": "What repairing it would do: created or "
                                                      "updated."}),
    "fields": fields.List(fields.String(), metadata={"description": "The fields that differ."}),
    "differences": fields.List(fields.Nested(Difference), metadata={
        "description": "Each differing field with the value Golden Path made and the value found."}),
}, name="Finding")


class DesiredBy(Schema):
    runId = fields.String(required=True)
    actionId = fields.String(required=True)


class ResourceConformance(Schema):
    kind = fields.String(required=True)
    locator = fields.String(required=True)
    environment = fields.String(required=True, allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    findings = fields.List(fields.Nested(Finding), required=True)
    desiredBy = fields.Nested(DesiredBy, required=True, metadata={
        "description": "The run whose input is this resource's desired state."})
    detail = fields.String(metadata={"description": "Why it is foreign or unknown."})


class VerifyOutput(Schema):
    service = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES), metadata={
        "description": "The worst of the resources' statuses."})
    checkedAt = fields.String(required=True)
    findings = fields.List(fields.Nested(Finding), required=True, metadata={
        "description": "Differences in what the service's resources share (a KV mount, an auth method)."})
    resources = fields.List(fields.Nested(ResourceConformance), required=True)


EXAMPLES = (Example("Verify a service", {"service": "payments-api"}),)


def run(ctx: ActionContext) -> dict[str, Any]:
    inventory, checker = ctx.providers.inventory, ctx.providers.conformance
    if inventory is None or checker is None:
        raise UpstreamUnavailable("no inventory is configured", provider="inventory")
    service = ctx.input["service"]
    owners = sorted({row["owner"] for row in inventory.list(service=service) if row.get("owner")})
    if not owners:
        raise NotFoundError(f"Golden Path made nothing for service {service}")
    if not all(ctx.requester.may_act_for(owner) for owner in owners):
        raise NotAllowedError(f"{ctx.requester.actor} is not a member of {owners[0]}, so may not verify "
                              f"{service} (not-a-member-of-owner)", rule="not-a-member-of-owner", field="service")
    report = checker.check(service, caller=ctx.requester.caller)
    ctx.log.info(f"{service}: {report['status']}")
    return report


ACTION = Action(
    id="goldenpath:platform:service:verify",
    title="Verify a golden-path service",
    description="Reads back everything Golden Path made for a service (repository, secrets paths, namespaces, "
    "catalog entry) and reports, per resource, whether it is conformant, drifted (naming the field), missing, "
    "held by someone else, or unknown. Reads only, so it also runs in Backstage dry-runs and for agents.",
    input_schema=VerifyInput,
    output_schema=VerifyOutput,
    run=run,
    examples=EXAMPLES,
    read_only=True,
)
