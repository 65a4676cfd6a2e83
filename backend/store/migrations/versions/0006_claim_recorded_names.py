"""Name claims for what the inventory already records: a database from before claims gives its services' names
to their recorded owners, so the first other team to ask after the upgrade cannot claim them.

Each inventory row claims its service's name; a secrets path, a namespace and a repository also claim their own
names (the other names Golden Path derives all contain the service name). Owners recorded in short form are
canonicalised; a name already claimed, or a row naming no service or no readable owner, claims nothing.

Revision ID: 0006
Revises: 0005
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from backend.ownership import canonical_ref

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_resources = sa.table("resources", sa.column("id", sa.Integer()), sa.column("kind", sa.String()),
                      sa.column("locator", sa.String()), sa.column("service", sa.String()),
                      sa.column("owner", sa.String()), sa.column("environment", sa.String()),
                      sa.column("attributes", sa.JSON()), sa.column("run_id", sa.String()))
_claims = sa.table("name_claims", sa.column("kind", sa.String()), sa.column("name", sa.String()),
                   sa.column("owner", sa.String()), sa.column("subject", sa.String()),
                   sa.column("run_id", sa.String()), sa.column("created_at", sa.String()))


def upgrade() -> None:
    bind = op.get_bind()
    held = {(kind, name) for kind, name in bind.execute(sa.select(_claims.c.kind, _claims.c.name))}
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    rows = bind.execute(sa.select(_resources).order_by(_resources.c.id)).all()
    for row in rows:  # oldest first: where old rows disagree, the first recorded owner keeps the name
        owner = _owner(row.owner)
        if owner is None or not row.service:
            continue
        wanted = [("service", row.service, row.service)]
        if row.kind == "vault.secrets-path" and row.environment:
            wanted.append(("vault.secrets-path", row.locator, f"{row.service}/{row.environment}"))
        if row.kind == "repository":
            wanted.append(("repository", row.locator, row.service))
        namespace = (row.attributes or {}).get("namespace") if row.kind == "kubernetes.namespace" else None
        if isinstance(namespace, str) and namespace:
            wanted.append(("kubernetes.namespace", namespace, row.service))
        for kind, name, subject in wanted:
            if (kind, name) in held:
                continue
            held.add((kind, name))
            bind.execute(_claims.insert().values(kind=kind, name=name, owner=owner, subject=subject,
                                                 run_id=row.run_id, created_at=now))


def _owner(recorded: str | None) -> str | None:
    if not recorded:
        return None
    try:
        return canonical_ref(recorded)
    except ValueError:
        return None


def downgrade() -> None:
    pass  # the claims stay: they are what the inventory already said
