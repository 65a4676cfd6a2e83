"""Validators for action input: patterns the whole value must match, one-line free text, and a scan of free text
for credentials with detect-secrets' detectors, in-process. Their messages name the problem, never the value.

Depends on marshmallow, `re` and detect-secrets only, so any layer may use it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from marshmallow import ValidationError, validate

CREDENTIAL_RULE = "no-credentials"
_CREDENTIAL_MESSAGE = "looks like a credential ({kind}); remove it"
_CREDENTIAL_PREFIX = _CREDENTIAL_MESSAGE.split("(", 1)[0]

# C0 and C1 controls (NUL, newline, tab, ESC, DEL, ...), the Unicode line and paragraph separators, the bidi
# embedding/override/isolate marks that make text display other than it reads, and lone surrogates (which no
# database, git or YAML writer can encode).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


class FullMatch(validate.Regexp):
    """A pattern the whole value must match, and a maximum length; apispec publishes both (`pattern`,
    `maxLength`) in the JSON Schema.

    `Regexp` uses `re.match`, where `$` also matches before a trailing newline: `fullmatch` does not. Write the
    pattern in the ECMA-262 subset every JSON Schema validator reads (`^...$`, no `\\Z`), so Backstage checks the
    same rule; the length is checked first, so no pattern runs over a huge value.
    """

    def __init__(self, regex: str, *, max_length: int, error: str | None = None) -> None:
        super().__init__(regex, error=error)
        self._whole = re.compile(regex)
        self.min, self.max, self.equal = None, max_length, None  # read by apispec as minLength/maxLength

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        if len(value) > self.max:
            raise ValidationError(f"must be at most {self.max} characters")
        if self._whole.fullmatch(value) is None:
            raise ValidationError(self.error.format(input="the value", regex=self.regex.pattern))
        return value


class FreeText(validate.Validator):
    """Text people write (a description, a title, a status-check name, a skeleton value): one line, bounded, no
    control characters and nothing that looks like a credential, because it is copied into run records, the
    inventory, commits, rendered files and the public catalog feed. apispec publishes the bounds."""

    def __init__(self, *, max_length: int, min_length: int | None = None) -> None:
        self.min, self.max, self.equal = min_length, max_length, None

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            raise ValidationError("must be a string")
        if self.min is not None and len(value) < self.min:
            raise ValidationError("must not be empty" if self.min == 1 else f"must be at least {self.min} characters")
        if len(value) > self.max:
            raise ValidationError(f"must be at most {self.max} characters")
        if found := _CONTROL.search(value):
            raise ValidationError(f"must be one line without control characters (U+{ord(found.group()):04X} at "
                                  f"position {found.start()})")
        if kind := scanner().find(value):
            raise ValidationError(credential_message(kind))
        return value

    def _repr_args(self) -> str:
        return f"min_length={self.min!r}, max_length={self.max!r}"


def credential_message(kind: str) -> str:
    return _CREDENTIAL_MESSAGE.format(kind=kind)


def is_credential_message(message: str) -> bool:
    return message.startswith(_CREDENTIAL_PREFIX)


def field_messages(messages: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """marshmallow's nested error messages as (dotted field path, message): `links.0.title`, `values.k.value`."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = "input" if key == "_schema" and not prefix else f"{prefix}{key}"
            yield from field_messages(value, f"{name}.")
        return
    for message in messages if isinstance(messages, list) else [messages]:
        yield prefix.rstrip(".") or "input", str(message)


# -- the credential scanner ---------------------------------------------------------------------------------------

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
# the default-ignorable code points: they show as nothing
_INVISIBLE = re.compile(r"[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
                        r"\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\U0001d173-\U0001d17a\U000e0000-\U000e0fff]")
_MAX_URL_NESTING = 3
_LONG_WORD = re.compile(r"\w{65,}")
_TOKEN = re.compile(r"[A-Za-z0-9+/=_-]{20,}")
_HEX = re.compile(r"[0-9A-Fa-f]+")
# detect-secrets' keyword list has no "token"; assignments to one are as telling as to a password
_TOKEN_ASSIGNMENT = re.compile(r"(?i)\b[a-z_]*token\s*[:=]\s*['\"]?([^\s'\"]+)")
# detect-secrets' basic-auth rule skips passwords with RFC 3986 sub-delimiters ('!', '$', ...), which userinfo allows
_URL_PASSWORD = re.compile(r"://[^/?#@\s:]*:[^/?#@\s]+@")
_SPECIAL = frozenset("!@#$%^&*+=?~")
_SKIPPED_DETECTORS = frozenset({"Public IP (ipv4)"})  # an address in a description is not a credential


@dataclass(frozen=True)
class _Entropy:
    kind: str
    limit: float
    measure: Callable[[str], float]


class CredentialScanner:
    """detect-secrets' detectors over one string, in-process and without its global settings: the known formats
    (GitHub, GitLab, AWS, private keys, JWTs, Slack, Stripe, basic auth in a URL, ...), keyword assignments
    (`password=...`, `api_key: ...`, `token=...`) whose value looks like a value, and long high-entropy strings
    outside URLs (a URL's random-looking ids are not credentials; its user info and query still are)."""

    def __init__(self) -> None:
        from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
        from detect_secrets.filters import heuristic
        from detect_secrets.plugins.base import RegexBasedDetector
        from detect_secrets.plugins.high_entropy_strings import Base64HighEntropyString, HexHighEntropyString
        from detect_secrets.plugins.keyword import (
            CONFIG_DENYLIST_REGEX_TO_GROUP,
            FOLLOWED_BY_QUOTES_AND_SEMICOLON_REGEX,
            KeywordDetector,
        )

        plugins: dict[str, type[Any]] = get_mapping_from_secret_type_to_class()
        self._formats = [plugin() for kind, plugin in sorted(plugins.items())
                         if issubclass(plugin, RegexBasedDetector) and kind not in _SKIPPED_DETECTORS]
        self._keyword = KeywordDetector()
        # `key: value`, `key = value`, quoted or not; not its `key..."value";` rule for code, which is slow
        # (about 0.1 s over a 1,000-character line) and adds nothing for prose
        self._keyword_rules = {rule: group for rule, group in CONFIG_DENYLIST_REGEX_TO_GROUP.items()
                               if rule is not FOLLOWED_BY_QUOTES_AND_SEMICOLON_REGEX}
        base64, hexadecimal = Base64HighEntropyString(), HexHighEntropyString()
        self._base64 = _Entropy(str(base64.secret_type), base64.entropy_limit, base64.calculate_shannon_entropy)
        self._hex = _Entropy(str(hexadecimal.secret_type), hexadecimal.entropy_limit,
                             hexadecimal.calculate_shannon_entropy)
        self._harmless: tuple[Callable[[str], bool], ...] = (
            heuristic.is_sequential_string, heuristic.is_potential_uuid, heuristic.is_templated_secret,
            heuristic.is_prefixed_with_dollar_sign)

    def find(self, text: str) -> str | None:
        """The kind of the first credential in `text` ("GitHub Token", ...), or None. Also read as it displays:
        without invisible format characters (a zero-width space or a soft hyphen splits a token for a scanner, not
        for whoever copies it) and with compatibility forms folded (full-width letters)."""
        kind = self._find(text)
        shown = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
        return kind if kind is not None or shown == text else self._find(shown)

    def _find(self, text: str) -> str | None:
        for detector in self._formats:
            if next(iter(detector.analyze_string(text)), None) is not None:
                return str(detector.secret_type)
        if _URL_PASSWORD.search(text):
            return "Basic Auth Credentials"
        if any(self._is_value(value) for value in self._assigned_values(text)):
            return str(self._keyword.secret_type)
        return self._high_entropy(_URL.sub(_url_secrets, text))

    def _assigned_values(self, text: str) -> Iterator[str]:
        # The keyword rules read `<keyword>\w*` and backtrack over the rest of the word at each keyword in it, so
        # a long word of keywords ("pwdpwd...") costs quadratic time; keys are short: read a long word's last 64.
        text = _LONG_WORD.sub(lambda word: word.group()[-64:], text)
        yield from self._keyword.analyze_string(text, denylist_regex_to_group=self._keyword_rules)
        yield from (match.group(1) for match in _TOKEN_ASSIGNMENT.finditer(text))

    def _is_value(self, assigned: str) -> bool:
        """`password: see the vault` assigns prose, `password=hunter2` a value: the first word, at least six
        characters, with letters and a digit or a symbol a path or a sentence does not use."""
        words = assigned.split()
        word = words[0].strip("'\"`.,;:)]}") if words else ""
        has_letter = any(c.isalpha() for c in word)
        has_other = any(c.isdigit() or c in _SPECIAL for c in word)
        return len(word) >= 6 and has_letter and has_other and not self._is_harmless(word)

    def _high_entropy(self, text: str) -> str | None:
        for token in _TOKEN.findall(text):
            measure = self._hex if _HEX.fullmatch(token) else self._base64
            if measure.measure(token) > measure.limit and not self._is_harmless(token):
                return measure.kind
        return None

    def _is_harmless(self, candidate: str) -> bool:
        return any(check(candidate) for check in self._harmless)


def _url_secrets(url: re.Match[str], depth: int = 0) -> str:
    """What of a URL can hold a credential: its user info and its query's (and fragment's) values; not its host
    and path, whose random-looking ids are not credentials (but a URL inside the path is read the same way)."""
    try:
        parts = urlsplit(url.group())
        user, password = parts.username, parts.password
    except ValueError:  # e.g. a malformed IPv6 host: the whole URL, then
        return f" {url.group()} "
    values = [v for query in (parts.query, parts.fragment) for _, v in parse_qsl(query, keep_blank_values=True)]
    nested = _URL.search(parts.path) if depth < _MAX_URL_NESTING else None
    inner = _URL.sub(lambda m: _url_secrets(m, depth + 1), parts.path[nested.start():]) if nested else ""
    return " " + " ".join(unquote(v) for v in (user, password, *values, inner) if v) + " "


@cache
def scanner() -> CredentialScanner:
    """The scanner, built on first use (about 0.1 s: detect-secrets loads its plugins) and shared after."""
    return CredentialScanner()

