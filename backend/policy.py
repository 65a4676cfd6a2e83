"""The platform's rules for a golden-path request, from configuration: naming, environments, tiers, cost
centers and repository visibility.

Each check returns every problem it finds (field, rule, message) instead of stopping at the first, so the
`plan` action can answer with all of them at once; each provisioning action enforces the rules that concern it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from backend.errors import FieldError, PolicyViolation
from backend.naming import DNS_LABEL_MAX, Naming, is_dns_label


@dataclass(frozen=True)
class Policy:
    environments: tuple[str, ...] = ("dev", "staging", "prod")
    tiers: tuple[str, ...] = ("small", "medium", "large")
    naming: Naming = field(default_factory=Naming)
    service_pattern: str | None = None  # a regular expression service names must match (besides DNS label)
    reserved_names: tuple[str, ...] = ()
    cost_center_pattern: str | None = None
    visibilities: tuple[str, ...] = ("private", "internal")
    clusters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # environment → clusters; {}: no check
    reserved_namespaces: tuple[str, ...] = ("default", "kube-*")  # shell-style patterns
    owner_namespaces: tuple[str, ...] = ("default",)  # catalog namespaces whose groups may own services
    allow_workload_overrides: bool = False

    def request_problems(self, data: Mapping[str, Any]) -> list[FieldError]:
        """The rules for the fields every golden-path step shares (ServiceInput): naming, environments,
        cost center."""
        service, system = data["service"], data["system"]
        return [*self.service_problems(service, system=system),
                *self.environment_problems(data["environments"], service=service, system=system),
                *self.cost_center_problems(data["costCenter"]), *self.owner_problems(data["owner"])]

    def owner_problems(self, owner: str, *, field: str = "owner") -> list[FieldError]:
        """Services are owned by teams: a group, in a namespace the platform's groups live in. A person would
        own names for themselves alone, and a group of another namespace would share its team slug (GitHub team,
        Kubernetes group) with the platform's group of that name."""
        kind, _, rest = owner.partition(":")
        namespace = rest.split("/", 1)[0]
        if kind != "group":
            return [FieldError(field, f"{owner} is not a group: services are owned by teams", "owner-must-be-group")]
        if namespace not in self.owner_namespaces:
            return [FieldError(field, f"groups of namespace {namespace!r} may not own services here (allowed: "
                                      f"{', '.join(self.owner_namespaces)})", "owner-namespaces")]
        return []

    def enforce(self, problems: Iterable[FieldError]) -> None:
        """Raise one PolicyViolation naming every problem, if there is any."""
        found = list(problems)
        if found:
            raise PolicyViolation.of(found)

    def service_problems(self, service: str, *, system: str, field: str = "service") -> list[FieldError]:
        problems: list[FieldError] = []
        if service in self.reserved_names:
            problems.append(FieldError(field, f"{service!r} is reserved by the platform", "reserved-names"))
        if self.service_pattern and not re.fullmatch(self.service_pattern, service):
            problems.append(FieldError(field, f"must match the platform's naming rule {self.service_pattern}",
                                       "service-naming"))
        account = self.naming.service_account(service=service, system=system)
        if not is_dns_label(account):
            problems.append(FieldError(field, f"makes the service account {account!r}, which is not a DNS label "
                                              f"of at most {DNS_LABEL_MAX} characters", "derived-names"))
        return problems

    def environment_problems(
        self, environments: Iterable[str], *, service: str, system: str, field: str = "environments",
    ) -> list[FieldError]:
        problems: list[FieldError] = []
        for index, env in enumerate(environments):
            if env not in self.environments:
                problems.append(FieldError(f"{field}.{index}", f"environment {env!r} is not one of "
                                           f"{', '.join(self.environments)}", "allowed-environments"))
                continue
            if self.clusters and not self.clusters.get(env):
                problems.append(FieldError(f"{field}.{index}", f"no cluster serves environment {env!r}",
                                           "environment-clusters"))
            namespace = self.naming.namespace(service=service, system=system, environment=env)
            if not is_dns_label(namespace):  # the service name is what to change
                problems.append(FieldError("service", f"makes the namespace {namespace!r} in {env}, which is not "
                                           f"a DNS label of at most {DNS_LABEL_MAX} characters", "derived-names"))
            elif self.is_reserved_namespace(namespace):
                problems.append(FieldError("service", f"makes the namespace {namespace!r} in {env}, which the "
                                           "platform reserves", "reserved-namespaces"))
        return problems

    def is_reserved_namespace(self, namespace: str) -> bool:
        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.reserved_namespaces)

    def workload_problems(
        self, data: Mapping[str, Any], *, derived_namespaces: Mapping[str, str], derived_account: str,
    ) -> list[FieldError]:
        """A request may name the workload its secrets are bound to only where the platform allows it, and never
        a reserved namespace."""
        problems: list[FieldError] = []
        namespace, account = data.get("namespace"), data.get("serviceAccount")
        if not self.allow_workload_overrides:
            if namespace is not None and set(derived_namespaces.values()) != {namespace}:
                problems.append(FieldError("namespace", f"must be the platform's namespace for the service "
                                           f"({', '.join(sorted(set(derived_namespaces.values())))}); this platform "
                                           "does not allow other workloads (policy.allow_workload_overrides)",
                                           "workload-overrides"))
            if account is not None and account != derived_account:
                problems.append(FieldError("serviceAccount", f"must be the platform's service account "
                                           f"{derived_account!r}; this platform does not allow other workloads "
                                           "(policy.allow_workload_overrides)", "workload-overrides"))
        if namespace is not None and self.is_reserved_namespace(namespace):
            problems.append(FieldError("namespace", f"namespace {namespace!r} is reserved by the platform",
                                       "reserved-namespaces"))
        return problems

    def tier_problems(self, tier: str, *, field: str = "tier") -> list[FieldError]:
        if tier in self.tiers:
            return []
        return [FieldError(field, f"tier {tier!r} is not one of {', '.join(self.tiers)}", "allowed-tiers")]

    def cost_center_problems(self, cost_center: str, *, field: str = "costCenter") -> list[FieldError]:
        if not cost_center:
            return [FieldError(field, "a cost center is required", "cost-center-required")]
        if self.cost_center_pattern and not re.fullmatch(self.cost_center_pattern, cost_center):
            return [FieldError(field, f"must match the platform's cost-center format {self.cost_center_pattern}",
                               "cost-center-format")]
        return []

    def visibility_problems(self, visibility: str, *, field: str = "visibility") -> list[FieldError]:
        if visibility in self.visibilities:
            return []
        return [FieldError(field, f"visibility {visibility!r} is not one of {', '.join(self.visibilities)}",
                           "allowed-visibilities")]
