"""Kubernetes tenant namespaces with guardrails, one per environment and cluster.

Each namespace gets ownership and cost-center labels, Pod Security Admission labels, a ResourceQuota and
LimitRange from the size tier, default-deny NetworkPolicies (plus same-namespace and DNS), the workload
ServiceAccount and RoleBindings for the owners and auditors. Every manifest of every cluster is validated
against the Kubernetes schema before anything is written. Idempotent: a re-run writes nothing (no API
write, no GitOps commit); a namespace another team or tool holds on any cluster is a conflict before anything
is written. Direct mode needs create/get/patch on those kinds; GitOps mode needs push access to the repository.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields

from backend.plugin_api import (
    Action,
    ActionContext,
    Change,
    Example,
    Outcome,
    PolicyViolation,
    ResourceRecord,
    ServiceInput,
    TenantSpec,
    dns_label,
    entity_name,
    render,
    validate_manifests,
    yaml_documents,
)


class NamespaceInput(ServiceInput):
    tier = fields.String(load_default="small", validate=dns_label, metadata={
        "title": "Size tier", "description": "Quota and default limits from the platform's tiers (small, ...)."})


class ObjectOutput(Schema):
    kind = fields.String(required=True)
    name = fields.String(required=True)
    outcome = fields.String(required=True)


class NamespaceOutput(Schema):
    environment = fields.String(required=True)
    cluster = fields.String(required=True)
    mode = fields.String(required=True)
    namespace = fields.String(required=True)
    serviceAccount = fields.String(required=True)
    changed = fields.Boolean(required=True)
    commit = fields.String(allow_none=True, required=True)
    objects = fields.List(fields.Nested(ObjectOutput), required=True)
    diff = fields.String(metadata={"description": "Dry-run only: unified diff against the current state."})
    manifests = fields.String(metadata={"description": "Dry-run only: the manifests, as multi-document YAML."})


class NamespaceCreateOutput(Schema):
    namespaces = fields.List(fields.Nested(NamespaceOutput), required=True, metadata={
        "description": "One per environment and cluster."})
    changed = fields.Boolean(required=True)


EXAMPLES = (
    Example("Namespaces in dev and prod", {
        "service": "payments-api", "system": "payments", "owner": "group:default/team-payments",
        "costCenter": "cc-1234", "environments": ["dev", "prod"], "tier": "small"}),
)


def run(ctx: ActionContext) -> dict[str, Any]:
    data = ctx.input
    namespaces = sorted({ctx.naming.namespace(service=data["service"], system=data["system"], environment=env)
                         for env in data["environments"]})
    ctx.check_service_policy(ctx.policy.tier_problems(data["tier"]), claims=[
        ctx.claim_for("kubernetes.namespace", name, subject=data["service"]) for name in namespaces])
    plans = [plan for index, env in enumerate(ctx.input["environments"]) for plan in _plans(ctx, env, index)]
    for _, _, manifests in plans:  # fail closed: everything validates before anything is written
        validate_manifests(manifests, ctx.providers.kubernetes.version)
    for _, cluster, manifests in plans:  # a namespace another team or tool holds on any cluster: before any write
        ctx.providers.clusters[cluster].check_namespace(manifests[0]["metadata"]["name"], owner_ref=data["owner"])
    outputs = [_apply(ctx, env, cluster, manifests) for env, cluster, manifests in plans]
    return {"namespaces": outputs, "changed": any(o["changed"] for o in outputs)}


def _plans(ctx: ActionContext, env: str, index: int) -> list[tuple[str, str, list[dict[str, Any]]]]:
    k8s, data = ctx.providers.kubernetes, ctx.input
    clusters = k8s.environments.get(env, ())
    if not clusters:  # the policy reports this already, unless no environment is mapped to any cluster at all
        raise PolicyViolation(f"no cluster serves environment {env!r}", rule="environment-clusters",
                              field=f"environments.{index}")
    tier = k8s.tiers[data["tier"]]
    namespace = ctx.naming.namespace(service=data["service"], system=data["system"], environment=env)
    spec = TenantSpec(
        service=data["service"], system=data["system"], owner_ref=data["owner"],
        owner_group=entity_name(data["owner"]), environment=env, cost_center=data["costCenter"],
        namespace=namespace, service_account=ctx.naming.service_account(service=data["service"],
                                                                        system=data["system"]),
        pod_security=k8s.pod_security_for(env), quota=tier.quota, default_request=tier.default_request,
        default_limit=tier.default_limit, owner_cluster_role=k8s.owner_cluster_role,
        auditors_group=k8s.auditors_group, auditors_cluster_role=k8s.auditors_cluster_role,
        dns_namespace=k8s.dns_namespace, dns_pod_labels=k8s.dns_pod_labels, ingress_namespaces=k8s.ingress_namespaces,
        provenance={"goldenpath.dev/source-template": ctx.template_ref or "none",
                    "goldenpath.dev/requested-by": ctx.requester.actor},
    )
    return [(env, cluster, render(spec)) for cluster in clusters]


def _apply(ctx: ActionContext, env: str, cluster_name: str, manifests: list[dict[str, Any]]) -> dict[str, Any]:
    cluster = ctx.providers.clusters[cluster_name]
    data, namespace = ctx.input, manifests[0]["metadata"]["name"]
    message = (f"goldenpath: namespace {namespace} for {data['system']}/{data['service']} ({env})\n\n"
               f"Requested by {ctx.requester.actor} in run {ctx.run_id}.")
    resource = ResourceRecord(
        kind="kubernetes.namespace", locator=f"{cluster_name}/{namespace}", service=data["service"],
        system=data["system"], owner=data["owner"], environment=env,
        attributes={"cluster": cluster_name, "mode": cluster.mode, "namespace": namespace},
    )

    def record(change: Change) -> None:
        ctx.record(change, resource if change.kind == "kubernetes.Namespace" else None)

    result = cluster.ensure_tenant(manifests, owner_ref=data["owner"], message=message, dry_run=ctx.dry_run,
                                   on_change=record)
    output = {
        "environment": env, "cluster": cluster_name, "mode": cluster.mode, "namespace": namespace,
        "serviceAccount": next(m for m in manifests if m["kind"] == "ServiceAccount")["metadata"]["name"],
        "changed": any(c.outcome is not Outcome.UNCHANGED for c in result.changes),
        "commit": result.commit,
        "objects": [{"kind": m["kind"], "name": m["metadata"]["name"], "outcome": c.outcome.value}
                    for m, c in zip(manifests, result.changes, strict=True)],
    }
    if ctx.dry_run:
        output["diff"] = result.diff
        output["manifests"] = yaml_documents(manifests)
    return output


ACTION = Action(
    id="goldenpath:kubernetes:namespace:create",
    title="Create Kubernetes namespaces with guardrails",
    description="Creates a namespace per environment and cluster with owner and cost-center labels, Pod Security "
    "labels, ResourceQuota, LimitRange, default-deny NetworkPolicies, a ServiceAccount and RoleBindings, "
    "through the Kubernetes API or as a GitOps commit.",
    input_schema=NamespaceInput,
    output_schema=NamespaceCreateOutput,
    run=run,
    examples=EXAMPLES,
)
