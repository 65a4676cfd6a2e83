"""Register a service in Golden Path's catalog feed: its Component, which dependsOn the Resources made for it.

Records the service (description, type, lifecycle, cost center, tags, links) in the inventory; the feed at
/api/v1/catalog/entities.yaml then serves a Component for it and a Resource for each repository, secrets
path and namespace the other actions made for it. A service registered to another owner, or resources of
it that another owner made, are a conflict. A second run with the same input changes nothing.
"""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, validate

from backend.plugin_api import (
    SERVICE_KIND,
    Action,
    ActionContext,
    Change,
    Example,
    FreeText,
    FullMatch,
    Outcome,
    ResourceRecord,
    ServiceInput,
    UpstreamUnavailable,
    catalog_entities,
    claim_service,
    dns_label,
)

TAG = r"^[a-z0-9:+#]+(-[a-z0-9:+#]+)*$"


class LinkInput(Schema):
    url = fields.Url(required=True, schemes={"http", "https"}, validate=FreeText(max_length=2000), metadata={
        "title": "URL", "description": "Where the link points (http or https)."})
    title = fields.String(required=True, validate=FreeText(min_length=1, max_length=100), metadata={
        "title": "Title", "description": "The link's text on the entity page."})


class RegisterInput(ServiceInput):
    environments = fields.List(fields.String(validate=dns_label), load_default=list,
                               validate=validate.Length(max=10), metadata={
        "title": "Environments", "description": "The environments provisioned (shown on the entity page)."})
    description = fields.String(required=True, validate=FreeText(min_length=1, max_length=500), metadata={
        "title": "Description", "description": "One line about the service."})
    title = fields.String(validate=FreeText(min_length=1, max_length=100), metadata={
        "title": "Title", "description": "Display name in the catalog."})
    type = fields.String(load_default="service", validate=validate.OneOf(["service", "website", "library"]),
                         metadata={"title": "Type", "description": "Component type."})
    lifecycle = fields.String(load_default="experimental",
                              validate=validate.OneOf(["experimental", "production", "deprecated"]),
                              metadata={"title": "Lifecycle", "description": "Component lifecycle."})
    tags = fields.List(fields.String(validate=FullMatch(TAG, max_length=63, error="must be a catalog tag: "
                                                        "lowercase letters, digits, ':+#' and single '-'")),
                       load_default=list, validate=validate.Length(max=20), metadata={
        "title": "Tags", "description": "Catalog tags."})
    links = fields.List(fields.Nested(LinkInput), load_default=list, validate=validate.Length(max=20), metadata={
        "title": "Links", "description": "Extra links for the entity page."})


class RegisterOutput(Schema):
    entityRef = fields.String(required=True, metadata={"description": "The Component's entity ref."})
    catalogInfoUrl = fields.String(required=True, metadata={
        "description": "The feed Backstage reads (a url location)."})
    resources = fields.List(fields.String(), required=True, metadata={
        "description": "Entity refs of the Resources the Component depends on."})
    changed = fields.Boolean(required=True, metadata={"description": "Whether the registration changed."})


EXAMPLES = (
    Example("Register a service with its cost center", {
        "service": "payments-api", "system": "payments", "owner": "group:default/team-payments",
        "costCenter": "cc-1234", "environments": ["dev", "prod"], "description": "Payments API",
        "lifecycle": "production", "tags": ["python"]}),
)


def run(ctx: ActionContext) -> dict[str, Any]:
    inventory = ctx.providers.inventory
    if inventory is None:
        raise UpstreamUnavailable("no inventory is configured", provider="inventory")
    data = ctx.input
    ctx.check_service_policy()
    name, owner = data["service"], data["owner"]
    existing, made = claim_service(inventory, name, owner)
    attributes = {key: data[key] for key in ("description", "type", "lifecycle", "tags", "links", "environments")}
    attributes["costCenter"] = data["costCenter"]
    if data.get("title"):
        attributes["title"] = data["title"]
    record = ResourceRecord(kind=SERVICE_KIND, locator=name, service=name, system=data["system"], owner=owner,
                            attributes=attributes)
    outcome, changed_fields = _outcome(existing, record)
    ctx.record(Change("catalog.component", f"component:default/{name}", outcome, fields=changed_fields), record)
    rows = [*made, {"kind": SERVICE_KIND, "locator": name, "service": name, "system": data["system"], "owner": owner,
                    "environment": None, "attributes": attributes}]
    refs = [f"resource:default/{e['metadata']['name']}" for e in catalog_entities(rows) if e["kind"] == "Resource"]
    return {"entityRef": f"component:default/{name}", "resources": refs, "changed": outcome is not Outcome.UNCHANGED,
            "catalogInfoUrl": f"{ctx.providers.public_url}/api/v1/catalog/entities.yaml"}


def _outcome(existing: dict[str, Any] | None, record: ResourceRecord) -> tuple[Outcome, tuple[str, ...]]:
    if existing is None:
        return Outcome.CREATED, ()
    before = {**existing["attributes"], "system": existing["system"]}
    after = {**record.attributes, "system": record.system}
    differing = tuple(sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)))
    return (Outcome.UPDATED if differing else Outcome.UNCHANGED), differing


ACTION = Action(
    id="goldenpath:catalog:service:register",
    title="Register the service in the catalog",
    description="Records the service so Golden Path's catalog feed serves its Component, which dependsOn the "
    "repository, secrets paths and namespaces made for it.",
    input_schema=RegisterInput,
    output_schema=RegisterOutput,
    run=run,
    examples=EXAMPLES,
)
