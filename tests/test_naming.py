"""Derived names are injective over the request: random systems and services full of dashes never share a Vault
policy, a Kubernetes auth role, a secrets path or a catalog entity name (pure functions, no servers)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from backend.catalog import entity_name
from backend.naming import Naming, is_dns_label
from backend.ownership import canonical_ref, same_owner

# DNS labels built to collide under a '-' join: few letters, many dashes
LABEL = st.from_regex(r"[ab]([-ab]{0,6}[ab])?", fullmatch=True).filter(is_dns_label)
ENV = st.sampled_from(["dev", "prod", "eu-prod", "dev-eu"])
REQUEST = st.tuples(ENV, LABEL, LABEL)  # environment, system, service
NAMING = Naming()


def derived(env: str, system: str, service: str) -> dict[str, str]:
    names = {"service": service, "system": system, "environment": env}
    return {
        "workload policy": NAMING.vault_policy(**names, audience="workload"),
        "owners policy": NAMING.vault_policy(**names, audience="owners"),
        "role": NAMING.vault_role(**names),
        "secrets path": NAMING.secrets_path(**names),
    }


@settings(max_examples=400, deadline=None)
@given(REQUEST, REQUEST)
def test_distinct_requests_never_share_a_derived_name(one: tuple[str, str, str], other: tuple[str, str, str]) -> None:
    if one == other:
        return
    first, second = derived(*one), derived(*other)
    for kind, name in first.items():
        assert name != second[kind], (kind, one, other)


@st.composite
def dash_splits(draw: st.DrawFn) -> tuple[tuple[str, str, str], tuple[str, str, str]]:
    """Two requests whose system and service, joined with '-', spell the same words: the collisions to beat."""
    words = draw(st.lists(st.sampled_from(["a", "b", "ab", "eu", "dev"]), min_size=2, max_size=6))
    one, other = draw(st.integers(1, len(words) - 1)), draw(st.integers(1, len(words) - 1))
    env = draw(ENV)
    return ((env, "-".join(words[:one]), "-".join(words[one:])),
            (env, "-".join(words[:other]), "-".join(words[other:])))


@settings(max_examples=300, deadline=None)
@given(dash_splits())
def test_splitting_the_same_words_differently_never_shares_a_name(
    pair: tuple[tuple[str, str, str], tuple[str, str, str]],
) -> None:
    one, other = pair
    if one == other:
        return
    first, second = derived(*one), derived(*other)
    for kind in ("workload policy", "owners policy", "role", "secrets path"):
        assert first[kind] != second[kind], (kind, one, other)


CLUSTER = st.sampled_from(["eu", "west", "eu-west", "dev"])


@settings(max_examples=400, deadline=None)
@given(st.tuples(LABEL, ENV, CLUSTER), st.tuples(LABEL, ENV, CLUSTER))
def test_catalog_entity_names_never_meet(one: tuple[str, str, str], other: tuple[str, str, str]) -> None:
    """Namespace entities carry service, environment and cluster; secrets entities service and environment."""
    if one == other:
        return
    assert entity_name(one[0], "namespace", one[1], one[2]) != entity_name(other[0], "namespace", other[1], other[2])
    if one[:2] != other[:2]:
        assert entity_name(one[0], "secrets", one[1]) != entity_name(other[0], "secrets", other[1])
    # "a" in "dev" on "eu-west" and "a" in "dev-eu" on "west" shared "a-namespace-dev-eu-west" when joined by '-'
    assert entity_name("a", "namespace", "dev", "eu-west") != entity_name("a", "namespace", "dev-eu", "west")


def test_the_old_dash_joined_names_did_collide() -> None:
    """Why the names changed: what the review found, kept as the counter-example."""
    old = [f"goldenpath-dev-{system}-{service}-workload" for system, service in (("a-b", "c"), ("a", "b-c"))]
    assert old[0] == old[1]
    assert derived("dev", "a-b", "c")["workload policy"] != derived("dev", "a", "b-c")["workload policy"]


def test_owners_compare_as_full_entity_refs() -> None:
    assert canonical_ref("team-a") == "group:default/team-a"
    assert canonical_ref("Group:Default/Team-A") == "group:default/team-a"
    assert same_owner("team-a", "group:default/team-a")
    assert not same_owner("user:default/team-a", "group:default/team-a")
    assert not same_owner("group:other/team-a", "group:default/team-a")
    assert not same_owner(None, "group:default/team-a")
