"""Guarantees of skeleton rendering (backend/skeletons.py), on real skeleton directories: rendering is sandboxed (a
template cannot reach Python's internals), strict (an undefined value fails instead of rendering empty), user
values quoted with `yaml_str` stay one YAML/JSON/TOML string, and no file name renders outside the repository."""

from __future__ import annotations

import json
import secrets
import tomllib
from pathlib import Path

import pytest
import yaml

from backend.errors import InputError, NotFoundError
from backend.skeletons import load_skeleton, render_skeleton

TEMPLATES = Path(__file__).resolve().parents[2] / "catalog-info" / "templates"


def make_skeleton(root: Path, files: dict[str, str | bytes], name: str = "tiny") -> Path:
    folder = root / name
    (folder / "skeleton").mkdir(parents=True)
    (folder / "skeleton.yaml").write_text(f"name: {name}\nversion: 2.0.0\n", encoding="utf-8")
    for path, content in files.items():
        target = folder / "skeleton" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return root


def render(tmp_path: Path, files: dict[str, str | bytes], **values: str) -> dict[str, bytes]:
    root = make_skeleton(tmp_path / secrets.token_hex(4), files)
    return render_skeleton(load_skeleton(root, "tiny"), values)


@pytest.mark.parametrize("escape", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ name.__class__.__base__.__subclasses__() }}",
    "{{ lipsum.__globals__['os'] }}",
])
def test_a_template_cannot_reach_pythons_internals(tmp_path: Path, escape: str) -> None:
    with pytest.raises(InputError) as refused:
        render(tmp_path, {"README.md": escape}, name="svc")
    assert refused.value.errors[0].field == "values"


def test_an_undefined_value_fails_instead_of_rendering_empty(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="undefined"):
        render(tmp_path, {"README.md": "owner: {{ owner }}\n"}, name="svc")
    with pytest.raises(InputError, match="undefined"):
        render(tmp_path, {"{{ folder }}/x.txt": "x"}, name="svc")


EVIL = 'x"\nowner: group:default/mallory\n---\nkind: Secret\n# \\ \' ]} = [tool]'


def test_a_quoted_value_stays_one_string_in_yaml_json_and_toml(tmp_path: Path) -> None:
    files = render(tmp_path, {
        "a.yaml": "description: {{ description | yaml_str }}\nowner: group:default/team-payments\n",
        "a.json": '{"description": {{ description | yaml_str }}}\n',
        "a.toml": "[project]\ndescription = {{ description | yaml_str }}\n"}, description=EVIL)
    assert list(yaml.safe_load_all(files["a.yaml"])) == [{"description": EVIL,
                                                          "owner": "group:default/team-payments"}]
    assert json.loads(files["a.json"]) == {"description": EVIL}
    assert tomllib.loads(files["a.toml"].decode()) == {"project": {"description": EVIL}}


def test_a_value_is_text_never_a_template(tmp_path: Path) -> None:
    files = render(tmp_path, {"README.md": "# {{ description }}\n"}, description="{{ 7*7 }} {% if 1 %}x{% endif %}")
    assert files["README.md"] == b"# {{ 7*7 }} {% if 1 %}x{% endif %}\n"


@pytest.mark.parametrize("where", ["../outside", "/etc/cron.d/x", "a//b", "a/../../b", "..", ""])
def test_no_file_name_renders_outside_the_repository(tmp_path: Path, where: str) -> None:
    with pytest.raises(InputError, match="unsafe path"):
        render(tmp_path, {"{{ target }}/README.md": "x"}, target=where)
    with pytest.raises(InputError, match="unsafe path"):
        render(tmp_path, {"{{ target }}": "x"}, target=where)


def test_file_names_render_and_binary_files_are_copied(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\xff{{ name }}"
    files = render(tmp_path, {"src/{{ name }}/__init__.py": "NAME = {{ name | yaml_str }}\n", "logo.png": png},
                   name="payments")
    assert files == {"src/payments/__init__.py": b'NAME = "payments"\n', "logo.png": png}


@pytest.mark.parametrize("name", ["../golden-path-service/skeleton", ".hidden", "missing"])
def test_only_a_skeleton_of_the_templates_directory_is_loaded(tmp_path: Path, name: str) -> None:
    make_skeleton(tmp_path / "elsewhere", {"x": "x"}, name="hidden")
    (tmp_path / ".hidden").symlink_to(tmp_path / "elsewhere" / "hidden")
    with pytest.raises(NotFoundError):
        load_skeleton(tmp_path, name)
    assert load_skeleton(TEMPLATES, "golden-path-service").name == "golden-path-service"
