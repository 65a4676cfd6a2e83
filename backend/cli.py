"""The `goldenpath` command: serve, db upgrade|status, actions list, run, reconcile, audit verify|checkpoint|export."""

from __future__ import annotations

import dataclasses
import getpass
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from backend.api.reason_phrase import ReasonPhraseH11Protocol
from backend.app import Services, build_services, create_app
from backend.audit_keys import AuditKeyError
from backend.embedded import EmbeddedOpenBao, local_secret
from backend.errors import GoldenPathError
from backend.log_config import configure_logging
from backend.plugin_api import Requester
from backend.services.audit import Verification, export_jsonl, verify
from backend.services.registry import ActionRegistry
from backend.services.runner import RunRequest
from backend.services.schema_export import describe
from backend.services.takeover import TakeoverSweeper
from backend.settings import Settings, SettingsError, StaticToken, load_settings
from backend.store.audit import AuditHeadError
from backend.store.database import Database, SchemaNotCurrent, head_revision

STATE_DIR = Path("var")
_log = logging.getLogger("goldenpath")


@click.group()
@click.option("--config", "config_path", envvar="GOLDENPATH_CONFIG", help="Path to goldenpath.yaml.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Golden Path: self-service provisioning for Backstage."""
    try:
        ctx.obj = load_settings(config_path)
    except SettingsError as exc:  # names the key and its source, never a value
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.option("--embedded-vault/--no-embedded-vault", default=True,
              help="Start an OpenBao dev server when VAULT_ADDR is unset (default on).")
@click.pass_obj
def serve(settings: Settings, embedded_vault: bool) -> None:
    """Serve the API (uvicorn) on the configured host and port."""
    import uvicorn

    bao = None
    if embedded_vault and not settings.vault.addr:
        STATE_DIR.mkdir(exist_ok=True)
        bao = EmbeddedOpenBao(log_path=STATE_DIR / "openbao.log").start()
        settings = dataclasses.replace(settings, vault=dataclasses.replace(
            settings.vault, addr=bao.addr, token=bao.token, enable_kubernetes_auth=True))
        click.echo(f"OpenBao dev server (in-memory) on {bao.addr}; log in {STATE_DIR / 'openbao.log'}")
        bao.watch(lambda status: _log.error(
            "the embedded OpenBao exited (status %s): every run that needs Vault fails, and /api/v1/readyz says "
            "so, until Golden Path is restarted (its in-memory secrets are gone with it)", status))
    settings = _with_api_token(settings)
    try:
        services = _local_services(settings)
        app = create_app(settings, services=services)
        sweeper = TakeoverSweeper(services.runner, interval=settings.runs.takeover_interval_seconds).start()
        reconciler = services.reconciler.start()
        click.echo(f"Golden Path on {settings.base_url}  (Swagger UI: {settings.base_url}/api/v1/ui/)")
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False,
                    http=ReasonPhraseH11Protocol)
        sweeper.stop()
        reconciler.stop()
    finally:
        if bao:
            bao.stop()


@cli.group()
def actions() -> None:
    """Inspect actions."""


@actions.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the full descriptions as JSON.")
@click.pass_obj
def list_actions(settings: Settings, as_json: bool) -> None:
    descriptions = [describe(action) for action in ActionRegistry.discover().all()]  # needs no database
    if as_json:
        click.echo(json.dumps(descriptions, indent=2))
        return
    for item in descriptions:
        click.echo(f"{item['id']}\t{item['title']}")


@cli.command()
@click.argument("action_id")
@click.option("--input", "input_file", required=True, type=click.File("r"), help="JSON or YAML input ('-' for stdin).")
@click.option("--dry-run", is_flag=True, help="Plan only: report what would change, write nothing.")
@click.option("--idempotency-key", default=None)
@click.pass_obj
def run(settings: Settings, action_id: str, input_file: Any, dry_run: bool, idempotency_key: str | None) -> None:
    """Run ACTION_ID in-process with the configured stores and backends."""
    services = _local_services(settings)
    data = yaml.safe_load(input_file.read()) or {}
    try:
        record = services.runner.run(RunRequest(
            action_id=action_id, input=data, dry_run=dry_run, idempotency_key=idempotency_key,
            # whoever runs the CLI holds the database and backend credentials: an operator, so admin; the OS
            # login is recorded as a claim, never as a verified person
            requester=Requester(user=None, caller="cli", claimed_user=f"user:default/{getpass.getuser()}",
                                admin=True),
        ))
    except GoldenPathError as exc:
        click.echo(json.dumps(exc.to_problem(), indent=2), err=True)
        sys.exit(1)
    click.echo(json.dumps({k: record[k] for k in ("id", "status", "dryRun", "output", "changes")}, indent=2))


@cli.command()
@click.option("--service", "only", multiple=True, help="Check only this service (repeatable); default: every one.")
@click.option("--fail-on-drift", is_flag=True, help="Exit 1 when a service is drifted, missing or foreign.")
@click.pass_obj
def reconcile(settings: Settings, only: tuple[str, ...], fail_on_drift: bool) -> None:
    """Check every service (or --service ones) against what Golden Path made, repair what `reconcile.repair`
    lists, store and print the result. Exit 3 when another replica is running a pass."""
    summary = _local_services(settings).reconciler.run_pass(only or None)
    if not summary.ran:
        click.echo("another replica is running a reconcile pass; not run", err=True)
        sys.exit(3)
    click.echo(json.dumps({"services": summary.services, "seconds": round(summary.seconds, 3),
                           "statuses": dict(sorted(summary.statuses.items())), "failed": summary.failed,
                           "repairs": [{"service": r.service, "desiredBy": r.desired_by, "runId": r.run_id,
                                        "outcome": r.outcome, "detail": r.detail} for r in summary.repairs]},
                          indent=2))
    if fail_on_drift and any(summary.statuses[s] for s in ("drifted", "missing", "foreign")):
        sys.exit(1)


@cli.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.pass_obj
def audit_verify(settings: Settings) -> None:
    """Check every event's MAC and link and the witness's checkpoints. Exit 1 naming the first tampered
    event and what was done (edited, missing, truncated, rewritten, forged-checkpoint...); 2 if it cannot check."""
    try:
        result = verify(_local_services(settings).stores.audit)
    except (GoldenPathError, AuditKeyError) as exc:  # Vault transit unreachable, a damaged key file
        click.echo(f"audit chain not verified: {exc}", err=True)
        sys.exit(2)
    if result.ok:
        click.echo(_intact(result))
        return
    where = f"at event {result.first_bad_seq}" if result.first_bad_seq else "in its witness"
    click.echo(f"audit chain broken {where} ({result.kind}): {result.reason} "
               f"({result.checked} events verified before it)", err=True)
    sys.exit(1)


@audit.command("checkpoint")
@click.pass_obj
def audit_checkpoint(settings: Settings) -> None:
    """Witness the chain head now (each append does it too; use it once after upgrading a legacy chain)."""
    try:
        checkpoint = _local_services(settings).stores.audit.checkpoint()
    except (GoldenPathError, AuditKeyError, AuditHeadError) as exc:  # transit unreachable, a damaged key or head
        click.echo(f"no checkpoint written: {exc}", err=True)
        sys.exit(2)
    click.echo(f"witnessed event {checkpoint.seq} ({checkpoint.hash}) with key {checkpoint.key_id}")


def _intact(result: Verification) -> str:
    legacy = f" ({result.legacy} legacy, unkeyed)" if result.legacy else ""
    witness = f"witness: {result.checkpoints} checkpoints, the latest of event {result.witnessed_seq}"
    if result.witnessed_seq < result.checked:
        witness += f"; events after {result.witnessed_seq} are not witnessed yet"
    return f"audit chain intact: {result.checked} events{legacy}; {witness}"


@audit.command("export")
@click.option("--output", "-o", type=click.File("w"), default="-", help="File to write (default stdout).")
@click.pass_obj
def audit_export(settings: Settings, output: Any) -> None:
    """Export every audit event as JSON Lines."""
    for line in export_jsonl(_local_services(settings).stores.audit):
        output.write(line)


@cli.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(settings: Settings) -> None:
    """Upgrade the schema to this version's (under a database lock: replicas running it at once take turns).
    Run it once before serving a new version: `make run`, the container's start and the Kubernetes Job do."""
    before, after = Database(settings.database_url).migrate()
    click.echo(f"database schema: {before or 'empty'} -> {after}" if before != after
               else f"database schema: {after}, already current")


@db.command("status")
@click.pass_obj
def db_status(settings: Settings) -> None:
    """Exit 0 when the schema is this version's, 1 (saying how to upgrade) when it is not."""
    try:
        Database(settings.database_url).require_current()
    except SchemaNotCurrent as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    click.echo(f"database schema: {head_revision()}, current")


def _local_services(settings: Settings) -> Services:
    try:
        services = build_services(settings)
    except SchemaNotCurrent as exc:
        click.echo(f"Golden Path cannot start: {exc}", err=True)
        sys.exit(2)
    configure_logging(settings.log_level, services.redactor)
    return services


def _with_api_token(settings: Settings) -> Settings:
    """Without a configured token, generate one on first start, keep it in var/api-token (0600)."""
    if settings.auth.static_tokens:
        return settings
    token_file = STATE_DIR / "api-token"
    STATE_DIR.mkdir(exist_ok=True)
    token, created = local_secret(token_file)
    if created:
        click.echo(f"API token (printed once, kept in {token_file}): {token}")
    else:
        click.echo(f"API token: the one generated earlier, in {token_file}")
    click.echo("This token is an admin token: it may act for every owner. Give teams tokens with their groups "
               "(auth.static_tokens[].groups), or let Backstage call with its users' identity.")
    auth = dataclasses.replace(settings.auth, static_tokens=(
        StaticToken(name="generated", token=token, admin=True),))
    return dataclasses.replace(settings, auth=auth)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
