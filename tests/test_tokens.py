"""Signed tokens: bound to their action, profile, reader, paper and expiry; the key from the environment."""

from __future__ import annotations

import hmac
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from digest.config import ConfigError
from digest.tokens import Action, Token, expired, secret_key, sign, verify

KEY = b"a-test-key-of-at-least-16-chars"
NOW = datetime(2026, 1, 10, 8, 0, tzinfo=UTC)
TOKEN = Token(Action.MORE, "continual-learning", "Rk3x_9aZ-0b1c2d3", "0123456789abcdef", NOW + timedelta(hours=48))


def test_a_token_reads_back_as_what_it_was_made_for() -> None:
    for token in (TOKEN, Token(Action.UNSUBSCRIBE, "efficient-llm", "abc"), replace(TOKEN, expires=None)):
        text = sign(KEY, token)
        assert verify(KEY, text) == token
        assert "@" not in text and "/" not in text and len(text) < 200


@pytest.mark.parametrize(
    "changed",
    [
        replace(TOKEN, action=Action.LESS),
        replace(TOKEN, action=Action.UNSUBSCRIBE),
        replace(TOKEN, profile_id="efficient-llm"),
        replace(TOKEN, subscriber_id="Rk3x_9aZ-0b1c2d4"),
        replace(TOKEN, paper_id="0123456789abcdee"),
        replace(TOKEN, paper_id=""),
        replace(TOKEN, expires=NOW + timedelta(hours=480)),
        replace(TOKEN, expires=None),
    ],
)
def test_a_token_for_one_thing_is_refused_for_any_other(changed: Token) -> None:
    """The fields travel in the clear: putting another one in keeps the old signature, which fails."""
    text = sign(KEY, TOKEN)
    signature = text.rsplit(".", 1)[1]
    forged = sign(KEY, changed).rsplit(".", 1)[0] + "." + signature
    assert verify(KEY, forged) is None
    assert verify(KEY, sign(KEY, changed)) == changed  # the same fields, signed with the key, are fine


def test_forged_malformed_and_foreign_tokens_are_refused() -> None:
    text = sign(KEY, TOKEN)
    other_key = sign(b"another-key-of-16-characters!", TOKEN)
    flipped = text[:-1] + ("A" if text[-1] != "A" else "B")
    for bad in (
        other_key,
        flipped,
        text + "x",
        text.replace(".", "", 1),
        "",
        "garbage",
        "more.a.b.c.d.e.f",
        text.replace("more", "delete", 1),
        "ü" + text,
        text + "." * 400,
        text.replace("continual-learning", "Continual-Learning"),
        text.replace("0123456789abcdef", "0123456789ABCDEF"),
    ):
        assert verify(KEY, bad) is None, bad


def test_signatures_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr("digest.tokens.hmac.compare_digest", compare)
    text = sign(KEY, TOKEN)
    assert verify(KEY, text) == TOKEN
    assert verify(KEY, text[:-2] + "xx") is None
    assert len(calls) == 2


def test_an_expiry_is_checked_against_the_time_given() -> None:
    assert not expired(TOKEN, NOW + timedelta(hours=47, minutes=59))
    assert expired(TOKEN, NOW + timedelta(hours=48))
    assert not expired(replace(TOKEN, expires=None), NOW + timedelta(days=3650))


def test_the_key_comes_from_digest_secret_key_and_the_old_name_still_works() -> None:
    assert secret_key({}) is None
    assert secret_key({"DIGEST_SECRET_KEY": "new-key-0123456789"}) == b"new-key-0123456789"
    assert secret_key({"DIGEST_UNSUBSCRIBE_KEY": "old-key-0123456789"}) == b"old-key-0123456789"
    both = {"DIGEST_SECRET_KEY": "new-key-0123456789", "DIGEST_UNSUBSCRIBE_KEY": "old-key-0123456789"}
    assert secret_key(both) == b"new-key-0123456789"
    for variable in ("DIGEST_SECRET_KEY", "DIGEST_UNSUBSCRIBE_KEY"):
        with pytest.raises(ConfigError, match=f"{variable}: too short"):
            secret_key({variable: "short"})
