"""Golden-path skeletons: a directory of Jinja2 templates (file names too) rendered server-side.

Rendering is sandboxed, fails on any undefined value, and offers `yaml_str` to quote user values safely
in YAML, TOML or JSON (a JSON string is valid in all three), so input can never add keys or documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from backend.errors import InputError, NotFoundError

MANIFEST = "skeleton.yaml"


@dataclass(frozen=True)
class Skeleton:
    name: str
    version: str
    root: Path

    def files(self) -> list[Path]:
        return sorted(p for p in self.root.rglob("*") if p.is_file())


def load_skeleton(templates_dir: Path, name: str) -> Skeleton:
    folder = templates_dir / name
    if "/" in name or name.startswith(".") or not (folder / MANIFEST).is_file():
        raise NotFoundError(f"no skeleton named {name!r}")
    meta = yaml.safe_load((folder / MANIFEST).read_text(encoding="utf-8")) or {}
    return Skeleton(name=str(meta.get("name", name)), version=str(meta.get("version", "0")), root=folder / "skeleton")


def render_skeleton(skeleton: Skeleton, values: dict[str, Any]) -> dict[str, bytes]:
    env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    env.filters["yaml_str"] = lambda value: json.dumps(str(value))
    context = {**values, "skeleton": skeleton.name, "skeleton_version": skeleton.version}
    rendered: dict[str, bytes] = {}
    for source in skeleton.files():
        relative = source.relative_to(skeleton.root).as_posix()
        try:
            path = env.from_string(relative).render(context)
            raw = source.read_bytes()
            try:
                content = env.from_string(raw.decode("utf-8")).render(context).encode("utf-8")
            except UnicodeDecodeError:
                content = raw  # binary files are copied as they are
        except TemplateError as exc:
            raise InputError.for_field("values", f"skeleton {skeleton.name} file {relative}: {exc}") from None
        rendered[_safe_path(path, relative)] = content
    return rendered


def _safe_path(path: str, source: str) -> str:
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or any(part == "" for part in path.split("/")):
        raise InputError.for_field("values", f"skeleton file {source} renders to an unsafe path {path!r}")
    return pure.as_posix()
