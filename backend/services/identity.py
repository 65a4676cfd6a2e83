"""Who a request acts as: the verified person and the groups they may act for, or the credential's own groups.

A person's groups are their `memberOf` relations in Backstage's catalog, cached briefly (a membership removed in
Backstage stops counting within `auth.membership_cache_seconds`); a person in an admin group may act for every
owner. A claimed user (the REST API's `context.user`) is carried along as a claim and grants nothing.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

from backend.errors import NotAllowedError
from backend.plugin_api import Requester
from backend.services.auth import Principal


class GroupDirectory(Protocol):
    def groups_of(self, user_ref: str) -> frozenset[str]: ...


class Identities:
    def __init__(self, directory: GroupDirectory | None, *, admin_groups: tuple[str, ...],
                 cache_seconds: float) -> None:
        self._directory = directory
        self._admin_groups = frozenset(admin_groups)
        self._cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def requester(self, principal: Principal, *, claimed_user: str | None = None) -> Requester:
        if principal.user is None:
            return Requester(user=None, caller=principal.caller, claimed_user=claimed_user,
                             groups=principal.groups, admin=principal.admin)
        groups = self.groups_of(principal.user)
        return Requester(user=principal.user, caller=principal.caller, claimed_user=claimed_user, groups=groups,
                         admin=bool(groups & self._admin_groups))

    def groups_of(self, user: str) -> frozenset[str]:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(user)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        if self._directory is None:
            raise NotAllowedError(f"Golden Path cannot read the groups of {user}: no Backstage catalog token is "
                                  "configured (auth.catalog_token), so a person can act for no owner",
                                  rule="membership-unknown")
        groups = self._directory.groups_of(user)
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: a flood of distinct users cannot grow it for ever
                self._cache.clear()
            self._cache[user] = (now, groups)
        return groups
