"""Reasons as JSON: the form `digest_items.reasons` stores and `digest rank --json` prints.

A reason is an object: its `kind` and the fields that kind uses (`models.REASON_FIELDS`),
e.g. `{"kind": "keywords", "terms": ["continual learning"], "where": "title"}`. Versions
before structured reasons stored each reason as its words, a JSON string: such a string
loads as a LEGACY reason, and a LEGACY reason is stored as a string again, so an old
row written back is unchanged.

Pure conversion: never words a reason (`templates/reasons.txt` does) and never touches
the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from digest.models import REASON_FIELDS, PaperPart, Reason, ReasonKind


def reason_record(reason: Reason) -> dict[str, Any]:
    """The reason as a JSON object: its kind and every field the kind uses."""
    record: dict[str, Any] = {"kind": reason.kind.value}
    for name in REASON_FIELDS[reason.kind]:
        value = getattr(reason, name)
        record[name] = list(value) if isinstance(value, tuple) else value
    return record


def reason_from_record(record: Mapping[str, Any]) -> Reason:
    """The reason a `reason_record` describes; a field it lacks keeps its default."""
    kind = ReasonKind(record["kind"])
    fields = {name: record[name] for name in REASON_FIELDS[kind] if name in record}
    if "terms" in fields:
        fields["terms"] = tuple(fields["terms"])
    if "where" in fields:
        fields["where"] = PaperPart(fields["where"]) if fields["where"] else None
    return Reason(kind, **fields)


def dump_reasons(reasons: Iterable[Reason]) -> str:
    """The JSON text `digest_items.reasons` holds."""
    stored = [r.text if r.kind is ReasonKind.LEGACY else reason_record(r) for r in reasons]
    return json.dumps(stored, ensure_ascii=False)


def load_reasons(text: str) -> tuple[Reason, ...]:
    """The reasons of a `digest_items.reasons` value, whichever version stored it."""
    return tuple(
        Reason(ReasonKind.LEGACY, text=item) if isinstance(item, str) else reason_from_record(item)
        for item in json.loads(text)
    )
