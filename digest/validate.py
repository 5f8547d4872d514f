"""Checking TOML tables against declared fields, with errors that name the file, line and key.

Config utilities only: no business logic, no I/O. `config.py` and `profiles.py`
declare their fields with `Field` and the checkers below; `read_table` applies them
and collects every problem instead of stopping at the first.

`tomllib` reports no positions for values, so `TomlLines` finds the line of each
table and key by reading the source text (enough for the layouts people write).
"""

from __future__ import annotations

import re
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
    check: Checker
    default: Any = REQUIRED


_HEADER = re.compile(r"\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""\s*(?:"([^"]+)"|'([^']+)'|([A-Za-z0-9_-]+))\s*(?:\.|=)""")


class TomlLines:
    """Line numbers of tables and keys in a TOML text.

    Tables are addressed as tuples: `("digest",)`, `("profiles", 0)` for the first
    `[[profiles]]`; keys as `(table, key)`.
    """

    def __init__(self, text: str) -> None:
        self._tables: dict[tuple, int] = {}
        self._keys: dict[tuple, int] = {}
        counts: dict[str, int] = {}
        table: tuple = ()
        in_string: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if in_string:
                if line.count(in_string) % 2:
                    in_string = None
                continue
            header = _HEADER.match(line)
            if header:
                name = header[2].strip().strip('"')
                if header[1] == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    table = (name, index)
                else:
                    table = (name,)
                self._tables.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                self._keys.setdefault((table, key[1] or key[2] or key[3]), number)
            for quote in ('"""', "'''"):
                if line.count(quote) % 2:
                    in_string = quote

    def table(self, table: tuple) -> int:
        return self._tables.get(table, 0)

    def key(self, table: tuple, key: str) -> int:
        return self._keys.get((table, key)) or self.table(table)


@dataclass(frozen=True, slots=True)
class Where:
    """Where a table sits: the file name for messages, its line finder, its address."""

    source: str
    lines: TomlLines
    table: tuple
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
            if field.default is REQUIRED:
                problems.append(where.problem(None, f"missing required key '{key}'"))
            else:
                values[key] = field.default
            continue
        try:
            values[key] = field.check(raw[key])
        except Invalid as exc:
            problems.append(where.problem(key, str(exc)))
    return values


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


def array(item: Checker, *, allow_empty: bool = True, unique: bool = False) -> Checker:
    def check(value: Any) -> tuple:
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
            seen = set()
            for element in out:
                if element in seen:
                    raise Invalid(f"{element!r} is listed twice")
                seen.add(element)
        return tuple(out)

    return check


def _bounds(value: float, minimum: float | None, maximum: float | None) -> None:
    if minimum is not None and value < minimum:
        raise Invalid(f"must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise Invalid(f"must be at most {maximum}, got {value}")
