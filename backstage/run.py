"""`make backstage`: a local Backstage backend (catalog, scaffolder, proxy, guest sign-in, MCP actions) wired to
`make run`'s Golden Path.

Installs the pinned packages of backstage/package-lock.json once (`npm ci` into ~/.cache/goldenpath-e2e, shared
with the end-to-end tests), keeps the tokens under ./var (mode 0600), and runs the backend with
backstage/app-config.yaml from backstage/ (its `file` locations are relative to that folder). The guest who signs
in is BACKSTAGE_GUEST_USER (default user:default/alice, of team-payments; org.yaml lists the others).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from backend.embedded import local_secret  # noqa: E402 - after the project root is importable
from backstage import npm_cache  # noqa: E402

HERE = ROOT / "backstage"
STATE = ROOT / "var"
DEFAULT_GUEST = "user:default/alice"


def environment() -> dict[str, str]:
    """What app-config.yaml refers to, with the tokens it needs (made on first use, kept in ./var)."""
    STATE.mkdir(exist_ok=True)
    goldenpath_port = os.environ.get("PORT", "7070")
    backstage_port = os.environ.get("BACKSTAGE_PORT", "7007")
    return {
        "BACKSTAGE_URL": f"http://127.0.0.1:{backstage_port}",
        "BACKSTAGE_LISTEN": f"127.0.0.1:{backstage_port}",
        "GOLDENPATH_URL": f"http://127.0.0.1:{goldenpath_port}",
        "GOLDENPATH_HOST": f"127.0.0.1:{goldenpath_port}",
        "BACKSTAGE_TOKEN": local_secret(STATE / "backstage-token")[0],
        "GOLDENPATH_BACKSTAGE_TOKEN": local_secret(STATE / "backstage-goldenpath-token")[0],
        "GOLDENPATH_TOKEN": os.environ.get("GOLDENPATH_TOKEN") or local_secret(STATE / "api-token")[0],
        "BACKSTAGE_GUEST_USER": os.environ.get("BACKSTAGE_GUEST_USER") or DEFAULT_GUEST,
    }


def main() -> None:
    target, how = npm_cache.installed(HERE, prefix="backstage")
    shutil.copy2(HERE / "index.js", target / "index.js")
    env = {**os.environ, **environment(), "NODE_ENV": "production"}
    print(f"Backstage packages: {how}", flush=True)
    actions = f"{env['BACKSTAGE_URL']}/api/scaffolder/v2/actions"
    guest = f"{env['BACKSTAGE_URL']}/api/auth/guest/refresh"
    print(f"Backstage backend on {env['BACKSTAGE_URL']}, wired to Golden Path on {env['GOLDENPATH_URL']}.\n"
          f"Your token for its API is in var/backstage-token (no person behind it: Golden Path lets it act for no "
          f"team):\n  curl -H \"Authorization: Bearer $(cat var/backstage-token)\" {actions}\n"
          f"Start tasks as {env['BACKSTAGE_GUEST_USER']} (BACKSTAGE_GUEST_USER) with a user token:\n"
          f"  curl -H 'X-Requested-With: XMLHttpRequest' {guest}   # .backstageIdentity.token", flush=True)
    os.chdir(HERE)
    os.execvpe("node", ["node", str(target / "index.js"), "--config", str(HERE / "app-config.yaml")], env)  # noqa: S606 - no shell wanted


if __name__ == "__main__":
    main()
