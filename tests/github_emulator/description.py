"""Facts read from GitHub's OpenAPI description that decide how the emulator answers: which statuses an
operation declares (an error it does not declare is checked against the basic-error shape instead), and
which repository rule types a ruleset may hold."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

from tests.github_emulator.openapi_check import description_path

METHODS = {"get", "put", "post", "patch", "delete"}


@dataclass(frozen=True)
class DescriptionFacts:
    statuses: dict[tuple[str, str], frozenset[int]]  # (METHOD, template) -> declared statuses
    rule_types: frozenset[str]

    def declares(self, method: str, template: str, status: int) -> bool:
        return status in self.statuses.get((method.upper(), template), frozenset())


@functools.cache
def facts(variant: str) -> DescriptionFacts:
    document = json.loads(description_path(variant).read_text(encoding="utf-8"))
    statuses = {(method.upper(), path): _declared(document, operation["responses"])
                for path, item in document["paths"].items()
                for method, operation in item.items() if method in METHODS}
    return DescriptionFacts(statuses, _rule_types(document))


def _declared(document: dict[str, Any], responses: dict[str, Any]) -> frozenset[int]:
    """The statuses listed, less those no error body can satisfy: a oneOf whose choices each take any basic error
    (PUT contents' 409: basic-error or repository-rule-violation-error) matches every such body twice."""
    return frozenset(int(code) for code, response in responses.items()
                     if code.isdigit() and not _ambiguous(document, _resolve(document, response)))


def _ambiguous(document: dict[str, Any], response: dict[str, Any]) -> bool:
    schema = response.get("content", {}).get("application/json", {}).get("schema", {})
    choices = [_resolve(document, choice) for choice in schema.get("oneOf", ())]
    return len(choices) > 1 and all(not choice.get("required") for choice in choices)


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _rule_types(document: dict[str, Any]) -> frozenset[str]:
    schemas = document["components"]["schemas"]
    names = (choice["$ref"].rsplit("/", 1)[-1] for choice in schemas["repository-rule"]["oneOf"])
    return frozenset(kind for name in names for kind in schemas[name]["properties"]["type"]["enum"])
