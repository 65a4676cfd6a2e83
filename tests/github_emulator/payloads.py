"""JSON bodies shaped as GitHub's OpenAPI description requires, with the emulator's loopback URLs."""

from __future__ import annotations

import base64
from typing import Any

STAMP = "2026-11-23T12:00:00Z"
DOCS = "https://docs.github.com/rest"


def error(message: str, *, status: int, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message, "documentation_url": DOCS, "status": str(status)}
    if errors is not None:
        body["errors"] = errors
    return body


def user(api: str, web: str, login: str, user_id: int, kind: str = "User") -> dict[str, Any]:
    base = f"{api}/users/{login}"
    return {
        "login": login, "id": user_id, "node_id": f"U_{user_id}", "avatar_url": f"{web}/avatars/{login}",
        "gravatar_id": "", "url": base, "html_url": f"{web}/{login}", "followers_url": f"{base}/followers",
        "following_url": f"{base}/following{{/other_user}}", "gists_url": f"{base}/gists{{/gist_id}}",
        "starred_url": f"{base}/starred{{/owner}}{{/repo}}", "subscriptions_url": f"{base}/subscriptions",
        "organizations_url": f"{base}/orgs", "repos_url": f"{base}/repos", "events_url": f"{base}/events{{/privacy}}",
        "received_events_url": f"{base}/received_events", "type": kind, "site_admin": False,
    }


_REPO_URL_SUFFIXES = {
    "archive_url": "/{archive_format}{/ref}", "assignees_url": "/assignees{/user}", "blobs_url": "/git/blobs{/sha}",
    "branches_url": "/branches{/branch}", "collaborators_url": "/collaborators{/collaborator}",
    "comments_url": "/comments{/number}", "commits_url": "/commits{/sha}", "compare_url": "/compare/{base}...{head}",
    "contents_url": "/contents/{+path}", "contributors_url": "/contributors", "deployments_url": "/deployments",
    "downloads_url": "/downloads", "events_url": "/events", "forks_url": "/forks",
    "git_commits_url": "/git/commits{/sha}", "git_refs_url": "/git/refs{/sha}", "git_tags_url": "/git/tags{/sha}",
    "hooks_url": "/hooks", "issue_comment_url": "/issues/comments{/number}",
    "issue_events_url": "/issues/events{/number}", "issues_url": "/issues{/number}", "keys_url": "/keys{/key_id}",
    "labels_url": "/labels{/name}", "languages_url": "/languages", "merges_url": "/merges",
    "milestones_url": "/milestones{/number}", "notifications_url": "/notifications{?since,all,participating}",
    "pulls_url": "/pulls{/number}", "releases_url": "/releases{/id}", "stargazers_url": "/stargazers",
    "statuses_url": "/statuses/{sha}", "subscribers_url": "/subscribers", "subscription_url": "/subscription",
    "tags_url": "/tags", "teams_url": "/teams", "trees_url": "/git/trees{/sha}",
}


def repository(api: str, web: str, repo: Any, owner: dict[str, Any], permissions: dict[str, bool]) -> dict[str, Any]:
    """A full-repository, as the identity holding `permissions` sees it."""
    full_name = f"{repo.org}/{repo.name}"
    base = f"{api}/repos/{full_name}"
    html = f"{web}/{full_name}"
    body: dict[str, Any] = {key: base + suffix for key, suffix in _REPO_URL_SUFFIXES.items()}
    body.update({
        "id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": full_name, "owner": owner,
        "organization": owner if owner["type"] == "Organization" else None,
        "private": repo.visibility != "public", "visibility": repo.visibility, "html_url": html,
        "description": repo.description or None, "fork": False, "url": base, "clone_url": f"{html}.git",
        "git_url": f"git://{web.split('://', 1)[1]}/{full_name}.git", "ssh_url": f"git@emulator:{full_name}.git",
        "svn_url": html, "mirror_url": None, "homepage": None, "language": None, "forks_count": 0,
        "stargazers_count": 0, "watchers_count": 0, "size": 0, "default_branch": repo.default_branch,
        "open_issues_count": 0, "topics": list(repo.topics), "has_issues": True, "has_projects": True,
        "has_wiki": repo.has_wiki, "has_pages": False, "has_discussions": False, "has_downloads": True,
        "archived": False, "disabled": False, "is_template": False, "pushed_at": STAMP, "created_at": STAMP,
        "updated_at": STAMP, "permissions": permissions, "license": None, "forks": 0, "open_issues": 0,
        "watchers": 0, "network_count": 0, "subscribers_count": 0, "allow_forking": False,
        "delete_branch_on_merge": repo.delete_branch_on_merge, "allow_squash_merge": True,
        "allow_merge_commit": True, "allow_rebase_merge": True, "allow_auto_merge": False,
        "allow_update_branch": False, "use_squash_pr_title_as_default": False,
        "squash_merge_commit_title": "COMMIT_OR_PR_TITLE", "squash_merge_commit_message": "COMMIT_MESSAGES",
        "merge_commit_title": "MERGE_MESSAGE", "merge_commit_message": "PR_TITLE",
        "web_commit_signoff_required": False, "custom_properties": {},
    })
    return body


def team_simple(api: str, web: str, org: str, slug: str, team_id: int, permission: str) -> dict[str, Any]:
    base = f"{api}/orgs/{org}/teams/{slug}"
    return {"id": team_id, "node_id": f"T_{team_id}", "url": base, "html_url": f"{web}/orgs/{org}/teams/{slug}",
            "name": slug, "slug": slug, "description": None, "privacy": "closed",
            "notification_setting": "notifications_enabled", "permission": permission,
            "members_url": f"{base}/members{{/member}}", "repositories_url": f"{base}/repos", "type": "organization"}


def team(api: str, web: str, org: str, slug: str, team_id: int, permission: str,
         parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """A team; `parent`: its parent's team-simple, if it has one."""
    return {**team_simple(api, web, org, slug, team_id, permission), "parent": parent}


def team_full(team_json: dict[str, Any], org: dict[str, Any], members: int, repos: int) -> dict[str, Any]:
    return {**team_json, "created_at": STAMP, "updated_at": STAMP, "members_count": members, "repos_count": repos,
            "organization": org}


def organization(api: str, web: str, login: str, org_id: int) -> dict[str, Any]:
    base = f"{api}/orgs/{login}"
    return {"login": login, "id": org_id, "node_id": f"O_{org_id}", "url": base, "repos_url": f"{base}/repos",
            "events_url": f"{base}/events", "hooks_url": f"{base}/hooks", "issues_url": f"{base}/issues",
            "members_url": f"{base}/members{{/member}}", "public_members_url": f"{base}/public_members{{/member}}",
            "avatar_url": f"{web}/avatars/{login}", "description": None, "html_url": f"{web}/{login}",
            "has_organization_projects": True, "has_repository_projects": True, "public_repos": 0,
            "public_gists": 0, "followers": 0, "following": 0, "type": "Organization", "created_at": STAMP,
            "updated_at": STAMP, "archived_at": None}


def installation(api: str, web: str, installation_id: int, app_id: int, account: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": installation_id, "app_id": app_id, "app_slug": "goldenpath", "target_id": account["id"],
        "target_type": "Organization", "single_file_name": None, "repository_selection": "all",
        "access_tokens_url": f"{api}/app/installations/{installation_id}/access_tokens",
        "html_url": f"{web}/organizations/{account['login']}/settings/installations/{installation_id}",
        "repositories_url": f"{api}/installation/repositories", "events": [], "account": account,
        "permissions": {"administration": "write", "contents": "write"}, "created_at": STAMP, "updated_at": STAMP,
        "suspended_by": None, "suspended_at": None}


def git_ref(repo_api: str, ref: str, sha: str) -> dict[str, Any]:
    return {"ref": ref, "node_id": f"REF_{sha[:12]}", "url": f"{repo_api}/git/{ref}",
            "object": {"type": "commit", "sha": sha, "url": f"{repo_api}/git/commits/{sha}"}}


def git_commit(repo_api: str, repo_web: str, sha: str, commit: Any) -> dict[str, Any]:
    return {"sha": sha, "node_id": f"C_{sha[:12]}", "url": f"{repo_api}/git/commits/{sha}",
            "html_url": f"{repo_web}/commit/{sha}", "author": _person(commit.author),
            "committer": _person(commit.committer), "message": commit.message,
            "tree": {"sha": commit.tree, "url": f"{repo_api}/git/trees/{commit.tree}"},
            "parents": [{"sha": p, "url": f"{repo_api}/git/commits/{p}", "html_url": f"{repo_web}/commit/{p}"}
                        for p in commit.parents],
            "verification": {"verified": False, "reason": "unsigned", "signature": None, "payload": None,
                             "verified_at": None}}


def git_tree(repo_api: str, sha: str, entries: Any, sizes: dict[str, int]) -> dict[str, Any]:
    return {"sha": sha, "url": f"{repo_api}/git/trees/{sha}", "truncated": False,
            "tree": [{"path": e.name, "mode": e.mode, "type": e.type, "sha": e.sha,
                      **({"size": sizes[e.sha]} if e.sha in sizes else {}),
                      "url": f"{repo_api}/git/{'trees' if e.type == 'tree' else 'blobs'}/{e.sha}"} for e in entries]}


def content_file(repo_api: str, repo_web: str, path: str, sha: str, content: bytes, ref: str) -> dict[str, Any]:
    name = path.rsplit("/", 1)[-1]
    self_url = f"{repo_api}/contents/{path}?ref={ref}"
    return {"type": "file", "encoding": "base64", "size": len(content), "name": name, "path": path,
            "content": base64.b64encode(content).decode(), "sha": sha, "url": self_url,
            "git_url": f"{repo_api}/git/blobs/{sha}", "html_url": f"{repo_web}/blob/{ref}/{path}",
            "download_url": f"{repo_web}/raw/{ref}/{path}",
            "_links": {"self": self_url, "git": f"{repo_api}/git/blobs/{sha}", "html": f"{repo_web}/blob/{ref}/{path}"}}


def _person(person: dict[str, str]) -> dict[str, str]:
    return {"name": person["name"], "email": person["email"], "date": person.get("date", STAMP)}


def protection(repo_api: str, branch: str, rules: dict[str, Any],
               restrictions: dict[str, Any] | None = None) -> dict[str, Any]:
    """A branch-protection (GET) / protected-branch (PUT) body from the stored PUT request's rules;
    `restrictions`: the branch-restriction-policy, present only when pushing is restricted."""
    url = f"{repo_api}/branches/{branch}/protection"
    body: dict[str, Any] = {"url": url}
    checks = rules.get("required_status_checks")
    if checks is not None:
        contexts = list(checks.get("contexts") or [c["context"] for c in checks.get("checks") or []])
        body["required_status_checks"] = {
            "url": f"{url}/required_status_checks", "strict": bool(checks.get("strict")), "contexts": contexts,
            "checks": [{"context": c, "app_id": None} for c in contexts],
            "contexts_url": f"{url}/required_status_checks/contexts"}
    reviews = rules.get("required_pull_request_reviews")
    if reviews is not None:
        body["required_pull_request_reviews"] = {
            "url": f"{url}/required_pull_request_reviews",
            "dismiss_stale_reviews": bool(reviews.get("dismiss_stale_reviews")),
            "require_code_owner_reviews": bool(reviews.get("require_code_owner_reviews")),
            "required_approving_review_count": int(reviews["required_approving_review_count"]),
            "require_last_push_approval": bool(reviews.get("require_last_push_approval"))}
    body["required_signatures"] = {"url": f"{url}/required_signatures", "enabled": False}
    body["enforce_admins"] = {"url": f"{url}/enforce_admins", "enabled": bool(rules.get("enforce_admins"))}
    for key in ("required_linear_history", "allow_force_pushes", "allow_deletions", "block_creations",
                "required_conversation_resolution", "lock_branch", "allow_fork_syncing"):
        body[key] = {"enabled": bool(rules.get(key))}
    if restrictions is not None:
        body["restrictions"] = restrictions
    return body


def restrictions(repo_api: str, branch: str, users: list[dict[str, Any]], teams: list[dict[str, Any]],
                 apps: list[dict[str, Any]]) -> dict[str, Any]:
    url = f"{repo_api}/branches/{branch}/protection/restrictions"
    return {"url": url, "users_url": f"{url}/users", "teams_url": f"{url}/teams", "apps_url": f"{url}/apps",
            "users": users, "teams": teams, "apps": apps}


def moved(location: str) -> dict[str, Any]:
    """GitHub's answer for a repository that was renamed or transferred."""
    return {"message": "Moved Permanently", "url": location,
            "documentation_url": "https://docs.github.com/rest/repos/repos#get-a-repository"}
