"""Naming rules shared by every action: one source for namespace and service-account names."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Patterns in the ECMA-262 subset JSON Schema validators share (Backstage reads them from the published schemas).
# Use them with `fullmatch` only: with `re.match`, `$` also matches before a trailing newline.
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
DNS_LABEL_MAX = 63
ENTITY_REF = r"^((group|user):)?([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
ENTITY_REF_MAX = len("group:") + DNS_LABEL_MAX + len("/") + 63
LABEL_VALUE = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
LABEL_VALUE_MAX = 63
SECRET_KEY = r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$"  # noqa: S105 - a pattern for key names
SECRET_KEY_MAX = 128
_DNS_LABEL_RE = re.compile(DNS_LABEL)


def is_dns_label(value: str) -> bool:
    return _DNS_LABEL_RE.fullmatch(value) is not None


def entity_name(ref: str) -> str:
    """'group:default/team-a' -> 'team-a'."""
    return ref.rsplit("/", 1)[-1].split(":", 1)[-1]


@dataclass(frozen=True)
class Naming:
    namespace_pattern: str = "{service}-{environment}"
    service_account_pattern: str = "{service}"

    def namespace(self, *, service: str, system: str, environment: str) -> str:
        return self.namespace_pattern.format(service=service, system=system, environment=environment)

    def service_account(self, *, service: str, system: str) -> str:
        return self.service_account_pattern.format(service=service, system=system)

    def secrets_path(self, *, service: str, system: str, environment: str) -> str:
        """The service's KV path, relative to the mount."""
        return f"{environment}/{system}/{service}"

    # Names Golden Path owns outright join DNS labels with '.', which no DNS label contains: distinct
    # (environment, system, service) always give distinct names, however many dashes the parts hold.
    def vault_policy(self, *, service: str, system: str, environment: str, audience: str) -> str:
        """`audience` is "workload" (reads its own path) or "owners" (manage the values)."""
        return f"goldenpath.{environment}.{system}.{service}.{audience}"

    def vault_role(self, *, service: str, system: str, environment: str) -> str:
        """The Kubernetes auth role that binds the service's workload identity in one environment."""
        return f"goldenpath.{environment}.{system}.{service}"
