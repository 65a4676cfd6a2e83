"""docs/guarantees.md is the auditor's map: every mutant of the catalogue and every guarantee it breaks is on it,
and every mutant it names exists (a renamed or dropped mutant would leave the map lying)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "guarantees.md").read_text(encoding="utf-8")
CATALOGUE = [entry for path in sorted((ROOT / "tests" / "mutants" / "catalogue").glob("*.yaml"))
             for entry in yaml.safe_load(path.read_text(encoding="utf-8"))]


def table_rows() -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in DOC.splitlines() if line.startswith("| ") and not line.startswith("| id ")]


def test_every_guarantee_a_mutant_breaks_is_on_the_page() -> None:
    on_page = {row[0] for row in table_rows()}
    missing = sorted({entry["guarantee"] for entry in CATALOGUE} - on_page)
    assert not missing, f"guarantees with mutants but no row in docs/guarantees.md: {missing}"


def test_every_mutant_is_on_the_page_and_every_mutant_named_exists() -> None:
    ids = {entry["id"] for entry in CATALOGUE}
    named = {name for row in table_rows() if len(row) >= 4
             for name in re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)+", row[-1])}
    named |= set(re.findall(r"\| `([a-z0-9-]+)`", DOC))  # the table of the review's samples
    assert not sorted(ids - named), f"mutants missing from docs/guarantees.md: {sorted(ids - named)}"
    assert not sorted(named - ids), f"docs/guarantees.md names mutants that do not exist: {sorted(named - ids)}"


def test_the_page_states_the_catalogues_size() -> None:
    assert f"**Catalogue:** {len(CATALOGUE)} mutants" in DOC
