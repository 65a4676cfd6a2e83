"""The default branch's protection, as classic branch protection or as a repository ruleset.

Both are read into one vocabulary (the action's camelCase `protection` settings), so what was asked for and
what GitHub has in force compare field by field whichever mode holds it. A ruleset also says whether it is
enforced and which branches it applies to: one switched to `evaluate`, or with the branch excluded, no
longer protects it, and reads so.
"""

from __future__ import annotations

from typing import Any

from backend.providers.repositories import RepositorySpec

RULESET_NAME = "goldenpath-default-branch"
REPOSITORY_ADMIN_ROLE_ID = 5  # GitHub's id of the repository admin role in bypass_actors


def wanted(spec: RepositorySpec) -> dict[str, Any]:
    p = spec.protection
    return {"requiredApprovingReviews": p.required_approving_reviews,
            "requireCodeOwnerReviews": p.require_code_owner_reviews, "dismissStaleReviews": p.dismiss_stale_reviews,
            "requiredStatusChecks": sorted(p.required_status_checks), "enforceAdmins": p.enforce_admins,
            "requiredLinearHistory": p.required_linear_history,
            "requiredConversationResolution": p.required_conversation_resolution,
            "allowForcePushes": False, "allowDeletions": False}


def wanted_ruleset(spec: RepositorySpec) -> dict[str, Any]:
    body = ruleset_body(spec)
    return {**wanted(spec), "enforcement": "active", "branches": [_ref(spec.default_branch)], "excluded": [],
            "bypassActors": _actors(body["bypass_actors"]),
            "strictStatusChecks": bool(spec.protection.required_status_checks)}


def classic_body(spec: RepositorySpec) -> dict[str, Any]:
    p = spec.protection
    checks = {"strict": True, "contexts": sorted(p.required_status_checks)} if p.required_status_checks else None
    return {
        "required_status_checks": checks,
        "enforce_admins": p.enforce_admins,
        "required_pull_request_reviews": {
            "dismiss_stale_reviews": p.dismiss_stale_reviews,
            "require_code_owner_reviews": p.require_code_owner_reviews,
            "required_approving_review_count": p.required_approving_reviews},
        "restrictions": None,
        "required_linear_history": p.required_linear_history,
        "allow_force_pushes": False,
        "allow_deletions": False,
        "required_conversation_resolution": p.required_conversation_resolution,
    }


def from_classic(data: dict[str, Any]) -> dict[str, Any]:
    reviews = data.get("required_pull_request_reviews") or {}
    checks = data.get("required_status_checks") or {}

    def enabled(key: str) -> bool:
        return bool((data.get(key) or {}).get("enabled"))

    return {"requiredApprovingReviews": reviews.get("required_approving_review_count", 0) if reviews else None,
            "requireCodeOwnerReviews": bool(reviews.get("require_code_owner_reviews")),
            "dismissStaleReviews": bool(reviews.get("dismiss_stale_reviews")),
            "requiredStatusChecks": sorted(checks.get("contexts") or []), "enforceAdmins": enabled("enforce_admins"),
            "requiredLinearHistory": enabled("required_linear_history"),
            "requiredConversationResolution": enabled("required_conversation_resolution"),
            "allowForcePushes": enabled("allow_force_pushes"), "allowDeletions": enabled("allow_deletions")}


def ruleset_body(spec: RepositorySpec) -> dict[str, Any]:
    p = spec.protection
    rules: list[dict[str, Any]] = [
        {"type": "deletion"},
        {"type": "non_fast_forward"},
        {"type": "pull_request", "parameters": {
            "required_approving_review_count": p.required_approving_reviews,
            "dismiss_stale_reviews_on_push": p.dismiss_stale_reviews,
            "require_code_owner_review": p.require_code_owner_reviews,
            "require_last_push_approval": False,
            "required_review_thread_resolution": p.required_conversation_resolution}},
    ]
    if p.required_linear_history:
        rules.append({"type": "required_linear_history"})
    if p.required_status_checks:
        rules.append({"type": "required_status_checks", "parameters": {
            "strict_required_status_checks_policy": True,
            "required_status_checks": [{"context": c} for c in sorted(p.required_status_checks)]}})
    bypass = [] if p.enforce_admins else [
        {"actor_id": REPOSITORY_ADMIN_ROLE_ID, "actor_type": "RepositoryRole", "bypass_mode": "always"}]
    return {"name": RULESET_NAME, "target": "branch", "enforcement": "active", "bypass_actors": bypass,
            "conditions": {"ref_name": {"include": [_ref(spec.default_branch)], "exclude": []}}, "rules": rules}


def from_ruleset(data: dict[str, Any]) -> dict[str, Any]:
    data = data if isinstance(data, dict) else {}
    rules = {str(r.get("type")): r["parameters"] if isinstance(r.get("parameters"), dict) else {}
             for r in _listed(data.get("rules")) if isinstance(r, dict)}
    reviews = rules.get("pull_request")
    checks = rules.get("required_status_checks") or {}
    ref_name = _mapping(_mapping(data.get("conditions")).get("ref_name"))
    enforcement = data.get("enforcement") if data.get("target", "branch") == "branch" else "not on branches"
    return {
        "requiredApprovingReviews": None if reviews is None else reviews.get("required_approving_review_count", 0),
        "requireCodeOwnerReviews": bool((reviews or {}).get("require_code_owner_review")),
        "dismissStaleReviews": bool((reviews or {}).get("dismiss_stale_reviews_on_push")),
        "requiredStatusChecks": sorted(str(c.get("context")) for c in _listed(checks.get("required_status_checks"))
                                       if isinstance(c, dict)),
        "enforceAdmins": not data.get("bypass_actors"),
        "bypassActors": _actors(_listed(data.get("bypass_actors"))),
        "requiredLinearHistory": "required_linear_history" in rules,
        "requiredConversationResolution": bool((reviews or {}).get("required_review_thread_resolution")),
        "allowForcePushes": "non_fast_forward" not in rules,
        "allowDeletions": "deletion" not in rules,
        "enforcement": enforcement,
        "branches": sorted(str(b) for b in _listed(ref_name.get("include"))),
        "excluded": sorted(str(b) for b in _listed(ref_name.get("exclude"))),
        # checks that bind: tested on the latest code, and not waived when a branch is created
        "strictStatusChecks": bool(checks.get("strict_required_status_checks_policy"))
        and not checks.get("do_not_enforce_on_create"),
    }


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _actors(actors: Any) -> list[str]:
    """Who may bypass the ruleset, as `type:id:mode`: only the repository admin role, and only when asked."""
    return sorted(f"{a.get('actor_type')}:{a.get('actor_id')}:{a.get('bypass_mode', 'always')}"
                  for a in actors or [] if isinstance(a, dict))


def _ref(branch: str) -> str:
    return f"refs/heads/{branch}"
