"""Repository rulesets (https://docs.github.com/rest/repos/rules): their validation, their JSON, and which of
their rules apply to a branch. A repository keeps each ruleset as the JSON GitHub answers for it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tests.github_emulator.errors import GitHubError
from tests.github_emulator.state import Repo

ENFORCEMENTS = {"active", "evaluate", "disabled"}
TARGETS = {"branch", "tag", "push"}
WRITABLE = ("name", "target", "enforcement", "conditions", "rules", "bypass_actors")
SUMMARY = ("id", "name", "target", "source_type", "source", "enforcement", "node_id", "_links", "created_at",
           "updated_at")


def check(body: dict[str, Any], rule_types: frozenset[str], others: Iterable[dict[str, Any]], *,
          creating: bool) -> None:
    """422 as GitHub answers a ruleset it will not store. `others`: the repository's other rulesets."""
    if creating and not body.get("name"):
        raise _invalid("name", "missing_field", "Name can't be blank")
    if "name" in body and any(other["name"] == body["name"] for other in others):
        raise _invalid("name", "custom", "Name must be unique")
    if (creating or "enforcement" in body) and body.get("enforcement") not in ENFORCEMENTS:
        raise _invalid("enforcement", "invalid", f"Invalid enforcement: {body.get('enforcement')}")
    if "target" in body and body["target"] not in TARGETS:
        raise _invalid("target", "invalid", f"Invalid target: {body['target']}")
    for rule in body.get("rules") or []:
        if rule.get("type") not in rule_types:
            raise _invalid("rules", "invalid", f"Invalid rule '{rule.get('type')}': unknown rule type")


def _invalid(field: str, code: str, message: str) -> GitHubError:
    return GitHubError(422, "Validation Failed", [{"resource": "Ruleset", "field": field, "code": code,
                                                   "message": message}])


def create(ruleset_id: int, body: dict[str, Any], now: str) -> dict[str, Any]:
    """A new ruleset; its source and links are filled in by `answer`, from wherever the repository is then."""
    ruleset: dict[str, Any] = {"id": ruleset_id, "name": body["name"], "target": "branch",
                               "source_type": "Repository", "source": "", "enforcement": body["enforcement"],
                               "node_id": f"RRS_{ruleset_id}", "_links": {}, "created_at": now,
                               "updated_at": now, "bypass_actors": [], "conditions": {}, "rules": []}
    update(ruleset, body, now)
    return ruleset


def update(ruleset: dict[str, Any], body: dict[str, Any], now: str) -> None:
    ruleset.update({key: body[key] for key in WRITABLE if key in body})
    ruleset["conditions"] = _conditions(ruleset["conditions"])
    ruleset["rules"] = [dict(rule) for rule in ruleset["rules"]]
    ruleset["bypass_actors"] = [{"bypass_mode": "always", **actor} for actor in ruleset["bypass_actors"] or []]
    ruleset["updated_at"] = now


def _conditions(given: dict[str, Any] | None) -> dict[str, Any]:
    ref_name = (given or {}).get("ref_name") or {}
    return {"ref_name": {"include": list(ref_name.get("include") or []),
                         "exclude": list(ref_name.get("exclude") or [])}}


def answer(repo: Repo, ruleset: dict[str, Any], repo_api: str, repo_web: str) -> dict[str, Any]:
    """The ruleset as GET answers it, its source and links naming the repository's current place."""
    ruleset.update({"source": repo.full_name,
                    "_links": {"self": {"href": f"{repo_api}/rulesets/{ruleset['id']}"},
                               "html": {"href": f"{repo_web}/rules/{ruleset['id']}"}}})
    return ruleset


def summary(repo: Repo, ruleset: dict[str, Any], repo_api: str, repo_web: str) -> dict[str, Any]:
    """The ruleset as the list operation shows it: without its conditions, rules and bypass actors."""
    full = answer(repo, ruleset, repo_api, repo_web)
    return {key: full[key] for key in SUMMARY}


def branch_rules(repo: Repo, branch: str) -> list[dict[str, Any]]:
    """The rules of the active branch rulesets whose conditions take in `branch`, each with its ruleset."""
    ref = f"refs/heads/{branch}"
    return [{**rule, "ruleset_source_type": "Repository", "ruleset_source": repo.full_name,
             "ruleset_id": ruleset["id"]}
            for _, ruleset in sorted(repo.rulesets.items())
            if ruleset["enforcement"] == "active" and ruleset["target"] == "branch"
            and applies(ruleset, ref, repo.default_branch)
            for rule in ruleset["rules"]]


def applies(ruleset: dict[str, Any], ref: str, default_branch: str) -> bool:
    ref_name = ruleset["conditions"].get("ref_name") or {}
    return (any(_matches(pattern, ref, default_branch) for pattern in ref_name.get("include") or [])
            and not any(_matches(pattern, ref, default_branch) for pattern in ref_name.get("exclude") or []))


def _matches(pattern: str, ref: str, default_branch: str) -> bool:
    if pattern == "~ALL":
        return True
    if pattern == "~DEFAULT_BRANCH":
        return ref == f"refs/heads/{default_branch}"
    return _fnmatch(pattern).fullmatch(ref) is not None


def _fnmatch(pattern: str) -> re.Pattern[str]:
    """fnmatch as GitHub applies it to ref names: `*` and `?` stay within one path segment, `**` crosses them."""
    out = []
    for token in re.findall(r"\*\*|\*|\?|\[!?[^]]+\]|.", pattern, flags=re.DOTALL):
        if token == "**":
            out.append(".*")
        elif token == "*":
            out.append("[^/]*")
        elif token == "?":
            out.append("[^/]")
        elif token.startswith("[") and len(token) > 2:
            inner = token[1:-1]
            out.append("[" + ("^" + inner[1:] if inner.startswith("!") else inner) + "]")
        else:
            out.append(re.escape(token))
    return re.compile("".join(out))
