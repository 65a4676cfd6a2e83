"""Plan a golden-path service before anything is created: every problem at once, or what will be made.

Checks the whole request against the platform's rules from configuration (service naming and reserved names,
allowed environments and tiers, the cost-center format, repository visibility, names derived from the service)
and the availability of each resource: the repository, the secrets path and namespace per environment (and
cluster), and the catalog entry must be free or already Golden Path's for the same owner. Reads only, so it is
safe in Backstage dry-runs and any number of times. Needs read access to each backend.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from marshmallow import Schema, fields, validate

from backend.plugin_api import (
    SERVICE_KIND,
    Action,
    ActionContext,
    ConflictError,
    Example,
    FieldError,
    FreeText,
    PolicyViolation,
    ServiceInput,
    UpstreamUnavailable,
    claim_service,
    dns_label,
)


class PlanInput(ServiceInput):
    description = fields.String(required=True, validate=FreeText(min_length=1, max_length=350), metadata={
        "title": "Description", "description": "One line about the service."})
    tier = fields.String(load_default="small", validate=dns_label, metadata={
        "title": "Size tier", "description": "Quota and default limits from the platform's tiers."})
    visibility = fields.String(load_default="private", validate=validate.OneOf(["private", "internal", "public"]),
                               metadata={"title": "Repository visibility", "description": "private, internal, public."})


class PlannedResource(Schema):
    kind = fields.String(required=True, metadata={"description": "repository, vault.secrets-path, "
                                                  "kubernetes.namespace or catalog.component."})
    locator = fields.String(required=True, metadata={"description": "Where it lives (org/name, mount/path, ...)."})
    environment = fields.String(allow_none=True, required=True)
    status = fields.String(required=True, metadata={"description": "new: will be created; ours: exists, owned "
                                                    "by the same team, will be converged."})


class PlanOutput(Schema):
    entityRef = fields.String(required=True, metadata={"description": "The Component the catalog will show."})
    resources = fields.List(fields.Nested(PlannedResource), required=True)
    summary = fields.String(required=True, metadata={"description": "One line: what the template will do."})


EXAMPLES = (
    Example("Plan a service in dev and prod", {
        "service": "payments-api", "system": "payments", "owner": "group:default/team-payments",
        "costCenter": "cc-1234", "environments": ["dev", "prod"], "description": "Payments API",
        "tier": "small", "visibility": "private"}),
)


def run(ctx: ActionContext) -> dict[str, Any]:
    data, policy = ctx.input, ctx.policy
    problems: list[FieldError] = [*policy.request_problems(data), *policy.tier_problems(data["tier"]),
                                  *policy.visibility_problems(data["visibility"])]
    if not ctx.requester.may_act_for(data["owner"]):
        who = ctx.requester.user or f"the credential {ctx.requester.caller}"
        problems.append(FieldError("owner", f"{who} is not a member of {data['owner']}, so may not act for it "
                                   "(not-a-member-of-owner)", "not-a-member-of-owner"))
    refused = {problem.field for problem in problems}
    resources: list[dict[str, Any]] = []
    # a name or an owner the rules refuse is not worth looking up (and a non-member learns nothing of the owner's
    # resources), nor is a refused environment
    if not refused & {"service", "owner"}:
        environments = [env for index, env in enumerate(data["environments"])
                        if f"environments.{index}" not in refused]
        # a service name another team holds says it all; otherwise each derived name another service holds
        taken = ctx.claim_problems([ctx.claim_for(SERVICE_KIND, data["service"], subject=data["service"])],
                                   field="service")
        problems.extend(taken or ctx.claim_problems(
            [c for env in environments for c in ctx.environment_claims(env)], field="service"))
        resources = _availability(ctx, environments, problems)
    policy.enforce(problems)
    created = [r for r in resources if r["status"] == "new"]
    return {"entityRef": f"component:default/{data['service']}", "resources": resources,
            "summary": f"{len(created)} of {len(resources)} resources to create, "
                       f"{len(resources) - len(created)} already in place"}


def _availability(
    ctx: ActionContext, environments: list[str], problems: list[FieldError],
) -> list[dict[str, Any]]:
    """Each resource the template will converge, free or ours; a conflict becomes a problem on `service`."""
    data, providers = ctx.input, ctx.providers
    service, system, owner = data["service"], data["system"], data["owner"]
    resources: list[dict[str, Any]] = []

    def probe(kind: str, locator: str, environment: str | None, check: Callable[[], bool]) -> None:
        try:
            ours = check()
        except ConflictError as conflict:
            problems.append(FieldError("service", conflict.detail, f"{kind.rsplit('.', 1)[-1]}-available"))
            return
        except PolicyViolation as violation:
            problems.extend(violation.errors or [FieldError("service", violation.detail, violation.rule)])
            return
        resources.append({"kind": kind, "locator": locator, "environment": environment,
                          "status": "ours" if ours else "new"})

    if providers.repositories is None:
        raise UpstreamUnavailable("no repository provider is configured", provider="repositories")
    host, org = providers.repositories, providers.repository_org
    fresh = not ctx.held_before("repository", f"{org}/{service}", subject=service)
    probe("repository", f"{org}/{service}", None,
          partial(host.check_repository, org, service, owner_ref=owner, fresh_name=fresh))
    store, vault = providers.require_secrets()  # what the secrets step needs from Vault, read only
    store.ensure_kv_mount(vault.kv_mount, create=vault.create_kv_mount, dry_run=True)
    if vault.kubernetes_auth_mount:
        store.ensure_auth_method(vault.kubernetes_auth_mount, "kubernetes", create=vault.enable_kubernetes_auth,
                                 dry_run=True)
    for env in environments:
        path = ctx.naming.secrets_path(service=service, system=system, environment=env)
        probe("vault.secrets-path", f"{vault.kv_mount}/{path}", env,
              partial(store.check_secret_path, vault.kv_mount, path, owner=owner))
        namespace = ctx.naming.namespace(service=service, system=system, environment=env)
        for name in providers.kubernetes.environments.get(env, ()):
            probe("kubernetes.namespace", f"{name}/{namespace}", env,
                  partial(providers.clusters[name].check_namespace, namespace, owner_ref=owner))
    if providers.inventory is not None:
        inventory = providers.inventory
        probe("catalog.component", f"component:default/{service}", None,
              lambda: claim_service(inventory, service, owner)[0] is not None)
    return resources


ACTION = Action(
    id="goldenpath:platform:service:plan",
    title="Plan a golden-path service",
    description="Checks a golden-path request against the platform's rules and the availability of its "
    "repository, secrets paths, namespaces and catalog entry; answers with every problem at once, or with "
    "what the template will create. Reads only, so it also runs in Backstage dry-runs.",
    input_schema=PlanInput,
    output_schema=PlanOutput,
    run=run,
    examples=EXAMPLES,
    read_only=True,
)
