"""Configuration: one YAML file (GOLDENPATH_CONFIG) with ${ENV} substitution, env overrides on top.

Any setting can be overridden as GOLDENPATH_<SECTION>__<KEY> (e.g. GOLDENPATH_VAULT__KV_MOUNT=kv);
the common ones also have short names (PORT, VAULT_ADDR, GOLDENPATH_DATABASE_URL, ...).
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from backend.kube_settings import KubernetesSettings, kubernetes_from_dict
from backend.ownership import canonical_ref

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_SHORT_OVERRIDES = {
    "PORT": ("server", "port"),
    "GOLDENPATH_HOST": ("server", "host"),
    "GOLDENPATH_DATABASE_URL": ("database", "url"),
    "GOLDENPATH_TOKEN": ("auth", "token"),
    "GOLDENPATH_BACKSTAGE_URL": ("auth", "backstage_url"),
    "VAULT_ADDR": ("vault", "addr"),
    "VAULT_TOKEN": ("vault", "token"),
    "GITHUB_TOKEN": ("github", "token"),
}


@dataclass(frozen=True)
class StaticToken:
    """A credential with no person behind it: it acts only for `groups` (canonical group refs), or for every
    owner when `admin`."""

    name: str
    token: str = field(repr=False)
    groups: tuple[str, ...] = ()
    admin: bool = False


@dataclass(frozen=True)
class AuthSettings:
    static_tokens: tuple[StaticToken, ...] = ()
    backstage_url: str | None = None
    backstage_plugins: tuple[str, ...] = ("scaffolder",)
    # groups a calling plugin acts for when no person is behind the call (no `obo`): {plugin: (group refs)}
    plugin_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    admin_groups: tuple[str, ...] = ()  # people in these groups may act for every owner
    # Golden Path's own Backstage token for reading people's groups (memberOf) from the catalog
    catalog_token: str | None = field(default=None, repr=False)
    catalog_token_file: str | None = None
    membership_cache_seconds: float = 60.0
    audience: str = "goldenpath"
    max_plugin_token_seconds: int = 3600  # Backstage plugin tokens live one hour
    max_user_token_seconds: int = 86400  # Backstage caps user sessions (backstageTokenExpiration) at 24 h
    jwks_cache_seconds: int = 600
    jwks_refresh_cooldown_seconds: float = 30.0  # bounds refetches that unknown `kid`s can force

    def resolved_catalog_token(self) -> str | None:
        try:
            return secret_from(self.catalog_token, self.catalog_token_file)
        except FileNotFoundError:
            return None


@dataclass(frozen=True)
class VaultSettings:
    addr: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    kv_mount: str = "secret"
    create_kv_mount: bool = False
    max_versions: int = 10
    kubernetes_auth_mount: str | None = "kubernetes"
    enable_kubernetes_auth: bool = False
    role_token_ttl: str = "1h"  # noqa: S105 - a duration
    ui_url: str | None = None
    timeout_seconds: float = 10.0

    def resolved_token(self) -> str | None:
        return secret_from(self.token, self.token_file)


@dataclass(frozen=True)
class PolicySettings:
    environments: tuple[str, ...] = ("dev", "staging", "prod")
    namespace_pattern: str = "{service}-{environment}"
    service_account_pattern: str = "{service}"
    service_pattern: str | None = None  # a regular expression service names must match, besides a DNS label
    reserved_names: tuple[str, ...] = ("backstage", "default", "goldenpath", "kubernetes", "vault")
    cost_center_pattern: str | None = None
    visibilities: tuple[str, ...] = ("private", "internal")  # repository visibilities teams may ask for
    # namespaces no request may name or derive (shell-style patterns): the cluster's and the platform's own
    reserved_namespaces: tuple[str, ...] = ("default", "kube-*", "goldenpath*", "openbao*", "vault*",
                                            "backstage*", "argocd", "flux-system", "cert-manager", "ingress-*")
    allow_workload_overrides: bool = False  # may a request name its own namespace/serviceAccount for Vault?
    owner_namespaces: tuple[str, ...] = ("default",)  # catalog namespaces whose groups may own services


@dataclass(frozen=True)
class RepositorySettings:
    provider: str = "local"  # "local" (bare repositories served by this service) or "github"
    org: str = "goldenpath"
    local_root: str = "var/git"
    skeletons_dir: str = str(Path(__file__).resolve().parent.parent / "catalog-info" / "templates")
    default_skeleton: str = "golden-path-service"


@dataclass(frozen=True)
class GitHubSettings:
    """Used when repositories.provider is "github": GitHub.com, or Enterprise Server via api_url."""

    api_url: str = "https://api.github.com"  # Enterprise Server: https://HOST/api/v3
    web_url: str | None = None  # derived from api_url when absent
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    app_id: str | None = None
    app_private_key_file: str | None = None
    app_installation_id: int | None = None  # looked up from the organization when absent
    timeout_seconds: float = 15.0
    # GitHub asks integrators to pace requests, writes especially; PyGithub applies these gaps
    seconds_between_requests: float = 0.25
    seconds_between_writes: float = 1.0
    rate_limit_budget_seconds: float = 60.0  # longest total wait for rate limits before a run answers 503

    def resolved_token(self) -> str | None:
        return secret_from(self.token, self.token_file)

    def resolved_private_key(self) -> str | None:
        return Path(self.app_private_key_file).read_text(encoding="utf-8") if self.app_private_key_file else None


@dataclass(frozen=True)
class CatalogSettings:
    """After the inventory changes, ask Backstage (auth.backstage_url) to refresh the feed's `url` location."""

    refresh_location: str | None = None  # the location's target exactly as Backstage has it; unset: no refresh
    backstage_token: str | None = field(default=None, repr=False)  # a Backstage external-access (static) token
    backstage_token_file: str | None = None
    refresh_timeout_seconds: float = 5.0
    refresh_min_interval_seconds: float = 1.0  # changes in quick succession make one refresh

    def resolved_token(self) -> str | None:
        """Read at each refresh, so a rotated (or not yet written) token file is picked up without a restart."""
        try:
            return secret_from(self.backstage_token, self.backstage_token_file)
        except FileNotFoundError:
            return None


@dataclass(frozen=True)
class AuditSettings:
    """The audit chain's key and witness live outside the database, so its administrators cannot rewrite it."""

    key_file: str = "var/audit.key"  # made (0600) on first start unless transit is set
    witness_file: str = "var/audit-witness.jsonl"  # checkpoints of the chain head, appended (0600)
    transit_mount: str | None = None  # with transit_key: MAC with Vault/OpenBao transit (the configured vault)
    transit_key: str | None = None


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 7070
    database_url: str = "sqlite:///var/goldenpath.db"
    max_body_bytes: int = 256 * 1024
    log_level: str = "INFO"
    public_url: str | None = None
    auth: AuthSettings = AuthSettings()
    vault: VaultSettings = VaultSettings()
    policy: PolicySettings = PolicySettings()
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    repositories: RepositorySettings = RepositorySettings()
    github: GitHubSettings = GitHubSettings()
    catalog: CatalogSettings = CatalogSettings()
    audit: AuditSettings = AuditSettings()

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def secret_from(value: str | None, path: str | None) -> str | None:
    """A secret given inline (often as ${ENV}) or as a file: the file's content without surrounding whitespace."""
    if value:
        return value
    if path:
        return Path(path).read_text(encoding="utf-8").strip()
    return None


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    config_path = path or env.get("GOLDENPATH_CONFIG")
    if config_path:
        text = _substitute(Path(config_path).read_text(encoding="utf-8"), env)
        raw = yaml.safe_load(text) or {}
    sources = {(section, key): str(config_path) for section, values in raw.items() if isinstance(values, dict)
               for key in values}
    sources.update(_apply_env_overrides(raw, env))
    return settings_from_dict(raw, sources=sources)


class SettingsError(ValueError):
    """A setting that cannot be right, named with where it came from (the file or the environment variable)."""


def _check_known(raw: Mapping[str, Any], sources: Mapping[tuple[str, str], str]) -> None:
    """A misspelt key would otherwise be ignored or fail late and vaguely: name it, its source and the nearest
    known key, before anything starts."""
    classes: dict[str, Any] = {"auth": AuthSettings, "vault": VaultSettings, "policy": PolicySettings,
                               "kubernetes": KubernetesSettings, "repositories": RepositorySettings,
                               "github": GitHubSettings, "catalog": CatalogSettings, "audit": AuditSettings}
    sections = {name: {f.name for f in fields(cls)} for name, cls in classes.items()}
    sections.update(server={"host", "port", "public_url", "max_body_bytes", "log_level"}, database={"url"})
    sections["auth"].add("token")
    for section, values in raw.items():
        if section not in sections:
            hint = difflib.get_close_matches(str(section), sections, n=1)
            raise SettingsError(f"unknown settings section {section!r}" + (f" (did you mean {hint[0]!r}?)" if hint
                                                                            else ""))
        for key in values or {}:
            if key not in sections[section]:
                where = sources.get((section, key), "configuration")
                hint = difflib.get_close_matches(str(key), sections[section], n=1)
                raise SettingsError(f"unknown setting {section}.{key} (from {where})"
                                    + (f"; did you mean {section}.{hint[0]}?" if hint else ""))


def settings_from_dict(raw: Mapping[str, Any], *, sources: Mapping[tuple[str, str], str] | None = None) -> Settings:
    _check_known(raw, sources or {})
    server = dict(raw.get("server") or {})
    auth = dict(raw.get("auth") or {})
    tokens = [_static_token(t) for t in auth.pop("static_tokens", [])]
    if single := auth.pop("token", None):  # the operator's token (GOLDENPATH_TOKEN): acts for every owner
        tokens.append(StaticToken(name="default", token=str(single), admin=True))
    for key in ("backstage_plugins", "admin_groups"):
        if key in auth:
            auth[key] = tuple(_as_list(auth[key]))
    if "admin_groups" in auth:
        auth["admin_groups"] = tuple(canonical_ref(g) for g in auth["admin_groups"])
    if "plugin_groups" in auth:
        auth["plugin_groups"] = {str(plugin): tuple(canonical_ref(g) for g in _as_list(groups))
                                 for plugin, groups in dict(auth["plugin_groups"]).items()}
    auth = _coerce(AuthSettings, auth)
    policy = dict(raw.get("policy") or {})
    for key in ("environments", "reserved_names", "visibilities", "reserved_namespaces", "owner_namespaces"):
        if key in policy:
            policy[key] = tuple(_as_list(policy[key]))
    policy = _coerce(PolicySettings, policy)
    return Settings(
        host=str(server.get("host", Settings.host)),
        port=int(server.get("port", Settings.port)),
        public_url=server.get("public_url"),
        max_body_bytes=int(server.get("max_body_bytes", Settings.max_body_bytes)),
        log_level=str(server.get("log_level", Settings.log_level)).upper(),
        database_url=str((raw.get("database") or {}).get("url", Settings.database_url)),
        auth=AuthSettings(static_tokens=tuple(tokens), **auth),
        vault=VaultSettings(**_coerce(VaultSettings, dict(raw.get("vault") or {}))),
        policy=PolicySettings(**policy),
        kubernetes=kubernetes_from_dict(dict(raw.get("kubernetes") or {})),
        repositories=RepositorySettings(**dict(raw.get("repositories") or {})),
        github=_github(dict(raw.get("github") or {})),
        catalog=CatalogSettings(**_coerce(CatalogSettings, dict(raw.get("catalog") or {}))),
        audit=AuditSettings(**_coerce(AuditSettings, dict(raw.get("audit") or {}))),
    )


def _static_token(raw: Mapping[str, Any]) -> StaticToken:
    admin = raw.get("admin", False)
    return StaticToken(name=str(raw["name"]), token=str(raw["token"]),
                       groups=tuple(canonical_ref(g) for g in _as_list(raw.get("groups") or [])),
                       admin=admin if isinstance(admin, bool) else str(admin).strip().lower() == "true")


def _github(values: dict[str, Any]) -> GitHubSettings:
    installation = values.get("app_installation_id")
    if isinstance(installation, str):
        values["app_installation_id"] = int(installation) if installation.strip() else None
    return GitHubSettings(**_coerce(GitHubSettings, values))


def _substitute(text: str, env: Mapping[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise KeyError(f"configuration refers to ${{{name}}}, which is not set")

    return _ENV_REF.sub(replace, text)


def _apply_env_overrides(raw: dict[str, Any], env: Mapping[str, str]) -> dict[tuple[str, str], str]:
    """Apply the environment's overrides; returns which variable set each (section, key)."""
    sources: dict[tuple[str, str], str] = {}
    for name, (section, key) in _SHORT_OVERRIDES.items():
        if env.get(name):
            raw.setdefault(section, {})[key] = env[name]
            sources[(section, key)] = name
    for name, value in env.items():
        if name.startswith("GOLDENPATH_") and "__" in name:
            section, _, key = name.removeprefix("GOLDENPATH_").lower().partition("__")
            raw.setdefault(section, {})[key] = value
            sources[(section, key)] = name
    return sources


def _as_list(value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _coerce(cls: type, values: dict[str, Any]) -> dict[str, Any]:
    """Env overrides arrive as strings: coerce them to the dataclass field's default type."""
    defaults = cls()
    out: dict[str, Any] = {}
    for key, value in values.items():
        current = getattr(defaults, key)
        if isinstance(value, str) and isinstance(current, bool):
            out[key] = value.strip().lower() in {"1", "true", "yes", "on"}
        elif isinstance(value, str) and isinstance(current, int | float) and not isinstance(current, bool):
            out[key] = type(current)(value)
        else:
            out[key] = value
    return out
