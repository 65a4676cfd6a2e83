"""Vault (or OpenBao) secrets path for a service, per environment.

Creates, per environment: the KV v2 path `<mount>/<env>/<system>/<service>` with owner metadata,
a workload policy that can only read it, an owners policy that can manage it, and a Kubernetes
auth role binding the service's ServiceAccount in its namespace to the workload policy.
Idempotent: every object is converged; a second run writes nothing. A path owned by another
team, or made outside Golden Path, in any environment is a conflict before anything is written.
Needs a Vault token that may manage those policies, paths and roles.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from backend.plugin_api import (
    Action,
    ActionContext,
    Example,
    InitialValues,
    KubernetesRoleSpec,
    Outcome,
    ResourceRecord,
    SecretPathSpec,
    ServiceInput,
    dns_label,
    entity_name,
    secret_key_name,
)


class VaultSecretsPathInput(ServiceInput):
    namespace = fields.String(validate=dns_label, metadata={
        "title": "Kubernetes namespace",
        "description": "Namespace of the workload; defaults to the platform pattern per environment."})
    serviceAccount = fields.String(validate=dns_label, metadata={
        "title": "Service account", "description": "Workload ServiceAccount; defaults to the platform pattern."})
    secretKeys = fields.List(
        fields.String(validate=secret_key_name), load_default=list,
        validate=validate.Length(max=50), metadata={
            "title": "Secret keys",
            "description": "Names of the first keys (never values); missing keys get generated values."})
    initialValues = fields.String(load_default="random", validate=validate.OneOf(["random", "empty"]), metadata={
        "title": "Initial values", "description": "random: generated values; empty: owners fill them in."})


class PathOutput(Schema):
    environment = fields.String(required=True)
    mount = fields.String(required=True)
    path = fields.String(required=True)
    uiUrl = fields.String(required=True)
    workloadPolicy = fields.String(required=True)
    ownersPolicy = fields.String(required=True)
    kubernetesRole = fields.String(allow_none=True, required=True)
    namespace = fields.String(required=True)
    serviceAccount = fields.String(required=True)


class VaultSecretsPathOutput(Schema):
    secretsPath = fields.String(required=True, metadata={
        "description": "Path of the first environment, relative to the mount (vault.io/secrets-path)."})
    paths = fields.List(fields.Nested(PathOutput), required=True, metadata={"description": "One per environment."})
    changed = fields.Boolean(required=True, metadata={"description": "Whether this run wrote anything."})


EXAMPLES = (
    Example("Secrets for a service in dev and prod", {
        "service": "payments-api", "system": "payments", "owner": "group:default/team-payments",
        "environments": ["dev", "prod"], "costCenter": "cc-1234", "secretKeys": ["DATABASE_PASSWORD"]}),
    Example("One environment, explicit workload identity, owners fill in the values", {
        "service": "ledger", "system": "payments", "owner": "team-payments", "environments": ["dev"],
        "costCenter": "cc-1234", "namespace": "ledger-dev", "serviceAccount": "ledger",
        "secretKeys": ["API_KEY"], "initialValues": "empty"}),
)


def workload_policy(mount: str, path: str) -> str:
    return (f'# Managed by Golden Path: the workload may only read its own secrets.\n'
            f'path "{mount}/data/{path}" {{\n  capabilities = ["read"]\n}}\n')


def owners_policy(mount: str, path: str) -> str:
    return "\n".join([
        "# Managed by Golden Path: the owning team manages the values, not the ownership metadata.",
        f'path "{mount}/data/{path}" {{\n  capabilities = ["create", "read", "update", "patch", "delete"]\n}}',
        f'path "{mount}/metadata/{path}" {{\n  capabilities = ["read"]\n}}',
        f'path "{mount}/delete/{path}" {{\n  capabilities = ["update"]\n}}',
        f'path "{mount}/undelete/{path}" {{\n  capabilities = ["update"]\n}}',
    ]) + "\n"


def run(ctx: ActionContext) -> dict[str, Any]:
    store, vault = ctx.providers.require_secrets()
    data = ctx.input
    service, system, owner = data["service"], data["system"], data["owner"]
    ctx.check_service_policy(ctx.policy.workload_problems(
        data, derived_account=ctx.naming.service_account(service=service, system=system),
        derived_namespaces={env: ctx.naming.namespace(service=service, system=system, environment=env)
                            for env in data["environments"]}),
        claims=[claim for env in data["environments"]
                for claim in ctx.environment_claims(env, namespace=data.get("namespace"))])
    for env in data["environments"]:  # a path not ours in any environment is refused before anything is written
        store.check_secret_path(vault.kv_mount, ctx.naming.secrets_path(service=service, system=system,
                                                                         environment=env), owner=owner)
    ctx.record(store.ensure_kv_mount(vault.kv_mount, create=vault.create_kv_mount, dry_run=ctx.dry_run))
    if vault.kubernetes_auth_mount:
        ctx.record(store.ensure_auth_method(
            vault.kubernetes_auth_mount, "kubernetes", create=vault.enable_kubernetes_auth, dry_run=ctx.dry_run))
    outputs = [_converge_environment(ctx, env, service=service, system=system, owner=owner)
               for env in data["environments"]]
    return {
        "secretsPath": outputs[0]["path"],
        "paths": outputs,
        "changed": any(change.outcome is not Outcome.UNCHANGED for change in ctx.changes),
    }


def _namespace(ctx: ActionContext, env: str) -> str:
    data = ctx.input
    return str(data.get("namespace") or ctx.naming.namespace(service=data["service"], system=data["system"],
                                                              environment=env))


def _converge_environment(ctx: ActionContext, env: str, *, service: str, system: str, owner: str) -> dict[str, Any]:
    store, vault = ctx.providers.require_secrets()
    data, mount = ctx.input, vault.kv_mount
    path = ctx.naming.secrets_path(service=service, system=system, environment=env)
    namespace = _namespace(ctx, env)
    account = data.get("serviceAccount") or ctx.naming.service_account(service=service, system=system)
    workload = ctx.naming.vault_policy(service=service, system=system, environment=env, audience="workload")
    owners = ctx.naming.vault_policy(service=service, system=system, environment=env, audience="owners")
    inventory = {"service": service, "system": system, "owner": owner, "environment": env}
    metadata = {
        "owner": owner, "owner-team": entity_name(owner), "system": system, "service": service,
        "environment": env, "cost-center": data["costCenter"],
    }
    provenance = {"source-template": ctx.template_ref or "none", "created-by": ctx.requester.actor}
    ctx.record(store.ensure_secret_path(SecretPathSpec(
        mount=mount, path=path, custom_metadata=metadata, provenance=provenance, max_versions=vault.max_versions,
        keys=tuple(data["secretKeys"]), initial_values=InitialValues(data["initialValues"]),
    ), dry_run=ctx.dry_run), ResourceRecord(kind="vault.secrets-path", locator=f"{mount}/{path}", **inventory,
                                            attributes={"mount": mount, "path": path,
                                                        "uiUrl": store.ui_url(mount, path)}))
    ctx.record(store.ensure_policy(workload, workload_policy(mount, path), dry_run=ctx.dry_run))
    ctx.record(store.ensure_policy(owners, owners_policy(mount, path), dry_run=ctx.dry_run))
    role = None
    if vault.kubernetes_auth_mount:
        role = ctx.naming.vault_role(service=service, system=system, environment=env)
        ctx.record(store.ensure_kubernetes_role(KubernetesRoleSpec(
            mount=vault.kubernetes_auth_mount, name=role, service_account_names=(account,),
            namespaces=(namespace,), policies=(workload,), token_ttl=vault.role_token_ttl,
        ), dry_run=ctx.dry_run))
    return {
        "environment": env, "mount": mount, "path": path, "uiUrl": store.ui_url(mount, path),
        "workloadPolicy": workload, "ownersPolicy": owners,
        "kubernetesRole": role, "namespace": namespace, "serviceAccount": account,
    }


ACTION = Action(
    id="goldenpath:vault:secrets-path:create",
    title="Create a Vault secrets path",
    description="Creates a KV v2 secrets path per environment with owner metadata, a read-only workload "
    "policy, an owners policy and a Kubernetes auth role for the service's workload identity.",
    input_schema=VaultSecretsPathInput,
    output_schema=VaultSecretsPathOutput,
    run=run,
    examples=EXAMPLES,
    idempotent=True,
)
