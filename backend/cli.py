"""The `goldenpath` command: serve, actions list, run, audit verify|export."""

from __future__ import annotations

import dataclasses
import getpass
import json
import sys
from pathlib import Path
from typing import Any

import click
import yaml

from backend.api.reason_phrase import ReasonPhraseH11Protocol
from backend.app import Services, build_services, create_app
from backend.embedded import EmbeddedOpenBao, local_secret
from backend.errors import GoldenPathError
from backend.log_config import configure_logging
from backend.plugin_api import Requester
from backend.services.audit import export_jsonl, verify
from backend.services.runner import RunRequest
from backend.settings import Settings, StaticToken, load_settings

STATE_DIR = Path("var")


@click.group()
@click.option("--config", "config_path", envvar="GOLDENPATH_CONFIG", help="Path to goldenpath.yaml.")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None) -> None:
    """Golden Path: self-service provisioning for Backstage."""
    ctx.obj = load_settings(config_path)


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
    settings = _with_api_token(settings)
    services = build_services(settings)
    configure_logging(settings.log_level, services.redactor)
    click.echo(f"Golden Path on {settings.base_url}  (Swagger UI: {settings.base_url}/api/v1/ui/)")
    try:
        uvicorn.run(create_app(settings, services=services), host=settings.host, port=settings.port,
                    log_level="warning", access_log=False, http=ReasonPhraseH11Protocol)
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
    services = _local_services(settings)
    descriptions = services.action_descriptions()
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
            requester=Requester(user=f"user:default/{getpass.getuser()}", caller="cli"),
        ))
    except GoldenPathError as exc:
        click.echo(json.dumps(exc.to_problem(), indent=2), err=True)
        sys.exit(1)
    click.echo(json.dumps({k: record[k] for k in ("id", "status", "dryRun", "output", "changes")}, indent=2))


@cli.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
@click.pass_obj
def audit_verify(settings: Settings) -> None:
    """Recompute the hash chain; exit 1 and name the first tampered event if it breaks."""
    result = verify(_local_services(settings).stores.audit)
    if result.ok:
        click.echo(f"audit chain intact: {result.checked} events")
        return
    click.echo(f"audit chain broken at event {result.first_bad_seq}: {result.reason} "
               f"({result.checked} events verified before it)", err=True)
    sys.exit(1)


@audit.command("export")
@click.option("--output", "-o", type=click.File("w"), default="-", help="File to write (default stdout).")
@click.pass_obj
def audit_export(settings: Settings, output: Any) -> None:
    """Export every audit event as JSON Lines."""
    for line in export_jsonl(_local_services(settings).stores.audit):
        output.write(line)


def _local_services(settings: Settings) -> Services:
    services = build_services(settings)
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
    auth = dataclasses.replace(settings.auth, static_tokens=(StaticToken(name="generated", token=token),))
    return dataclasses.replace(settings, auth=auth)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
