"""The container's entry point (`uvicorn --factory backend.app:app_from_env`) logs as `goldenpath serve` does."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from backend.app import app_from_env
from backend.store.database import Database, SchemaNotCurrent
from tests.conftest import API_TOKEN


def test_the_factory_configures_redacted_json_logs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in {"GOLDENPATH_DATABASE_URL": f"sqlite:///{tmp_path}/gp.db", "GOLDENPATH_TOKEN": API_TOKEN,
                        "GOLDENPATH_AUDIT__KEY_FILE": str(tmp_path / "audit.key"),
                        "GOLDENPATH_AUDIT__WITNESS_FILE": str(tmp_path / "witness.jsonl"),
                        "GOLDENPATH_REPOSITORIES__LOCAL_ROOT": str(tmp_path / "git")}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOLDENPATH_CONFIG", raising=False)
    root = logging.getLogger()
    handlers = list(root.handlers)
    try:
        with pytest.raises(SchemaNotCurrent, match="goldenpath db upgrade"):  # serving never migrates
            app_from_env()
        Database(f"sqlite:///{tmp_path}/gp.db").migrate()
        app_from_env()
        logging.getLogger("goldenpath.test").warning("token %s in a message", API_TOKEN)
        [line] = [json.loads(x) for x in capsys.readouterr().err.splitlines() if "in a message" in x]
        assert line["event"] == "token *** in a message" and line["level"] == "warning"
    finally:
        root.handlers = handlers
