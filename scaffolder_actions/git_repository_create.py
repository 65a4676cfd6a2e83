"""A service repository from the golden-path skeleton: one commit, protected default branch, owned by a team.

Renders the skeleton server-side (Jinja2, file names too) with the request's values, creates the
repository with the rendered tree as one commit, protects the default branch, grants the owning team
access and sets topics; reads the settings back and reports them. Idempotent: a second run writes
nothing. A repository of another team, or content Golden Path did not create, is a conflict unless
`adopt` (settings only). Outputs match Backstage's publish:github (remoteUrl, repoContentsUrl, commitHash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from marshmallow import Schema, fields, validate

from backend.plugin_api import (
    Action,
    ActionContext,
    ActionInput,
    Example,
    FreeText,
    FullMatch,
    Protection,
    RepositorySpec,
    ResourceRecord,
    UpstreamUnavailable,
    dns_label,
    entity_name,
    entity_ref,
    load_skeleton,
    render_skeleton,
)

TOPIC = r"^[a-z0-9][a-z0-9-]{0,49}$"
# a git branch name: no '..', '//', '/.', no '.lock' component end, not ending in '/' or '.' (git check-ref-format)
BRANCH = r"^(?!.*\.\.)(?!.*//)(?!.*/\.)(?!.*\.lock(/|$))(?!.*[./]$)[A-Za-z0-9][A-Za-z0-9._/-]{0,99}$"
VALUE_KEY = r"^[a-z][a-z0-9_]{0,40}$"
GITHUB_LOGIN = r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$"
PERMISSIONS = ("pull", "triage", "push", "maintain", "admin")
REPOSITORY_KIND = "repository"  # the inventory kind, and the kind of the name claimed before creating one


class ProtectionInput(Schema):
    requiredApprovingReviews = fields.Integer(load_default=1, validate=validate.Range(min=0, max=6), metadata={
        "title": "Required approvals", "description": "Approving reviews needed to merge."})
    requireCodeOwnerReviews = fields.Boolean(load_default=True, metadata={
        "title": "Code owner review", "description": "CODEOWNERS must approve."})
    dismissStaleReviews = fields.Boolean(load_default=True, metadata={
        "title": "Dismiss stale reviews", "description": "New commits dismiss approvals."})
    requiredStatusChecks = fields.List(fields.String(validate=FreeText(min_length=1, max_length=100)),
                                       load_default=list, validate=validate.Length(max=50),
                                       metadata={"title": "Status checks", "description": "Checks that must pass."})
    enforceAdmins = fields.Boolean(load_default=True, metadata={
        "title": "Enforce for admins", "description": "Admins follow the rules too."})
    requiredLinearHistory = fields.Boolean(load_default=False, metadata={
        "title": "Linear history", "description": "No merge commits."})
    requiredConversationResolution = fields.Boolean(load_default=True, metadata={
        "title": "Resolve conversations", "description": "All review threads resolved before merge."})
    mode = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(["ruleset", "classic"]),
                         metadata={"title": "Mode", "description": "GitHub: ruleset (a repository ruleset, the "
                                   "default where the host offers rulesets) or classic branch protection."})


class CollaboratorInput(Schema):
    username = fields.String(required=True, validate=FullMatch(GITHUB_LOGIN, max_length=39,
                                                               error="must be a GitHub login"),
                             metadata={"title": "Username", "description": "GitHub login."})
    permission = fields.String(load_default="push", validate=validate.OneOf(PERMISSIONS), metadata={
        "title": "Permission", "description": "pull, triage, push, maintain or admin."})


class RepositoryInput(ActionInput):
    name = fields.String(required=True, validate=dns_label, metadata={
        "title": "Name", "description": "Repository name (the service name, a DNS label)."})
    description = fields.String(required=True, validate=FreeText(min_length=1, max_length=350), metadata={
        "title": "Description", "description": "One line about the service."})
    owner = fields.String(required=True, validate=entity_ref, metadata={
        "title": "Owner", "description": "Owning group entity ref; its name is the GitHub team slug."})
    system = fields.String(required=True, validate=dns_label, metadata={
        "title": "System", "description": "The system the service belongs to."})
    teamPermission = fields.String(load_default="maintain", validate=validate.OneOf(PERMISSIONS), metadata={
        "title": "Team permission", "description": "What the owning team may do."})
    collaborators = fields.List(fields.Nested(CollaboratorInput), load_default=list,
                                validate=validate.Length(max=20), metadata={
        "title": "Collaborators", "description": "People besides the owning team, with their permission."})
    visibility = fields.String(load_default="private", validate=validate.OneOf(["private", "internal", "public"]),
                               metadata={"title": "Visibility", "description": "private (default), internal, public."})
    topics = fields.List(fields.String(validate=FullMatch(TOPIC, max_length=50, error="must be a GitHub topic: "
                                                          "lowercase letters, digits and '-', at most 50")),
                         load_default=list, validate=validate.Length(max=20), metadata={
        "title": "Topics", "description": "Repository topics."})
    defaultBranch = fields.String(load_default="main", validate=FullMatch(BRANCH, max_length=100, error="must be "
                                                                          "a git branch name"), metadata={
        "title": "Default branch", "description": "Protected default branch."})
    protection = fields.Nested(ProtectionInput, load_default=lambda: ProtectionInput().load({}), metadata={
        "title": "Branch protection", "description": "Rules for the default branch."})
    skeleton = fields.String(validate=dns_label, metadata={
        "title": "Skeleton", "description": "Skeleton to render; the platform's default when absent."})
    values = fields.Dict(keys=fields.String(validate=FullMatch(VALUE_KEY, max_length=41, error="must be a "
                                                               "template variable name: a-z, 0-9 and '_'")),
                         values=fields.String(validate=FreeText(max_length=1000)), load_default=dict,
                         validate=validate.Length(max=50), metadata={
        "title": "Values", "description": "Extra values for the skeleton's templates."})
    adopt = fields.Boolean(load_default=False, metadata={
        "title": "Adopt",
        "description": "Apply settings to an existing repository Golden Path did not create (platform admins only)."})


class RepositoryOutput(Schema):
    remoteUrl = fields.String(required=True, metadata={"description": "Clone URL."})
    repoContentsUrl = fields.String(required=True, metadata={"description": "Where the contents are browsed."})
    commitHash = fields.String(required=True, metadata={
        "description": "The default branch's commit ('' in a dry-run of a new repository)."})
    provider = fields.String(required=True, metadata={"description": "local or github."})
    settings = fields.Dict(required=True, metadata={"description": "Settings read back after applying."})


EXAMPLES = (
    Example("A private service repository owned by its team", {
        "name": "payments-api", "description": "Payments API", "owner": "group:default/team-payments",
        "system": "payments", "topics": ["payments", "python"]}),
)


def run(ctx: ActionContext) -> dict[str, Any]:
    host = ctx.providers.repositories
    if host is None:
        raise UpstreamUnavailable("no repository provider is configured", provider="repositories")
    data, org = ctx.input, ctx.providers.repository_org
    ctx.policy.enforce([*ctx.policy.service_problems(data["name"], system=data["system"], field="name"),
                        *ctx.policy.visibility_problems(data["visibility"]), *ctx.policy.owner_problems(data["owner"])])
    ctx.claim_all(())  # the service's name, now that the rules pass
    skeleton = load_skeleton(Path(ctx.providers.skeletons_dir), data.get("skeleton") or ctx.providers.default_skeleton)
    team = entity_name(data["owner"])
    protection = data["protection"]
    spec = RepositorySpec(
        org=org, name=data["name"], description=data["description"], visibility=data["visibility"],
        default_branch=data["defaultBranch"], owner_team=team, owner_ref=data["owner"],
        team_permission=data["teamPermission"],
        topics=tuple(data["topics"]), skeleton=f"{skeleton.name}@{skeleton.version}",
        collaborators=tuple((c["username"], c["permission"]) for c in data["collaborators"]),
        commit_message=f"Initial commit from the {skeleton.name} skeleton {skeleton.version}\n\n"
                       f"Requested by {ctx.requester.user or ctx.requester.caller} in run {ctx.run_id}.",
        protection=Protection(
            required_approving_reviews=protection["requiredApprovingReviews"],
            require_code_owner_reviews=protection["requireCodeOwnerReviews"],
            dismiss_stale_reviews=protection["dismissStaleReviews"],
            required_status_checks=tuple(protection["requiredStatusChecks"]),
            enforce_admins=protection["enforceAdmins"], required_linear_history=protection["requiredLinearHistory"],
            required_conversation_resolution=protection["requiredConversationResolution"],
            mode=protection["mode"]),
    )
    # the skeleton records the owner (catalog-info.yaml, the ownership marker) as the full ref the spec holds
    values = {**data["values"], "name": data["name"], "description": data["description"], "owner": spec.owner_ref,
              "owner_team": team, "system": data["system"], "org": org, "default_branch": data["defaultBranch"],
              "service_account": ctx.naming.service_account(service=data["name"], system=data["system"])}
    files = render_skeleton(skeleton, values)
    # The repository's name is claimed just before Golden Path creates it, so an empty repository is one a stopped
    # run of this owner left behind only if an earlier run claimed it; any other was made by hand, and is not taken.
    locator = f"{org}/{data['name']}"
    fresh = not ctx.held_before(REPOSITORY_KIND, locator, subject=data["name"])
    result = host.ensure_repository(
        spec, files, adopt=data["adopt"], dry_run=ctx.dry_run, on_change=ctx.record, fresh_name=fresh,
        before_create=lambda: ctx.claim(REPOSITORY_KIND, locator, subject=data["name"]))
    ctx.add_resource(ResourceRecord(
        kind=REPOSITORY_KIND, locator=locator, service=data["name"], system=data["system"],
        owner=data["owner"], attributes={"provider": host.kind, "remoteUrl": result.remote_url,
                                         "repoContentsUrl": result.contents_url,
                                         "webUrl": result.contents_url.split("/blob/", 1)[0],
                                         "defaultBranch": data["defaultBranch"]}))
    return {"remoteUrl": result.remote_url, "repoContentsUrl": result.contents_url,
            "commitHash": result.commit_hash, "provider": host.kind, "settings": result.settings}


ACTION = Action(
    id="goldenpath:git:repository:create",
    title="Create a service repository from the golden-path skeleton",
    description="Creates a repository from the golden-path skeleton as one commit, protects the default branch, "
    "grants the owning team access and sets topics (GitHub, or local git under make run).",
    input_schema=RepositoryInput,
    output_schema=RepositoryOutput,
    run=run,
    examples=EXAMPLES,
    service_field="name",
    # Golden Path cannot tell whose a repository it did not create is, and adopting grants the owning team and the
    # collaborators access to it: only platform admins adopt.
    admin_fields=("adopt",),
)
