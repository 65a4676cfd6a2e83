"""Configuration: one YAML file (GOLDENPATH_CONFIG) with ${ENV} substitution, env overrides on top.

Any setting can be overridden as GOLDENPATH_<SECTION>__<KEY> (e.g. GOLDENPATH_VAULT__KV_MOUNT=kv);
the common ones also have short names (PORT, VAULT_ADDR, GOLDENPATH_DATABASE_URL, ...).

The schema is the classes below (pydantic dataclasses: types, enums, defaults, each in one place), checked at load and
whenever code makes one. Values from the environment are text, read once as the field's type says: booleans
(true/false, 1/0, yes/no, on/off), numbers, lists split on commas (a list in YAML is kept as given), mappings as YAML
or JSON. A problem (an unknown key, a wrong value) is a SettingsError naming the key, where it came from (the file
or the variable) and what was expected, and never the value (it may be a secret).
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import field, fields, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin, get_type_hints

import yaml
from pydantic import AfterValidator, BeforeValidator, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails

from backend.kube_settings import SCHEMA, CommaList, Count, Flag, KubernetesSettings, Seconds, comma_list, mapping_text
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


def _canonical_groups(groups: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(canonical_ref(group) for group in groups)


def _log_level(level: str) -> str:
    if level not in logging.getLevelNamesMapping():
        raise ValueError("expected a logging level: CRITICAL, ERROR, WARNING, INFO or DEBUG")
    return level


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


def _upper(value: Any) -> Any:
    return value.strip().upper() if isinstance(value, str) else value


def _regular_expression(pattern: str | None) -> str | None:
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc.msg} at position {exc.pos})") from None
    return pattern


def _placeholders(*allowed: str) -> AfterValidator:
    """A name pattern (`{service}-{environment}`) may use only the placeholders the platform fills in."""
    def check(pattern: str) -> str:
        try:
            used = {name for _, name, _, _ in string.Formatter().parse(pattern) if name is not None}
        except ValueError:
            raise ValueError("expected a pattern such as {service}-{environment} (unbalanced braces)") from None
        if unknown := used - set(allowed):
            raise ValueError(f"unknown placeholder {', '.join(sorted(map(repr, unknown)))}; "
                             f"expected {', '.join('{' + name + '}' for name in allowed)}")
        return pattern

    return AfterValidator(check)


# group refs, canonical: "team-a" is group:default/team-a
Groups = Annotated[tuple[str, ...], BeforeValidator(comma_list), AfterValidator(_canonical_groups)]
Pattern = Annotated[str | None, AfterValidator(_regular_expression)]
LogLevel = Annotated[str, BeforeValidator(_upper), AfterValidator(_log_level)]
Port = Annotated[int, Field(ge=0, le=65535)]
Visibility = Literal["private", "internal", "public"]


@dataclass(frozen=True, config=SCHEMA)
class StaticToken:
    """A credential with no person behind it: it acts only for `groups` (canonical group refs), or for every
    owner when `admin`."""

    name: str
    token: str = field(repr=False)
    groups: Groups = ()
    admin: Flag = False


@dataclass(frozen=True, config=SCHEMA)
class AuthSettings:
    static_tokens: tuple[StaticToken, ...] = ()
    backstage_url: str | None = None
    backstage_plugins: CommaList = ("scaffolder",)
    # groups a calling plugin acts for when no person is behind the call (no `obo`): {plugin: (group refs)}
    plugin_groups: Annotated[Mapping[str, Groups], BeforeValidator(mapping_text)] = field(default_factory=dict)
    admin_groups: Groups = ()  # people in these groups may act for every owner
    # Golden Path's own Backstage token for reading people's groups (memberOf) from the catalog
    catalog_token: str | None = field(default=None, repr=False)
    catalog_token_file: str | None = None
    membership_cache_seconds: Seconds = 60.0
    audience: str = "goldenpath"
    max_plugin_token_seconds: Count = 3600  # Backstage plugin tokens live one hour
    max_user_token_seconds: Count = 86400  # Backstage caps user sessions (backstageTokenExpiration) at 24 h
    jwks_cache_seconds: Count = 600
    jwks_refresh_cooldown_seconds: Seconds = 30.0  # bounds refetches that unknown `kid`s can force

    def resolved_catalog_token(self) -> str | None:
        try:
            return secret_from(self.catalog_token, self.catalog_token_file)
        except FileNotFoundError:
            return None


@dataclass(frozen=True, config=SCHEMA)
class VaultSettings:
    addr: str | None = None
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    kv_mount: str = "secret"
    create_kv_mount: Flag = False
    max_versions: Count = 10
    kubernetes_auth_mount: str | None = "kubernetes"
    enable_kubernetes_auth: Flag = False
    role_token_ttl: str = "1h"  # noqa: S105 - a duration
    ui_url: str | None = None
    timeout_seconds: Seconds = 10.0

    def resolved_token(self) -> str | None:
        return secret_from(self.token, self.token_file)


@dataclass(frozen=True, config=SCHEMA)
class PolicySettings:
    environments: CommaList = ("dev", "staging", "prod")
    namespace_pattern: Annotated[str, _placeholders("service", "system", "environment")] = "{service}-{environment}"
    service_account_pattern: Annotated[str, _placeholders("service", "system")] = "{service}"
    service_pattern: Pattern = None  # a regular expression service names must match, besides a DNS label
    reserved_names: CommaList = ("backstage", "default", "goldenpath", "kubernetes", "vault")
    cost_center_pattern: Pattern = None  # a regular expression
    # repository visibilities teams may ask for
    visibilities: Annotated[tuple[Visibility, ...], BeforeValidator(comma_list)] = ("private", "internal")
    # namespaces no request may name or derive (shell-style patterns): the cluster's and the platform's own
    reserved_namespaces: CommaList = ("default", "kube-*", "goldenpath*", "openbao*", "vault*",
                                      "backstage*", "argocd", "flux-system", "cert-manager", "ingress-*")
    allow_workload_overrides: Flag = False  # may a request name its own namespace/serviceAccount for Vault?
    owner_namespaces: CommaList = ("default",)  # catalog namespaces whose groups may own services


@dataclass(frozen=True, config=SCHEMA)
class RepositorySettings:
    provider: Literal["local", "github"] = "local"  # bare repositories served by this service, or GitHub
    org: str = "goldenpath"
    local_root: str = "var/git"
    skeletons_dir: str = str(Path(__file__).resolve().parent.parent / "catalog-info" / "templates")
    default_skeleton: str = "golden-path-service"


@dataclass(frozen=True, config=SCHEMA)
class GitHubSettings:
    """Used when repositories.provider is "github": GitHub.com, or Enterprise Server via api_url."""

    api_url: str = "https://api.github.com"  # Enterprise Server: https://HOST/api/v3
    web_url: str | None = None  # derived from api_url when absent
    token: str | None = field(default=None, repr=False)
    token_file: str | None = None
    app_id: str | None = None
    app_private_key_file: str | None = None
    # looked up from the organization when absent (or blank)
    app_installation_id: Annotated[int | None, BeforeValidator(_blank_is_none)] = None
    timeout_seconds: Seconds = 15.0
    # GitHub asks integrators to pace requests, writes especially; every run of the process keeps these gaps
    seconds_between_requests: Seconds = 0.25
    seconds_between_writes: Seconds = 1.0
    # longest total wait for rate limits in one run before it answers 503; a secondary limit naming no wait asks for
    # a minute, then two (GitHub's guidance), and Backstage's HTTP client waits at most 300 s for an answer
    rate_limit_budget_seconds: Seconds = 180.0
    creation_window_seconds: Seconds = 30.0  # GitHub answers 404/409 about a repository it is still creating
    conditional_requests: bool = True  # reads send If-None-Match: GitHub does not count a 304 against the limit

    def resolved_token(self) -> str | None:
        return secret_from(self.token, self.token_file)

    def resolved_private_key(self) -> str | None:
        return Path(self.app_private_key_file).read_text(encoding="utf-8") if self.app_private_key_file else None


@dataclass(frozen=True, config=SCHEMA)
class CatalogSettings:
    """After the inventory changes, ask Backstage (auth.backstage_url) to refresh the feed's `url` location."""

    refresh_location: str | None = None  # the location's target exactly as Backstage has it; unset: no refresh
    backstage_token: str | None = field(default=None, repr=False)  # a Backstage external-access (static) token
    backstage_token_file: str | None = None
    refresh_timeout_seconds: Seconds = 5.0
    refresh_min_interval_seconds: Seconds = 1.0  # changes in quick succession make one refresh

    def resolved_token(self) -> str | None:
        """Read at each refresh, so a rotated (or not yet written) token file is picked up without a restart."""
        try:
            return secret_from(self.backstage_token, self.backstage_token_file)
        except FileNotFoundError:
            return None


@dataclass(frozen=True, config=SCHEMA)
class AuditSettings:
    """The audit chain's key and witness live outside the database, so its administrators cannot rewrite it."""

    key_file: str = "var/audit.key"  # made (0600) on first start unless transit is set
    witness_file: str = "var/audit-witness.jsonl"  # checkpoints of the chain head, appended (0600)
    transit_mount: str | None = None  # with transit_key: MAC with Vault/OpenBao transit (the configured vault)
    transit_key: str | None = None


@dataclass(frozen=True, config=SCHEMA)
class RunSettings:
    """Runs survive their replica: each holds a lease it renews; another replica takes over an expired one."""

    lease_seconds: Seconds = 30.0  # a run whose replica stopped renewing for this long is taken over
    takeover_interval_seconds: Seconds = 5.0  # how often each replica looks for runs to take over (0: never)
    lock_timeout_seconds: Seconds = 120.0  # longest wait for another run working on the same service


@dataclass(frozen=True, config=SCHEMA)
class RepairRule:
    """Which drifted or missing resources a pass puts back: those of `kind` in `environment` (`*`: any; a
    repository and a catalog entry have no environment, so only `*` matches them)."""

    kind: str = "*"  # a declared resource kind (backend.kinds), `service` (the catalog entry), or `*`
    environment: str = "*"


@dataclass(frozen=True, config=SCHEMA)
class ReconcileSettings:
    """Day 2: every serving replica offers to check every service this often; one at a time runs the pass."""

    interval_seconds: Seconds = 900.0  # between two passes (0: never; `goldenpath reconcile` still works)
    jitter_seconds: Seconds = 60.0  # a random extra wait, so replicas started together do not all try at once
    # what a pass repairs; everything else (and all of it by default: prod stays report-only unless listed) is
    # reported only
    repair: tuple[RepairRule, ...] = ()


@dataclass(frozen=True, config=SCHEMA)
class Settings:
    host: str = "127.0.0.1"
    port: Port = 7070
    database_url: str = "sqlite:///var/goldenpath.db"
    max_body_bytes: Count = 256 * 1024
    log_level: LogLevel = "INFO"
    public_url: str | None = None
    auth: AuthSettings = AuthSettings()
    vault: VaultSettings = VaultSettings()
    policy: PolicySettings = PolicySettings()
    kubernetes: KubernetesSettings = field(default_factory=KubernetesSettings)
    repositories: RepositorySettings = RepositorySettings()
    github: GitHubSettings = GitHubSettings()
    catalog: CatalogSettings = CatalogSettings()
    audit: AuditSettings = AuditSettings()
    runs: RunSettings = RunSettings()
    reconcile: ReconcileSettings = ReconcileSettings()

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


class SettingsError(ValueError):
    """A setting that cannot be right, named with where it came from (the file or the environment variable)."""


# The file's shape: `server` and `database` are sections there but flat fields of Settings; `auth.token` is the
# operator's token, an admin StaticToken named "default". Every other section is the Settings field of its name.
_FLAT: dict[str, dict[str, str]] = {
    "server": {"host": "host", "port": "port", "public_url": "public_url", "max_body_bytes": "max_body_bytes",
               "log_level": "log_level"},
    "database": {"url": "database_url"},
}
_NESTED = tuple(f.name for f in fields(Settings) if f.name not in {n for keys in _FLAT.values() for n in keys.values()})
_SECTIONS = (*_FLAT, *_NESTED)
_VALIDATOR = TypeAdapter(Settings)

Sources = Mapping[tuple[str, str], str]


def load_settings(path: str | None = None, env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    config_path = path or env.get("GOLDENPATH_CONFIG")
    if config_path:
        raw = _read_yaml(str(config_path), _substitute(Path(config_path).read_text(encoding="utf-8"), env))
    sources = {(str(section), ""): str(config_path) for section in raw}  # the section itself
    sources.update({(str(section), str(key)): str(config_path) for section, values in raw.items()
                    if isinstance(values, dict) for key in values})
    sources.update(_apply_env_overrides(raw, env))
    return settings_from_dict(raw, sources=sources)


def _read_yaml(path: str, text: str) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # its message quotes the line, which may hold a substituted secret: not that
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise SettingsError(f"{path}: not valid YAML{at}: {getattr(exc, 'problem', None) or 'unreadable'}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise SettingsError(f"{path}: expected a mapping of settings sections (server, auth, vault, ...)")
    return loaded or {}


def settings_from_dict(raw: Mapping[str, Any], *, sources: Sources | None = None) -> Settings:
    """Settings from the file's shape (sections of keys), checked against the schema. `sources` names where each
    (section, key) came from, for the errors."""
    sources = sources or {}
    problems: list[str] = []
    data: dict[str, Any] = {}
    flat: dict[str, tuple[str, str]] = {}  # a Settings field → the (section, key) it came from
    for section, values in raw.items():
        if section not in _SECTIONS:
            hint = _nearest(section, _SECTIONS)
            problems.append(f"unknown settings section {section!r} ({_where(raw, sources, section)})"
                            + (f"; did you mean {hint!r}?" if hint else ""))
            continue
        if values is None:
            continue
        if not isinstance(values, Mapping):
            problems.append(f"settings section {section} ({_where(raw, sources, section)}): expected a mapping of "
                            "keys")
            continue
        if section not in _FLAT:
            data[section] = dict(values)
            continue
        for key, value in values.items():
            if key not in _FLAT[section]:
                problems.append(_unknown(f"{section}.{key}", _where(raw, sources, section, key), list(_FLAT[section])))
                continue
            data[_FLAT[section][key]] = value
            flat[_FLAT[section][key]] = (section, key)
    token_at = _add_operator_token(data)
    try:
        settings: Settings = _VALIDATOR.validate_python(data)
    except ValidationError as exc:
        problems += [_explain(error, raw, sources, flat, token_at) for error in exc.errors(include_input=False)]
    else:
        if not problems:
            return settings
    raise SettingsError(problems[0] if len(problems) == 1 else
                        f"{len(problems)} problems in the settings:\n" + "\n".join(f"- {p}" for p in problems))


def _add_operator_token(data: dict[str, Any]) -> int | None:
    """auth.token (GOLDENPATH_TOKEN) is the operator's token: it acts for every owner. Returns its index in
    auth.static_tokens, to name it in errors."""
    auth = data.get("auth")
    if not isinstance(auth, dict) or "token" not in auth:
        return None
    single = auth.pop("token")
    tokens = auth.get("static_tokens", ())
    if not single or not isinstance(tokens, list | tuple):
        return None
    auth["static_tokens"] = [*tokens, {"name": "default", "token": single, "admin": True}]
    return len(tokens)


def _explain(error: ErrorDetails, raw: Mapping[str, Any], sources: Sources, flat: Mapping[str, tuple[str, str]],
             token_at: int | None) -> str:
    """One of pydantic's errors, in the file's terms: the key, its source, what was expected (never the value)."""
    loc = tuple(error["loc"])
    path: list[str | int] = list(loc)
    if loc and loc[0] in flat:
        path = [*flat[str(loc[0])], *loc[1:]]
    elif token_at is not None and loc[:3] == ("auth", "static_tokens", token_at):
        path = ["auth", "token", *loc[4:]]
    where = _where(raw, sources, str(path[0]) if path else "", str(path[1]) if len(path) > 1 else None)
    if error["type"] in {"unexpected_keyword_argument", "extra_forbidden"}:
        return _unknown(_dotted(path), where, _known_keys(loc[:-1]), parent=_dotted(path[:-1]))
    message = str(error["msg"]).removeprefix("Value error, ").replace("Input should be", "expected", 1)
    return f"setting {_dotted(path)} ({where}): {message[:1].lower()}{message[1:]}"


def _unknown(path: str, where: str, known: list[str], parent: str | None = None) -> str:
    parent = parent if parent is not None else path.rpartition(".")[0]
    name = path.removeprefix(parent + ".") if parent else path
    hint = _nearest(name, known)
    return f"unknown setting {path} ({where})" + (f"; did you mean {parent}.{hint}?" if hint else "")


def _nearest(name: object, known: Iterable[str]) -> str | None:
    hint = difflib.get_close_matches(str(name), list(known), n=1)
    return hint[0] if hint else None


def _where(raw: Mapping[str, Any], sources: Sources, section: str, key: str | None = None) -> str:
    if key is not None and (section, key) in sources:
        return f"from {sources[section, key]}"
    if key is None and (found := [where for (s, _), where in sources.items() if s == section]):
        return f"from {found[0]}"
    values = raw.get(section)
    given = section in raw if key is None else isinstance(values, Mapping) and key in values
    return "from configuration" if given else "default"


def _dotted(path: list[str | int] | tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path).removeprefix(".")


def _known_keys(loc: tuple[str | int, ...]) -> list[str]:
    """The keys the schema has where `loc` (a location in Settings) points, for "did you mean"."""
    kind: Any = Settings
    for part in loc:
        if is_dataclass(kind) and isinstance(part, str):
            kind = get_type_hints(kind).get(part)
        elif get_origin(kind) in {dict, Mapping}:
            kind = get_args(kind)[1]
        elif get_origin(kind) is tuple:
            kind = get_args(kind)[0]
        else:
            return []
        kind = next((a for a in get_args(kind) if a is not type(None)), kind) if _is_optional(kind) else kind
    return [f.name for f in fields(kind) if f.name != "name"] if is_dataclass(kind) else []


def _is_optional(kind: Any) -> bool:
    return type(None) in get_args(kind) and get_origin(kind) is not tuple


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
    found: dict[tuple[str, str], str] = {}

    def put(section: str, key: str, value: str, name: str) -> None:
        if raw.get(section) is None:
            raw[section] = {}
        if isinstance(raw[section], dict):  # otherwise the file's section is the error, reported as such
            raw[section][key] = value
            found[(section, key)] = name

    for name, (section, key) in _SHORT_OVERRIDES.items():
        if env.get(name):
            put(section, key, env[name], name)
    for name, value in env.items():
        if name.startswith("GOLDENPATH_") and "__" in name:
            section, _, key = name.removeprefix("GOLDENPATH_").lower().partition("__")
            put(section, key, value, name)
    return found
