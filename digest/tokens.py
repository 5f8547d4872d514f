"""Signed tokens for the links a reader follows: unsubscribe, confirm, vote, preferences, their page.

A token is `ACTION.PROFILE.SUBSCRIBER.PAPER.EXPIRY.SIGNATURE`: the fields it stands for,
in the clear (a profile id, an opaque subscriber id, a paper id, a Unix time or nothing),
and an HMAC-SHA256 over all of them under the secret key. So a token made for one
action, profile, subscriber or paper is refused for any other: changing a field breaks
the signature, and `verify` says which action it was made for. Signatures are compared
in constant time (`hmac.compare_digest`). No token names an address.

The key comes from the environment, never from a file: `DIGEST_SECRET_KEY`, or the older
`DIGEST_UNSUBSCRIBE_KEY` when the new one is unset. Changing the key makes every link
in every email sent before refused. This module reads no files, the store or the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from digest.config import ConfigError
from digest.models import Problem

KEY_VARIABLE = "DIGEST_SECRET_KEY"
OLD_KEY_VARIABLE = "DIGEST_UNSUBSCRIBE_KEY"  # its first name, still read when the new one is unset
MIN_KEY_LENGTH = 16
_DOMAIN = b"paper-digest token 1\n"  # keeps these signatures apart from any other use of the key
_SEPARATOR = "."
_FIELDS = {
    "profile": re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*"),
    "subscriber": re.compile(r"[A-Za-z0-9_-]{1,64}"),
    "paper": re.compile(r"(?:[0-9a-f]{1,64})?"),
    "expires": re.compile(r"(?:[0-9]{1,11})?"),  # a Unix time before the year 5000
    "signature": re.compile(r"[A-Za-z0-9_-]{43}"),
}
MAX_TOKEN_LENGTH = 300  # longer is never one of ours: refused before any work


class Action(StrEnum):
    """What a token lets its holder do (the first field of the token)."""

    UNSUBSCRIBE = "unsubscribe"
    CONFIRM = "confirm"  # a subscription asked for through the web side
    MORE = "more"  # "more like this" for one paper
    LESS = "less"  # "less like this" for one paper
    MUTE = "mute"  # mute the organisation of one paper
    PREFERENCES = "preferences"
    READER = "reader"  # the subscriber's private web page and feed


@dataclass(frozen=True, slots=True)
class Token:
    """What a token stands for. `paper_id` is '' for actions on no paper; `expires` is None
    for links that do not expire."""

    action: Action
    profile_id: str
    subscriber_id: str
    paper_id: str = ""
    expires: datetime | None = None


def secret_key(environ: Mapping[str, str]) -> bytes | None:
    """The signing key from `DIGEST_SECRET_KEY` (else `DIGEST_UNSUBSCRIBE_KEY`), or None when
    neither is set. A key shorter than `MIN_KEY_LENGTH` is a `ConfigError` naming its variable."""
    for variable in (KEY_VARIABLE, OLD_KEY_VARIABLE):
        value = environ.get(variable, "")
        if not value:
            continue
        if len(value) < MIN_KEY_LENGTH:
            message = f"too short: use at least {MIN_KEY_LENGTH} random characters (or unset it)"
            raise ConfigError([Problem(variable, 0, message)])
        return value.encode("utf-8")
    return None


def sign(key: bytes, token: Token) -> str:
    """The token as it goes into a URL (one path segment)."""
    fields = _fields(token)
    signature = hmac.new(key, _DOMAIN + "\n".join(fields).encode("ascii"), hashlib.sha256).digest()
    return _SEPARATOR.join([*fields, base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")])


def verify(key: bytes, text: str) -> Token | None:
    """What `text` stands for if it is a token made with `key`, else None (malformed, forged,
    or signed with another key). Expiry is the caller's to check (`expired`): an expired
    link can still be told apart from a forged one."""
    if len(text) > MAX_TOKEN_LENGTH or not text.isascii():
        return None
    parts = text.split(_SEPARATOR)
    if len(parts) != 6:
        return None
    action, profile, subscriber, paper, expires, signature = parts
    checks = zip(_FIELDS.values(), (profile, subscriber, paper, expires, signature), strict=True)
    if action not in set(Action) or not all(pattern.fullmatch(value) for pattern, value in checks):
        return None
    token = Token(
        Action(action),
        profile,
        subscriber,
        paper,
        datetime.fromtimestamp(int(expires), UTC) if expires else None,
    )
    if not hmac.compare_digest(sign(key, token).encode("ascii"), text.encode("ascii")):
        return None
    return token


def expired(token: Token, now: datetime) -> bool:
    return token.expires is not None and now >= token.expires


def _fields(token: Token) -> list[str]:
    expires = str(int(token.expires.timestamp())) if token.expires is not None else ""
    return [str(token.action), token.profile_id, token.subscriber_id, token.paper_id, expires]


__all__ = ["KEY_VARIABLE", "OLD_KEY_VARIABLE", "Action", "Token", "expired", "secret_key", "sign", "verify"]
