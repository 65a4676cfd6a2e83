"""Kubernetes configuration: clusters (direct or GitOps), environment → cluster mapping, size tiers, guardrails.

Defaults give `make run` one GitOps cluster, `local`, backed by a bare repository under ./var/gitops.

The classes are pydantic dataclasses: the schema (types, enums, defaults) is the class itself, checked whenever one
is made, from the configuration file or from code. The shared rules of that schema live here too (backend.settings
uses them): unknown keys are errors, and a value given as text (an environment variable) is read once, as the
field's type says.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    SkipValidation,
    TypeAdapter,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.dataclasses import dataclass

# Unknown keys are errors (never silently ignored); a number where text is expected (`app_id: 123456`, `version:
# 1.33` in YAML) is that text.
SCHEMA = ConfigDict(extra="forbid", coerce_numbers_to_str=True)


def comma_list(value: Any) -> Any:
    """A list given as text (an environment variable, `a, b`) is split on commas, once; a list is kept as given."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def mapping_text(value: Any) -> Any:
    """A mapping given as text (an environment variable) is read as YAML or JSON: `{dev: [eu-1], prod: [eu-2]}`."""
    if not isinstance(value, str):
        return value
    try:
        parsed = yaml.safe_load(value) if value.strip() else {}
    except yaml.YAMLError:
        parsed = None
    if not isinstance(parsed, Mapping):
        raise ValueError("expected a mapping, written in YAML or JSON (e.g. {key: value})")
    return parsed


def _stripped(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


CommaList = Annotated[tuple[str, ...], BeforeValidator(comma_list)]
Flag = Annotated[bool, BeforeValidator(_stripped)]  # true/false, 1/0, yes/no, on/off
Seconds = Annotated[float, Field(ge=0)]
Count = Annotated[int, Field(ge=0)]

POD_SECURITY_LEVELS = ("privileged", "baseline", "restricted")  # the Pod Security Standards

DEFAULT_TIERS: dict[str, dict[str, Any]] = {
    "small": {
        "quota": {"requests.cpu": "2", "requests.memory": "4Gi", "limits.cpu": "4", "limits.memory": "8Gi",
                  "pods": "20", "services": "10", "persistentvolumeclaims": "5"},
        "default_request": {"cpu": "100m", "memory": "128Mi"},
        "default_limit": {"cpu": "500m", "memory": "512Mi"},
    },
    "medium": {
        "quota": {"requests.cpu": "8", "requests.memory": "16Gi", "limits.cpu": "16", "limits.memory": "32Gi",
                  "pods": "60", "services": "20", "persistentvolumeclaims": "20"},
        "default_request": {"cpu": "250m", "memory": "256Mi"},
        "default_limit": {"cpu": "1", "memory": "1Gi"},
    },
    "large": {
        "quota": {"requests.cpu": "32", "requests.memory": "64Gi", "limits.cpu": "64", "limits.memory": "128Gi",
                  "pods": "200", "services": "50", "persistentvolumeclaims": "50"},
        "default_request": {"cpu": "500m", "memory": "512Mi"},
        "default_limit": {"cpu": "2", "memory": "2Gi"},
    },
}


@dataclass(frozen=True, config=SCHEMA)
class ClusterSettings:
    name: str
    mode: Literal["direct", "gitops"] = "gitops"
    # direct mode: a kubeconfig (+ context), in-cluster credentials, or a server URL + token file
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: Flag = False
    server: str | None = None
    token_file: str | None = None
    # gitops mode: the remote the commits are pushed to, and where the working clone lives
    remote: str | None = None
    workdir: str | None = None
    branch: str = "main"

    @model_validator(mode="after")
    def _gitops_needs_a_remote(self) -> ClusterSettings:
        if self.mode == "gitops" and not self.remote:
            raise ValueError("gitops mode needs a remote (the repository the commits are pushed to)")
        return self


@dataclass(frozen=True, config=SCHEMA)
class Tier:
    name: str
    # the quantities are not checked here but against the Kubernetes schema, strictly, before anything is written
    quota: dict[str, SkipValidation[str]]
    default_request: dict[str, SkipValidation[str]]
    default_limit: dict[str, SkipValidation[str]]


def _named(value: Any) -> Any:
    """clusters and tiers are mappings name → spec: each spec gets its name from its key."""
    value = mapping_text(value)
    if not isinstance(value, Mapping):
        return value
    named: dict[Any, Any] = {}
    for name, spec in value.items():
        if isinstance(spec, Mapping) and spec.get("name", name) != name:
            raise ValueError(f"{name}: the name is the key, leave `name` out")
        named[name] = {**spec, "name": name} if isinstance(spec, Mapping) else spec
    return named


@dataclass(frozen=True, config=SCHEMA)
class KubernetesSettings:
    version: str = "1.33"
    clusters: Annotated[dict[str, ClusterSettings], BeforeValidator(_named)] = field(default_factory=lambda: {
        "local": ClusterSettings(name="local", mode="gitops", remote="var/gitops/local.git",
                                 workdir="var/gitops/local-work")})
    # checked even when left at its default: each environment's clusters must be defined
    environments: Annotated[dict[str, CommaList], BeforeValidator(mapping_text), Field(validate_default=True)] = field(
        default_factory=lambda: {"dev": ("local",), "staging": ("local",), "prod": ("local",)})
    tiers: Annotated[dict[str, Tier], BeforeValidator(_named)] = field(
        default_factory=lambda: {n: Tier(name=n, **t) for n, t in DEFAULT_TIERS.items()})
    # environment → level; default below. A level given as text must be one of the three; any other value is left to
    # the Kubernetes schema, which refuses it before anything is written (a guarantee test relies on that)
    pod_security: Annotated[dict[str, SkipValidation[str]], BeforeValidator(mapping_text)] = field(
        default_factory=dict)
    pod_security_default: str = "restricted"
    owner_cluster_role: str = "edit"
    auditors_group: str | None = "platform-auditors"
    auditors_cluster_role: str = "view"
    dns_namespace: str = "kube-system"
    dns_pod_labels: Annotated[dict[str, str], BeforeValidator(mapping_text)] = field(
        default_factory=lambda: {"k8s-app": "kube-dns"})
    ingress_namespaces: CommaList = ()

    def pod_security_for(self, environment: str) -> str:
        return self.pod_security.get(environment, self.pod_security_default)

    @field_validator("pod_security_default")
    @classmethod
    def _a_pod_security_level(cls, level: str) -> str:
        if level not in POD_SECURITY_LEVELS:
            raise ValueError(f"expected a Pod Security level: {', '.join(POD_SECURITY_LEVELS)}")
        return level

    @field_validator("pod_security")
    @classmethod
    def _pod_security_levels(cls, levels: dict[str, str]) -> dict[str, str]:
        wrong = [env for env, level in levels.items() if isinstance(level, str) and level not in POD_SECURITY_LEVELS]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: expected a Pod Security level: {', '.join(POD_SECURITY_LEVELS)}")
        return levels

    @field_validator("environments")
    @classmethod
    def _environments_name_clusters(cls, environments: dict[str, tuple[str, ...]],
                                    info: ValidationInfo) -> dict[str, tuple[str, ...]]:
        clusters = info.data.get("clusters")
        if clusters is None:  # not valid itself: reported as such
            return environments
        missing = {name: [env for env, names in environments.items() if name in names]
                   for names in environments.values() for name in names if name not in clusters}
        if missing:
            raise ValueError("; ".join(f"cluster {name!r} (for {', '.join(envs)}) is not in kubernetes.clusters"
                                       for name, envs in missing.items()))
        return environments


def kubernetes_from_dict(raw: Mapping[str, Any]) -> KubernetesSettings:
    """The `kubernetes` section on its own (backend.settings loads it with the rest, naming each key's source)."""
    return TypeAdapter(KubernetesSettings).validate_python(dict(raw or {}))
