"""The GitHub operations the emulator serves: (method, documented path template, handler method)."""

from __future__ import annotations

import re

PATH_LIKE = {"ref", "path", "branch"}  # parameters GitHub documents as able to hold '/'

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/orgs/{org}", "get_org"),
    ("GET", "/orgs/{org}/members/{username}", "check_member"),
    ("GET", "/orgs/{org}/teams/{team_slug}", "get_team"),
    ("GET", "/orgs/{org}/teams/{team_slug}/memberships/{username}", "get_team_membership"),
    ("GET", "/orgs/{org}/installation", "get_org_installation"),
    ("POST", "/app/installations/{installation_id}/access_tokens", "create_installation_token"),
    ("POST", "/orgs/{org}/repos", "create_repo"),
    ("GET", "/repos/{owner}/{repo}", "get_repo"),
    ("PATCH", "/repos/{owner}/{repo}", "update_repo"),
    ("GET", "/repos/{owner}/{repo}/contents/{path}", "get_content"),
    ("PUT", "/repos/{owner}/{repo}/contents/{path}", "put_content"),
    ("GET", "/repos/{owner}/{repo}/git/ref/{ref}", "get_ref"),
    ("POST", "/repos/{owner}/{repo}/git/refs", "create_ref"),
    ("PATCH", "/repos/{owner}/{repo}/git/refs/{ref}", "update_ref"),
    ("POST", "/repos/{owner}/{repo}/git/blobs", "create_blob"),
    ("POST", "/repos/{owner}/{repo}/git/trees", "create_tree"),
    ("POST", "/repos/{owner}/{repo}/git/commits", "create_commit"),
    ("GET", "/repos/{owner}/{repo}/topics", "get_topics"),
    ("PUT", "/repos/{owner}/{repo}/topics", "put_topics"),
    ("GET", "/orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}", "get_team_repo"),
    ("PUT", "/orgs/{org}/teams/{team_slug}/repos/{owner}/{repo}", "put_team_repo"),
    ("GET", "/repos/{owner}/{repo}/teams", "list_repo_teams"),
    ("GET", "/repos/{owner}/{repo}/collaborators", "list_collaborators"),
    ("GET", "/repos/{owner}/{repo}/collaborators/{username}/permission", "get_collaborator_permission"),
    ("PUT", "/repos/{owner}/{repo}/collaborators/{username}", "put_collaborator"),
    ("GET", "/repos/{owner}/{repo}/invitations", "list_invitations"),
    ("GET", "/repos/{owner}/{repo}/branches/{branch}/protection", "get_protection"),
    ("PUT", "/repos/{owner}/{repo}/branches/{branch}/protection", "put_protection"),
    ("GET", "/repos/{owner}/{repo}/codeowners/errors", "codeowners_errors"),
    ("GET", "/repos/{owner}/{repo}/rulesets", "list_rulesets"),
    ("POST", "/repos/{owner}/{repo}/rulesets", "create_ruleset"),
    ("GET", "/repos/{owner}/{repo}/rulesets/{ruleset_id}", "get_ruleset"),
    ("PUT", "/repos/{owner}/{repo}/rulesets/{ruleset_id}", "update_ruleset"),
    ("DELETE", "/repos/{owner}/{repo}/rulesets/{ruleset_id}", "delete_ruleset"),
    ("GET", "/repos/{owner}/{repo}/rules/branches/{branch}", "get_branch_rules"),
)


def werkzeug_rule(template: str) -> str:
    return re.sub(r"\{([a-z_]+)\}", lambda m: f"<{'path:' if m.group(1) in PATH_LIKE else ''}{m.group(1)}>",
                  template)
