"""Owner identity: every owner is compared as a full, canonical Backstage entity ref (`kind:namespace/name`).

Backstage compares entity refs case-insensitively and fills in a default kind and namespace, so
`team-a`, `Group:default/Team-A` and `group:default/team-a` are one owner, while `user:default/team-a`
is another. Depends on nothing, so providers, actions and services share one rule.
"""

from __future__ import annotations

import re

DEFAULT_NAMESPACE = "default"
_REF = re.compile(r"(?:(?P<kind>[A-Za-z]+):)?(?:(?P<namespace>[A-Za-z0-9][-A-Za-z0-9_.]*)/)?(?P<name>[^:/\s]+)")


def canonical_ref(ref: str, *, default_kind: str = "group") -> str:
    """'team-a' -> 'group:default/team-a'; 'User:Default/Jane' -> 'user:default/jane'. A value that is not an
    entity ref raises ValueError (input validation has refused it before it gets here)."""
    match = _REF.fullmatch(ref.strip())
    if match is None:
        raise ValueError(f"not an entity ref: {ref!r}")
    kind = (match["kind"] or default_kind).lower()
    namespace = (match["namespace"] or DEFAULT_NAMESPACE).lower()
    return f"{kind}:{namespace}/{match['name'].lower()}"


def same_owner(recorded: str | None, wanted: str) -> bool:
    """Whether `recorded` (as stored by an earlier run, possibly in short form) names the owner `wanted`."""
    if not recorded:
        return False
    try:
        return canonical_ref(recorded) == canonical_ref(wanted)
    except ValueError:
        return False


def ref_name(ref: str) -> str:
    """'group:default/team-a' -> 'team-a' (a GitHub team slug, a Kubernetes group name)."""
    return canonical_ref(ref).rsplit("/", 1)[-1]
