"""Read-only git smart HTTP for the local repository provider: `git clone <base>/git/<org>/<repo>.git`.

Pushes are refused: repositories change through actions (and their audit trail), not by pushing here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from dulwich.server import FileSystemBackend
from dulwich.web import make_wsgi_chain

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class _RootedBackend(FileSystemBackend):
    """dulwich passes '/org/repo.git': without the leading slash it resolves inside the root."""

    def open_repository(self, path: str | bytes) -> Any:
        text = path.decode() if isinstance(path, bytes) else path
        return super().open_repository(text.lstrip("/"))


def read_only_git_app(root: Path) -> WsgiApp:
    served: WsgiApp = make_wsgi_chain(_RootedBackend(str(root)))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        wants_push = "git-receive-pack" in environ.get("PATH_INFO", "") or \
            "service=git-receive-pack" in environ.get("QUERY_STRING", "")
        if wants_push:
            start_response("403 Forbidden", [("Content-Type", "text/plain")])
            return [b"pushes are not accepted here: change repositories through Golden Path actions\n"]
        return served(environ, start_response)

    return app
