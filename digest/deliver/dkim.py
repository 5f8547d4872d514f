"""DKIM signatures (RFC 6376) on mail sent over SMTP, with dkimpy (the `web` extra).

With `[smtp] dkim_selector` and `dkim_domain` set, every message sent over SMTP is
signed with the private key in `DIGEST_DKIM_KEY` (PEM; `\\n` escapes are read as line
breaks, for environments that hold one line), the signature covering `List-Unsubscribe`
and `List-Unsubscribe-Post` as RFC 8058 requires for one-click unsubscribing. The public
key goes into DNS as a TXT record at `SELECTOR._domainkey.DOMAIN`. Outbox files are not
signed: they are previews. The signing transport wraps the SMTP one (`open_transport`
chooses it); this module never touches the ledger or renders a message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from digest.config import DKIM_KEY_VARIABLE, SmtpSettings
from digest.deliver.transports import FatalFailure, Transport
from digest.models import TransportKind
from digest.rows import DeliveryKey

# What the signature covers: the headers a reader sees and acts on, the two RFC 8058 asks
# for, and the body's structure. A header listed but absent is signed as absent, so it
# cannot be added on the way.
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"mime-version",
    b"content-type",
    b"content-transfer-encoding",
)
INSTALL = "pip install 'paper-digest[web]'"


class DkimError(Exception):
    """The message cannot be signed as configured (dkimpy missing, no key, a bad key). One line."""


@dataclass(frozen=True, slots=True)
class DkimSigner:
    """Signs messages for `domain` with `selector`'s private key (PEM bytes)."""

    selector: str
    domain: str
    key: bytes = field(repr=False)

    def sign(self, payload: bytes) -> bytes:
        """`payload` (CRLF line ends) with its `DKIM-Signature` header in front."""
        try:
            import dkim
        except ImportError:
            raise DkimError(f"DKIM signing needs dkimpy: {INSTALL}") from None
        try:
            signature = dkim.sign(
                payload,
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self.key,
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=list(SIGNED_HEADERS),
            )
        except dkim.DKIMException as exc:
            raise DkimError(f"cannot DKIM-sign: {exc}") from exc
        return bytes(signature) + payload


def dkim_signer(smtp: SmtpSettings | None) -> DkimSigner | None:
    """The signer `[smtp]` asks for, or None when it asks for none."""
    if smtp is None or not smtp.signs:
        return None
    assert smtp.dkim_selector and smtp.dkim_domain
    key = (smtp.dkim_key or "").replace("\\n", "\n").strip().encode("ascii", "replace")
    return DkimSigner(smtp.dkim_selector, smtp.dkim_domain, key)


def dkim_problem(smtp: SmtpSettings | None) -> str | None:
    """Why messages could not be signed as `[smtp]` asks (no key, a bad key, no dkimpy), or None."""
    signer = dkim_signer(smtp)
    if signer is None:
        return None
    if not signer.key:
        return (
            f"[smtp] dkim_selector is set but {DKIM_KEY_VARIABLE} (the private key, PEM) is not set in the environment"
        )
    try:
        import dkim.crypto
    except ImportError:
        return f"[smtp] dkim_selector is set, and DKIM signing needs dkimpy: {INSTALL}"
    try:
        dkim.crypto.parse_pem_private_key(signer.key)
    except dkim.crypto.UnparsableKeyError as exc:
        return f"{DKIM_KEY_VARIABLE} is not a PEM private key: {exc}"
    return None


class SigningTransport:
    """A transport that DKIM-signs each message and hands it to another (the SMTP one)."""

    def __init__(self, inner: Transport, signer: DkimSigner) -> None:
        self.inner = inner
        self.signer = signer
        self.kind: TransportKind = inner.kind

    def send(self, key: DeliveryKey, sender: str, payload: bytes, before_dot: Callable[[], None]) -> None:
        try:
            signed = self.signer.sign(payload)
        except DkimError as exc:
            raise FatalFailure(str(exc)) from exc
        self.inner.send(key, sender, signed, before_dot)

    def settle(self) -> None:
        self.inner.settle()

    def close(self) -> None:
        self.inner.close()
