"""Git objects as git hashes them (SHA-1 of the canonical encoding), so the emulator's SHAs are real ones."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

TREE_MODE = "040000"


@dataclass(frozen=True)
class TreeEntry:
    name: str
    mode: str
    type: str  # blob | tree | commit
    sha: str


@dataclass(frozen=True)
class Commit:
    tree: str
    parents: tuple[str, ...]
    message: str
    author: dict[str, str]
    committer: dict[str, str]

    @property
    def encoded(self) -> bytes:
        lines = [f"tree {self.tree}", *(f"parent {p}" for p in self.parents), f"author {_signature(self.author)}",
                 f"committer {_signature(self.committer)}", "", self.message]
        return "\n".join(lines).encode()

    @property
    def sha(self) -> str:
        return _hash(b"commit", self.encoded)


@dataclass
class ObjectStore:
    blobs: dict[str, bytes] = field(default_factory=dict)
    trees: dict[str, tuple[TreeEntry, ...]] = field(default_factory=dict)
    commits: dict[str, Commit] = field(default_factory=dict)

    def put_blob(self, content: bytes) -> str:
        sha = _hash(b"blob", content)
        self.blobs[sha] = content
        return sha

    def put_tree(self, entries: list[TreeEntry]) -> str:
        ordered = tuple(sorted(entries, key=lambda e: e.name + ("/" if e.type == "tree" else "")))
        body = b"".join(f"{e.mode.lstrip('0')} {e.name}".encode() + b"\0" + bytes.fromhex(e.sha) for e in ordered)
        sha = _hash(b"tree", body)
        self.trees[sha] = ordered
        return sha

    def put_commit(self, commit: Commit) -> str:
        self.commits[commit.sha] = commit
        return commit.sha

    def ancestors(self, sha: str) -> set[str]:
        """The commit and every commit it descends from."""
        seen, todo = set(), [sha]
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(self.commits[current].parents)
        return seen

    def files(self, tree_sha: str, prefix: str = "") -> dict[str, tuple[str, str]]:
        """path -> (mode, blob sha), recursively."""
        out: dict[str, tuple[str, str]] = {}
        for entry in self.trees[tree_sha]:
            path = f"{prefix}{entry.name}"
            if entry.type == "tree":
                out.update(self.files(entry.sha, f"{path}/"))
            else:
                out[path] = (entry.mode, entry.sha)
        return out

    def build_tree(self, files: dict[str, tuple[str, str]]) -> str:
        """The root tree of `files` (path -> (mode, blob sha)), writing every subtree."""
        nested: dict[str, Any] = {}
        for path, leaf in files.items():
            node = nested
            *dirs, name = path.split("/")
            for part in dirs:
                node = node.setdefault(part, {})
            node[name] = leaf
        return self._write(nested)

    def _write(self, node: dict[str, Any]) -> str:
        entries = []
        for name, value in node.items():
            if isinstance(value, dict):
                entries.append(TreeEntry(name, TREE_MODE, "tree", self._write(value)))
            else:
                mode, sha = value
                entries.append(TreeEntry(name, mode, "commit" if mode == "160000" else "blob", sha))
        return self.put_tree(entries)


def _hash(kind: bytes, body: bytes) -> str:
    return hashlib.sha1(kind + b" %d\0" % len(body) + body, usedforsecurity=False).hexdigest()


def _signature(person: dict[str, str]) -> str:
    return f"{person['name']} <{person['email']}> {person.get('timestamp', '0 +0000')}"
