"""The one composition root: create_app(settings) builds every object the service uses."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connexion import FlaskApp
from connexion.middleware import MiddlewarePosition
from connexion.options import SwaggerUIOptions
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from backend.api.git_http import read_only_git_app
from backend.api.limits import BodyLimitMiddleware, ControlCharacterPathMiddleware
from backend.api.problems import HANDLERS
from backend.api.reason_phrase import ReasonPhraseMiddleware
from backend.api.security import bearer_handler_for
from backend.api.validation import VALIDATOR_MAP
from backend.audit_keys import AuditKey, FileAuditKey
from backend.audit_witness import FileWitness
from backend.errors import GoldenPathError
from backend.kinds import resource_kinds
from backend.log_config import configure_logging
from backend.plugin_api import Providers, VaultOptions
from backend.providers.audit_transit import TransitAuditKey
from backend.providers.backstage import BackstageCatalog, BackstageDirectory
from backend.providers.clusters import ClusterTarget
from backend.providers.github import GitHubConnection, GitHubHost
from backend.providers.gitops import GitOpsCluster
from backend.providers.kubernetes_api import KubernetesCluster, api_client_for
from backend.providers.local_git import LocalGitHost
from backend.providers.repositories import RepositoryHost
from backend.providers.secrets import SecretsStore
from backend.providers.vault import HvacSecretsStore
from backend.redaction import Redactor
from backend.services.auth import Authenticator
from backend.services.catalog_feed import CatalogFeed
from backend.services.catalog_refresh import CatalogRefresher
from backend.services.conformance import ConformanceChecker, ConformanceStores
from backend.services.identity import Identities
from backend.services.metrics import Metrics
from backend.services.reconciler import Reconciler
from backend.services.registry import ActionRegistry
from backend.services.repair import Repairer
from backend.services.runner import Runner, Stores, policy_from
from backend.services.schema_export import describe
from backend.services.takeover import TakeoverSweeper
from backend.settings import GitHubSettings, RepairRule, Settings, load_settings
from backend.store.audit import AuditStore
from backend.store.claims import ClaimStore
from backend.store.conformance import ConformanceStore
from backend.store.database import Database
from backend.store.inventory import InventoryStore
from backend.store.locks import Locks
from backend.store.runs import RunStore

SPEC_DIR = Path(__file__).resolve().parent.parent / "openapi"
_log = logging.getLogger("goldenpath")


@dataclass
class Services:
    settings: Settings
    database: Database
    stores: Stores
    registry: ActionRegistry
    runner: Runner
    authenticator: Authenticator
    metrics: Metrics
    redactor: Redactor
    secrets_store: SecretsStore | None
    catalog_feed: CatalogFeed
    identities: Identities
    conformance: ConformanceChecker
    reconciler: Reconciler
    _descriptions: list[dict[str, Any]] = field(default_factory=list)

    def action_descriptions(self) -> list[dict[str, Any]]:
        if not self._descriptions:
            self._descriptions = [describe(action) for action in self.registry.all()]
        return self._descriptions

    def readiness(self) -> dict[str, str]:
        checks = {"database": _check(self.database.ping)}
        if self.secrets_store is not None:
            checks["vault"] = _check(self.secrets_store.ping)
        return checks


def build_services(
    settings: Settings, *, secrets_store: SecretsStore | None = None, registry: ActionRegistry | None = None,
    clusters: dict[str, ClusterTarget] | None = None, upgrade_schema: bool = False,
) -> Services:
    """Every object the service uses. The database schema must be current (SchemaNotCurrent says how to upgrade)
    unless `upgrade_schema`, for one-process set-ups (tests, benchmarks) that own their database."""
    redactor = Redactor([t.token for t in settings.auth.static_tokens])
    vault_token = settings.vault.resolved_token()
    redactor.add([t for t in (vault_token, settings.catalog.resolved_token()) if t])
    if settings.repositories.provider == "github":
        redactor.add([v for v in (settings.github.resolved_token(), settings.github.resolved_private_key()) if v])
    if secrets_store is None and settings.vault.addr and vault_token:
        secrets_store = HvacSecretsStore(
            addr=settings.vault.addr, token=vault_token, timeout=settings.vault.timeout_seconds,
            ui_url=settings.vault.ui_url,
        )
    database = Database(settings.database_url)
    if upgrade_schema:
        database.migrate()
    else:
        database.require_current()
    stores = Stores(database=database, runs=RunStore(database), audit=build_audit_store(settings, database),
                    inventory=InventoryStore(database))
    registry = registry or ActionRegistry.discover()
    metrics = Metrics()
    providers = Providers(secrets=secrets_store, vault=_vault_options(settings) if secrets_store else None,
                          clusters=clusters if clusters is not None else build_clusters(settings),
                          kubernetes=settings.kubernetes, repositories=build_repository_host(settings),
                          repository_org=settings.repositories.org,
                          skeletons_dir=settings.repositories.skeletons_dir,
                          default_skeleton=settings.repositories.default_skeleton,
                          inventory=stores.inventory, claims=ClaimStore(database), public_url=settings.base_url)
    refresher = build_catalog_refresher(settings, metrics, redactor)
    on_inventory_change = refresher.request if refresher else None
    runner = Runner(registry=registry, stores=stores, providers=providers, settings=settings,
                    redactor=redactor, metrics=metrics, on_inventory_change=on_inventory_change)
    conformance_store = ConformanceStore(database)
    providers.conformance = conformance = ConformanceChecker(
        registry=registry, stores=ConformanceStores(database=database, runs=stores.runs, audit=stores.audit,
                                                    inventory=stores.inventory, conformance=conformance_store),
        providers=providers, policy=policy_from(settings), redactor=redactor, on_status_change=on_inventory_change)
    metrics.count_conformance(conformance_store.counts)
    return Services(settings=settings, database=database, stores=stores, registry=registry, runner=runner,
                    authenticator=Authenticator(settings.auth), metrics=metrics, redactor=redactor,
                    secrets_store=secrets_store, catalog_feed=CatalogFeed(stores.inventory),
                    identities=build_identities(settings, redactor), conformance=conformance,
                    reconciler=Reconciler(conformance, Locks(database.engine),
                                          interval=settings.reconcile.interval_seconds,
                                          jitter=settings.reconcile.jitter_seconds,
                                          repairer=Repairer(conformance, runner, repair_rules(settings))
                                          if settings.reconcile.repair else None,
                                          batched_reads=providers.batched_reads))


def repair_rules(settings: Settings) -> tuple[RepairRule, ...]:
    """reconcile.repair, each rule naming a kind something declares (or `*`)."""
    known = {"*", "service", *resource_kinds()}
    for index, rule in enumerate(settings.reconcile.repair):
        if rule.kind not in known:
            raise ValueError(f"reconcile.repair.{index}.kind must be one of {', '.join(sorted(known))}")
    return settings.reconcile.repair


def build_identities(settings: Settings, redactor: Redactor) -> Identities:
    """People's groups come from Backstage's catalog, read with Golden Path's own token (catalog.entity.read)."""
    auth = settings.auth
    directory = None
    if auth.backstage_url and (auth.catalog_token or auth.catalog_token_file):
        def token() -> str | None:  # read at each lookup, so a rotated token file needs no restart
            value = auth.resolved_catalog_token()
            if value:
                redactor.add([value])
            return value

        directory = BackstageDirectory(base_url=auth.backstage_url, token=token)
    return Identities(directory, admin_groups=auth.admin_groups, cache_seconds=auth.membership_cache_seconds)


def build_audit_store(settings: Settings, database: Database) -> AuditStore:
    """The audit key and witness, both outside the database: a local key file, or Vault/OpenBao transit."""
    audit, vault_token = settings.audit, settings.vault.resolved_token()
    key: AuditKey
    if audit.transit_mount or audit.transit_key:
        if not (audit.transit_mount and audit.transit_key and settings.vault.addr and vault_token):
            raise ValueError("audit.transit_mount and audit.transit_key need each other, vault.addr and a token")
        key = TransitAuditKey(addr=settings.vault.addr, token=vault_token, mount=audit.transit_mount,
                              key=audit.transit_key, timeout=settings.vault.timeout_seconds)
    else:
        key = FileAuditKey(Path(audit.key_file))
    return AuditStore(database, key=key, witness=FileWitness(Path(audit.witness_file)))


def create_app(settings: Settings, *, services: Services | None = None, validate_responses: bool = False) -> FlaskApp:
    services = services or build_services(settings)
    if isinstance(services.stores.audit.key, FileAuditKey):
        services.stores.audit.key.load()  # a bad key file stops the start, not a run whose side effects are done
    app = FlaskApp(
        __name__, specification_dir=str(SPEC_DIR),
        security_map={"bearer": bearer_handler_for(services.authenticator)},
    )
    app.add_api(
        "goldenpath.yaml", strict_validation=True, validate_responses=validate_responses,
        validator_map=VALIDATOR_MAP, swagger_ui_options=SwaggerUIOptions(swagger_ui_path="/api/v1/ui"),
    )
    app.add_middleware(ReasonPhraseMiddleware, MiddlewarePosition.BEFORE_EXCEPTION)
    app.add_middleware(ControlCharacterPathMiddleware, MiddlewarePosition.BEFORE_ROUTING)
    app.add_middleware(BodyLimitMiddleware, MiddlewarePosition.BEFORE_SECURITY, max_bytes=settings.max_body_bytes)
    for exception, handler in HANDLERS:
        app.add_error_handler(exception, handler)
    app.app.extensions["goldenpath"] = services
    if settings.repositories.provider == "local":
        # git smart HTTP (clone only) for the local repository provider, beside the API
        git_app = read_only_git_app(Path(settings.repositories.local_root),
                                    authenticate=services.authenticator.authenticate,
                                    reader=lambda principal: services.identities.requester(principal).may_act_for)
        app.add_wsgi_middleware(DispatcherMiddleware, mounts={"/git": git_app})
    app.app.json.sort_keys = False
    # connexion builds its stack on the first request; build it now so a bad spec or an
    # unresolvable operationId fails at start-up, not on a user's first call.
    app.middleware.app, app.middleware.middleware_stack = app.middleware._build_middleware_stack()
    return app


def app_from_env() -> FlaskApp:
    """Entry point for ASGI servers: `uvicorn --factory backend.app:app_from_env` (the container's). Logs as
    `goldenpath serve` does: structured JSON, every line through the redactor. The schema must be current
    (`goldenpath db upgrade` first); this replica takes over runs whose replica died and offers to run the
    reconciler's passes."""
    settings = load_settings()
    services = build_services(settings)
    configure_logging(settings.log_level, services.redactor)
    app = create_app(settings, services=services)
    TakeoverSweeper(services.runner, interval=settings.runs.takeover_interval_seconds).start()
    services.reconciler.start()
    return app


def build_catalog_refresher(settings: Settings, metrics: Metrics, redactor: Redactor) -> CatalogRefresher | None:
    catalog = settings.catalog
    if not catalog.refresh_location:
        return None
    if not settings.auth.backstage_url or not (catalog.backstage_token or catalog.backstage_token_file):
        raise ValueError("catalog.refresh_location needs auth.backstage_url and catalog.backstage_token "
                         "(or catalog.backstage_token_file)")

    def token() -> str | None:  # read at each refresh; a token first seen now is masked from now on
        value = catalog.resolved_token()
        if value:
            redactor.add([value])
        return value

    client = BackstageCatalog(base_url=settings.auth.backstage_url, token=token,
                              timeout=catalog.refresh_timeout_seconds)
    return CatalogRefresher(client, target=catalog.refresh_location,
                            min_interval=catalog.refresh_min_interval_seconds, metrics=metrics)


def build_repository_host(settings: Settings) -> RepositoryHost | None:
    if settings.repositories.provider == "local":
        return LocalGitHost(root=settings.repositories.local_root, base_url=settings.base_url)
    if settings.repositories.provider == "github":
        return GitHubHost(github_connection(settings.github), org=settings.repositories.org)
    raise ValueError(f"repositories.provider must be local or github, not {settings.repositories.provider!r}")


def github_connection(github: GitHubSettings) -> GitHubConnection:
    return GitHubConnection(
        api_url=github.api_url, web_url=github.web_url, token=github.resolved_token(), app_id=github.app_id,
        app_private_key=github.resolved_private_key(),
        app_installation_id=github.app_installation_id,
        timeout_seconds=github.timeout_seconds, seconds_between_requests=github.seconds_between_requests,
        seconds_between_writes=github.seconds_between_writes,
        rate_limit_budget_seconds=github.rate_limit_budget_seconds,
        creation_window_seconds=github.creation_window_seconds, conditional_requests=github.conditional_requests)


def build_clusters(settings: Settings) -> dict[str, ClusterTarget]:
    """Cluster clients are built lazily by the kubernetes client; nothing connects at start-up."""
    targets: dict[str, ClusterTarget] = {}
    for name, cluster in settings.kubernetes.clusters.items():
        if cluster.mode == "gitops":
            if not cluster.remote:
                raise ValueError(f"cluster {name!r}: gitops mode needs a remote")
            workdir = cluster.workdir or f"var/gitops/{name}-work"
            targets[name] = GitOpsCluster(name, remote=cluster.remote, workdir=workdir, branch=cluster.branch)
        elif cluster.mode == "direct":
            targets[name] = KubernetesCluster(name, api_client_for(cluster))
        else:
            raise ValueError(f"cluster {name!r}: mode must be direct or gitops, not {cluster.mode!r}")
    return targets


def _vault_options(settings: Settings) -> VaultOptions:
    vault = settings.vault
    return VaultOptions(
        kv_mount=vault.kv_mount, create_kv_mount=vault.create_kv_mount, max_versions=vault.max_versions,
        kubernetes_auth_mount=vault.kubernetes_auth_mount, enable_kubernetes_auth=vault.enable_kubernetes_auth,
        role_token_ttl=vault.role_token_ttl,
    )


def _check(probe: Any) -> str:
    try:
        probe()
    except GoldenPathError as exc:
        return exc.detail
    except Exception as exc:  # readiness reports, it does not raise
        return f"unreachable ({type(exc).__name__})"
    return "ok"
