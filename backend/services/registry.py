"""Action discovery: built-in modules in scaffolder_actions and the `goldenpath.actions` entry points."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterable
from importlib.metadata import entry_points
from types import ModuleType

import scaffolder_actions
from backend.errors import NotFoundError
from backend.plugin_api import Action

ENTRY_POINT_GROUP = "goldenpath.actions"
ACTION_ID = re.compile(r"goldenpath(:[a-z0-9]+(-[a-z0-9]+)*){2,4}")  # fullmatch


class RegistryError(Exception):
    """The set of actions cannot be served (duplicate id, bad declaration)."""


class ActionRegistry:
    def __init__(self, actions: Iterable[Action]) -> None:
        self._actions: dict[str, Action] = {}
        for action in actions:
            if not isinstance(action, Action):
                raise RegistryError(f"{action!r} is not an Action")
            if not ACTION_ID.fullmatch(action.id):
                raise RegistryError(f"action id {action.id!r} must look like goldenpath:<system>:<noun>:<verb>")
            if action.id in self._actions:
                raise RegistryError(f"two actions declare the id {action.id!r}")
            self._actions[action.id] = action

    @classmethod
    def discover(cls) -> ActionRegistry:
        return cls([*builtin_actions(), *entry_point_actions()])

    def get(self, action_id: str) -> Action:
        try:
            return self._actions[action_id]
        except KeyError:
            raise NotFoundError(f"no action with id {action_id!r}") from None

    def all(self) -> list[Action]:
        return sorted(self._actions.values(), key=lambda action: action.id)


def builtin_actions() -> list[Action]:
    modules = pkgutil.iter_modules(scaffolder_actions.__path__, scaffolder_actions.__name__ + ".")
    return [_action_of(importlib.import_module(info.name)) for info in modules if not info.ispkg]


def entry_point_actions() -> list[Action]:
    found = []
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        loaded = entry.load()
        found.append(_action_of(loaded) if isinstance(loaded, ModuleType) else loaded)
    return found


def _action_of(module: ModuleType) -> Action:
    action = getattr(module, "ACTION", None)
    if not isinstance(action, Action):
        raise RegistryError(f"module {module.__name__} declares no ACTION = Action(...)")
    return action
