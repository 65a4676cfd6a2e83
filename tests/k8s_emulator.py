"""A Kubernetes API for tests: kmock's KubernetesEmulator served over real HTTP from a background thread.

kmock 0.8 cannot parse the Namespace resource itself: `kmock._internal.parsing.parse_path` always reads
`/api/v1/namespaces/...` as a namespace prefix, so create/get/list/patch of Namespaces fail (500 or 404)
before any reaction can intercept them. `_patch_namespace_parsing` is the smallest fix: it routes
`/api/v1/namespaces[/<name>[/status|finalize]]` to the `namespaces` resource. It belongs upstream in kmock.
kmock has no server-side apply and no PUT; Golden Path converges with create + merge patch, which it serves.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import kmock
from kmock._internal import parsing

_WRITES = {"POST", "PATCH", "PUT", "DELETE"}


def _patch_namespace_parsing() -> None:
    if getattr(parsing.parse_path, "_goldenpath_fixed", False):
        return
    original = parsing.parse_path

    def parse_path(path: str) -> Any:
        parts = path.strip("/").split("/")
        if len(parts) >= 3 and parts[0] == "api" and parts[2] == "namespaces":
            rest = parts[3:]
            if not rest:
                return parsing.ParsedPath("", parts[1], "namespaces", None, None, None)
            if len(rest) == 1 or (len(rest) == 2 and rest[1] in {"status", "finalize"}):
                return parsing.ParsedPath("", parts[1], "namespaces", None, rest[0],
                                          rest[1] if len(rest) == 2 else None)
        return original(path)

    parse_path._goldenpath_fixed = True  # type: ignore[attr-defined]
    parsing.parse_path = parse_path


class KubeEmulator:
    def __init__(self) -> None:
        _patch_namespace_parsing()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.url = ""

    async def _main(self) -> None:
        async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
            emulator.resources.load_bundled()
            self.emulator, self.url = emulator, str(server.url).rstrip("/")
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._ready.set()
            await self._stop.wait()

    def start(self) -> KubeEmulator:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the Kubernetes emulator did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def requests(self) -> list[tuple[str, str]]:
        return [(str(r.method.value), str(r.url.path)) for r in list(self.emulator)]

    def writes(self, since: int = 0) -> list[tuple[str, str]]:
        return [r for r in self.requests()[since:] if r[0] in _WRITES]
