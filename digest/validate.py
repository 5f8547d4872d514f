"""Checking TOML tables against declared fields, with errors that name the file, line and key.

Config utilities only: no business logic, no I/O. `config.py` and `profiles.py`
declare their fields with `Field` and the checkers below; `read_table` applies them
and collects every problem instead of stopping at the first.

`tomllib` reports no positions for values, so `TomlLines` finds the line of each
table and key by reading the source text: headers, dotted keys and inline tables.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from digest.models import Problem

Checker = Callable[[Any], Any]


class Invalid(ValueError):
    """Raised by a checker: the message says what is wrong with the value."""


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()


@dataclass(frozen=True, slots=True)
class Field:
    """One key of a table: how its value is checked, and its default (or `REQUIRED`).

    `attribute` names the dataclass field the value goes to, when it differs from the key.
    A callable `factory` gives the default afresh each time it is needed.
    """

    check: Checker
    default: Any = REQUIRED
    attribute: str = ""
    factory: Callable[[], Any] | None = None

    def default_value(self) -> Any:
        return self.factory() if self.factory is not None else self.default


def fields_of(
    cls: type,
    checks: Mapping[str, Checker],
    *,
    keys: Mapping[str, str] | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> dict[str, Field]:
    """The keys of a table whose values become the dataclass `cls`: one per entry of `checks`
    (attribute name -> checker), with the dataclass's own default, so a default is written
    once. `keys` renames keys (attribute -> TOML key); `defaults` gives the few keys whose
    default the dataclass cannot state (e.g. None until a later rule fills it in)."""
    declared = {f.name: f for f in dataclasses.fields(cls)}
    table = {}
    for attribute, check in checks.items():
        spec = declared[attribute]
        key = (keys or {}).get(attribute, attribute)
        if defaults and attribute in defaults:
            table[key] = Field(check, defaults[attribute], attribute)
        elif spec.default_factory is not dataclasses.MISSING:
            table[key] = Field(check, attribute=attribute, factory=spec.default_factory)
        elif spec.default is not dataclasses.MISSING:
            table[key] = Field(check, spec.default, attribute)
        else:
            table[key] = Field(check, attribute=attribute)
    return table


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Strings, so that brackets, '#' and '=' inside them are not read as syntax. A multi-line
# string may end in up to two more quotes than its delimiter (`"""a"""""` is `a""`).
_STRING = re.compile(r'"""(?:[^\\]|\\.)*?"""(?!")|\'\'\'.*?\'\'\'(?!\')|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'', re.S)
_BARE_VALUE = re.compile(r"[^,\]}#\n]+")  # numbers, booleans, dates: up to the next delimiter
_BLANK = re.compile(r"(?:[ \t]|#[^\n]*)*")
_BLANK_LINES = re.compile(r"(?:[ \t\r\n]|#[^\n]*)*")


TablePath = tuple[str | int, ...]
"""Where a table sits: `("digest",)`, `("profiles", 0)` for the first `[[profiles]]`."""
KeyPath = tuple[TablePath, str]


class TomlLines:
    """Line numbers of tables and keys in a TOML text.

    Tables are addressed as tuples of keys and array indexes: `("digest",)`, `("profiles", 0)`
    for the first `[[profiles]]` (or the first table of `profiles = [{...}]`); keys as
    `(table, key)`. Headers, dotted keys (`digest.site_url = ...`, `[profiles.x]`) and
    inline tables are followed; a table opened by a dotted key or an inline table starts on
    that key's line. The text must be valid TOML (tomllib has read it already).
    """

    def __init__(self, text: str) -> None:
        self._tables: dict[TablePath, int] = {}
        self._keys: dict[KeyPath, int] = {}
        self._arrays: dict[TablePath, int] = {}  # [[array]] tables seen so far, by path
        self._text = text
        self._pos = 0
        self._line = 1
        table: TablePath = ()
        while self._skip(newlines=True):
            start = self._pos
            if self._text.startswith("[", self._pos):
                table = self._header()
            else:
                self._value(self._dotted_key(table))
            if self._pos == start:  # not TOML after all: never loop on it
                self._advance(1)

    def table(self, table: TablePath) -> int:
        return self._tables.get(table, 0)

    def key(self, table: TablePath, key: str) -> int:
        return self._keys.get((table, key)) or self.table(table)

    def _header(self) -> TablePath:
        line = self._line
        array = self._text.startswith("[[", self._pos)
        self._advance(2 if array else 1)
        path: TablePath = ()
        parts = self._key_parts()
        for depth, part in enumerate(parts):
            self._keys.setdefault((path, part), line)
            path += (part,)
            if array and depth == len(parts) - 1:
                index = self._arrays.get(path, 0)
                self._arrays[path] = index + 1
                self._tables.setdefault(path, line)
                path += (index,)
            elif path in self._arrays:  # [[a]] then [a.b]: b is in the latest a
                path += (self._arrays[path] - 1,)
            self._tables.setdefault(path, line)
        self._skip()
        self._advance(2 if array else 1)
        return path

    def _dotted_key(self, table: TablePath) -> TablePath:
        """Read `a.b.c =`; record each part as a key of the table before it. Returns the value's path."""
        line = self._line
        path = table
        for part in self._key_parts():
            self._keys.setdefault((path, part), line)
            path += (part,)
            self._tables.setdefault(path, line)
        self._skip()
        if self._text.startswith("=", self._pos):
            self._advance(1)
        self._skip()
        return path

    def _key_parts(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip()
            token = _STRING.match(self._text, self._pos) or _BARE_KEY.match(self._text, self._pos)
            if not token:
                return parts
            self._advance(len(token[0]))
            parts.append(_key_text(token[0]))
            self._skip()
            if not self._text.startswith(".", self._pos):
                return parts
            self._advance(1)

    def _value(self, path: TablePath) -> None:
        if self._text.startswith("{", self._pos):
            self._advance(1)
            self._tables.setdefault(path, self._line)
            self._items(path, "}", inline_table=True)
        elif self._text.startswith("[", self._pos):
            self._advance(1)
            self._items(path, "]", inline_table=False)
        else:
            token = _STRING.match(self._text, self._pos) or _BARE_VALUE.match(self._text, self._pos)
            self._advance(len(token[0]) if token else 0)

    def _items(self, path: TablePath, end: str, *, inline_table: bool) -> None:
        """The keys of an inline table, or the values of an array (indexed from 0), up to `end`."""
        index = 0
        while self._skip(newlines=True) and not self._text.startswith(end, self._pos):
            start = self._pos
            if self._text.startswith(",", self._pos):
                self._advance(1)
                index += 1
            elif inline_table:
                self._value(self._dotted_key(path))
            else:
                self._value((*path, index))
            if self._pos == start:
                self._advance(1)
        self._advance(1)

    def _skip(self, *, newlines: bool = False) -> bool:
        """Step over blanks and comments (and line ends if `newlines`); False at the end of the text."""
        blank = (_BLANK_LINES if newlines else _BLANK).match(self._text, self._pos)
        self._advance(blank.end() - self._pos if blank else 0)
        return self._pos < len(self._text)

    def _advance(self, count: int) -> None:
        self._line += self._text.count("\n", self._pos, self._pos + count)
        self._pos += count


def _key_text(token: str) -> str:
    """A key as tomllib reads it: quoted keys lose their quotes and escapes."""
    if token[0] not in "\"'":
        return token
    try:
        return next(iter(tomllib.loads(f"{token} = 0")))
    except tomllib.TOMLDecodeError:
        return token.strip("\"'")


@dataclass(frozen=True, slots=True)
class Where:
    """Where a table sits: the file name for messages, its line finder, its address."""

    source: str
    lines: TomlLines
    table: TablePath
    label: str

    def problem(self, key: str | None, message: str) -> Problem:
        line = self.lines.key(self.table, key) if key else self.lines.table(self.table)
        name = f"{self.label}.{key}" if key and self.label else (key or self.label)
        return Problem(self.source, line, f"{name}: {message}" if name else message)


def read_table(raw: Any, fields: Mapping[str, Field], where: Where, problems: list[Problem]) -> dict[str, Any]:
    """Check `raw` against `fields`; return the checked values (defaults filled in).

    Unknown keys, missing required keys and bad values are appended to `problems`;
    a bad value is left out of the result.
    """
    if not isinstance(raw, dict):
        problems.append(where.problem(None, f"expected a table, got {describe(raw)}"))
        return {}
    values: dict[str, Any] = {}
    for key in raw:
        if key not in fields:
            known = ", ".join(fields)
            problems.append(where.problem(key, f"unknown key (known keys: {known})"))
    for key, field in fields.items():
        if key not in raw:
            default = field.default_value()
            if default is REQUIRED:
                problems.append(where.problem(None, f"missing required key '{key}'"))
            else:
                values[key] = default
            continue
        try:
            values[key] = field.check(raw[key])
        except Invalid as exc:
            problems.append(where.problem(key, str(exc)))
    return values


def attributes(values: Mapping[str, Any], fields: Mapping[str, Field]) -> dict[str, Any]:
    """Values read by `read_table`, keyed by the dataclass attribute each goes to."""
    return {(fields[key].attribute or key): value for key, value in values.items()}


def describe(value: Any) -> str:
    kind = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "a table",
    }.get(type(value), type(value).__name__)
    text = repr(value)
    return f"{kind} {text}" if len(text) <= 40 else kind


def string(*, allow_empty: bool = True, pattern: str | None = None, hint: str = "") -> Checker:
    compiled = re.compile(pattern) if pattern else None

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid(f"expected a string, got {describe(value)}")
        if not allow_empty and not value.strip():
            raise Invalid("must not be empty")
        if compiled and not compiled.fullmatch(value):
            raise Invalid(f"{value!r} is not valid{': ' + hint if hint else ''}")
        return value

    return check


def integer(*, minimum: int | None = None, maximum: int | None = None) -> Checker:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(f"expected an integer, got {describe(value)}")
        _bounds(value, minimum, maximum)
        return value

    return check


def number(*, minimum: float | None = None, maximum: float | None = None) -> Checker:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"expected a number, got {describe(value)}")
        if not math.isfinite(value):
            raise Invalid(f"expected a finite number, got {value}")
        _bounds(value, minimum, maximum)
        return float(value)

    return check


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise Invalid(f"expected true or false, got {describe(value)}")
    return value


def one_of(*choices: str) -> Checker:
    def check(value: Any) -> str:
        if value not in choices:
            raise Invalid(f"expected one of {', '.join(choices)}; got {describe(value)}")
        return value

    return check


def array(
    item: Checker, *, allow_empty: bool = True, unique: bool = False, same: Callable[[Any], Any] | None = None
) -> Checker:
    """An array of `item`s. With `unique`, two items that `same` maps to one value are a
    duplicate (the second is reported, naming both spellings when they differ)."""

    def check(value: Any) -> TablePath:
        if not isinstance(value, list):
            raise Invalid(f"expected an array, got {describe(value)}")
        if not allow_empty and not value:
            raise Invalid("must not be empty")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except Invalid as exc:
                raise Invalid(f"item {index + 1}: {exc}") from None
        if unique:
            _check_unique(out, same or (lambda element: element))
        return tuple(out)

    return check


def _check_unique(items: list[Any], same: Callable[[Any], Any]) -> None:
    first: dict[Any, Any] = {}
    for element in items:
        folded = same(element)
        if folded in first:
            also = f" (also as {first[folded]!r})" if first[folded] != element else ""
            raise Invalid(f"{element!r} is listed twice{also}")
        first[folded] = element


def _bounds(value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise Invalid(f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise Invalid(f"must be at most {maximum}, got {value}")
