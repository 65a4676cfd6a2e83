"""GitHub's page-number pagination: `per_page` (30 unless asked, at most 100) and `page` select the slice, and a
`Link` header names the other pages the way GitHub writes it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

DEFAULT_PER_PAGE = 30
MAX_PER_PAGE = 100


@dataclass
class Page:
    """A handler's whole list; the emulator answers the slice the request asks for."""

    items: list[Any]


def paginate(items: list[Any], url: str, query: str) -> tuple[list[Any], dict[str, str]]:
    """The slice of `items` that `query` asks for and the Link header (none when everything fits on one page)."""
    pairs = parse_qsl(query, keep_blank_values=True)
    asked = dict(pairs)
    per_page = min(MAX_PER_PAGE, max(1, _number(asked.get("per_page"), DEFAULT_PER_PAGE)))
    page = max(1, _number(asked.get("page"), 1))
    last = max(1, -(-len(items) // per_page))
    links = [(rel, number) for rel, number, wanted in (
        ("prev", page - 1, page > 1), ("next", page + 1, page < last), ("last", last, page < last),
        ("first", 1, page > 1)) if wanted]
    header = ", ".join(f'<{url}?{_with_page(pairs, number)}>; rel="{rel}"' for rel, number in links)
    return items[(page - 1) * per_page:page * per_page], ({"Link": header} if header else {})


def _number(text: str | None, default: int) -> int:
    return int(text) if text is not None and text.isdigit() else default


def _with_page(pairs: list[tuple[str, str]], page: int) -> str:
    if any(key == "page" for key, _ in pairs):
        return urlencode([(key, str(page) if key == "page" else value) for key, value in pairs])
    return urlencode([*pairs, ("page", str(page))])
