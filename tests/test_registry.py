"""Action discovery: built-ins, an out-of-tree package installed with pip, and refusal of duplicate ids."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backend.services.registry import ActionRegistry, RegistryError, builtin_actions


def test_builtin_actions_are_found() -> None:
    assert "goldenpath:vault:secrets-path:create" in [a.id for a in builtin_actions()]


def test_an_installed_out_of_tree_action_is_listed(installed: Path) -> None:
    ids = [a.id for a in ActionRegistry.discover().all()]
    assert "goldenpath:example:echo" in ids and "goldenpath:vault:secrets-path:create" in ids


def test_the_cli_lists_the_out_of_tree_action(installed: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(installed), "GOLDENPATH_DATABASE_URL": "sqlite:///:memory:"}
    out = subprocess.run([sys.executable, "-m", "backend.cli", "actions", "list"], check=True, capture_output=True,
                         text=True, env=env, cwd=Path(__file__).parent.parent).stdout
    assert "goldenpath:example:echo\tEcho" in out


def test_duplicate_ids_are_refused() -> None:
    action = builtin_actions()[0]
    with pytest.raises(RegistryError, match="two actions declare"):
        ActionRegistry([action, dataclasses.replace(action, title="Impostor")])


def test_ids_outside_the_goldenpath_namespace_are_refused() -> None:
    action = builtin_actions()[0]
    with pytest.raises(RegistryError, match="must look like"):
        ActionRegistry([dataclasses.replace(action, id="acme:vault:create")])
