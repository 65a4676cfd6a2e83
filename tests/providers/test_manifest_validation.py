"""The cached schema validators give kubernetes_validate's own verdict (same schema, same error path), for every
manifest Golden Path renders and for broken ones, in every Kubernetes version the settings may name."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from backend.errors import PolicyViolation
from backend.guardrails import render
from backend.providers.manifests import validate
from tests.providers.test_kubernetes_direct import _spec


def _breakages() -> list[tuple[str, Callable[[list[dict[str, Any]]], None]]]:
    def unknown_field(ms: list[dict[str, Any]]) -> None:
        ms[3]["spec"]["policyType"] = ms[3]["spec"].pop("policyTypes")

    def wrong_type(ms: list[dict[str, Any]]) -> None:
        ms[0]["metadata"]["labels"]["goldenpath.dev/owner"] = 3

    def missing_required(ms: list[dict[str, Any]]) -> None:
        del ms[-1]["roleRef"]

    def bad_quota(ms: list[dict[str, Any]]) -> None:
        ms[1]["spec"]["hard"] = ["pods"]

    return [("unknown-field", unknown_field), ("wrong-type", wrong_type), ("missing-required", missing_required),
            ("bad-quota", bad_quota)]


def verdict_of_the_library(manifests: list[dict[str, Any]], version: str) -> str | None:
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            return ".".join(str(p) for p in exc.path) or "(root)"
    return None


@pytest.mark.parametrize("version", ["1.29", "1.33", "v1.33.2"])
@pytest.mark.parametrize(("name", "breaks"), [("valid", lambda ms: None), *_breakages()], ids=lambda x: x
                         if isinstance(x, str) else "")
def test_the_cached_validators_agree_with_kubernetes_validate(
        version: str, name: str, breaks: Callable[[list[dict[str, Any]]], None]) -> None:
    manifests = copy.deepcopy(render(_spec("pay-dev")))
    breaks(manifests)
    expected = verdict_of_the_library(manifests, version)
    if expected is None:
        validate(manifests, version)
        assert name == "valid"
        return
    with pytest.raises(PolicyViolation) as error:
        validate(manifests, version)
    assert f"schema at {expected}:" in error.value.detail
