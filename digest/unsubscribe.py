"""Signed unsubscribe tokens for the static site: HMAC-SHA256 over a profile id and a subscriber address.

Used when there is no web side (`[web] base_url` unset): the email's unsubscribe link
points at the site's static page with this token. The web side's links use
`digest.tokens` instead. The key comes from the environment (`DIGEST_SECRET_KEY`, or
the older `DIGEST_UNSUBSCRIBE_KEY`), never from a file. A token names no address, so
the unsubscribe URL leaks nothing into server logs; whoever processes an unsubscribe
finds the subscriber by checking the profile's addresses (`find_subscriber`). This
module reads no files and sends nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

from digest.tokens import OLD_KEY_VARIABLE, secret_key

KEY_VARIABLE = OLD_KEY_VARIABLE


def unsubscribe_key(environ: Mapping[str, str]) -> bytes | None:
    """The signing key from the environment (`tokens.secret_key`), or None when it is not
    set (no one-click unsubscribe)."""
    return secret_key(environ)


def unsubscribe_token(key: bytes, profile_id: str, subscriber: str) -> str:
    """A URL-safe token proving the list owner made this link for this profile and address."""
    message = f"{profile_id}\n{subscriber.strip().lower()}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_unsubscribe_token(key: bytes, profile_id: str, subscriber: str, token: str) -> bool:
    return hmac.compare_digest(unsubscribe_token(key, profile_id, subscriber), token)


def find_subscriber(key: bytes, profile_id: str, subscribers: Iterable[str], token: str) -> str | None:
    """The address among `subscribers` that `token` was made for, or None."""
    for address in subscribers:
        if check_unsubscribe_token(key, profile_id, address, token):
            return address
    return None
