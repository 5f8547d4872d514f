"""The delivery ledger (one row per profile, subscriber and digest day, or roll-up period) and the unsubscribes.

A row's Message-ID is made once, when the row is; every later attempt reuses it. Each
change of a row is saved as the sender records it, in its own transaction (acceptances
that the sender records together, in one), so a process killed at any moment leaves a
ledger that says what may have happened. What a row's state means and what comes next is
`lifecycle`'s to decide. Nothing here sends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable
from datetime import date, datetime
from typing import Any

from digest.lifecycle import state_after_acceptance
from digest.models import DeliveryState, DigestState, TransportKind
from digest.rows import Accepted, Delivery, DeliveryKey, Unsubscription
from digest.store.base import StoreBase, moment
from digest.store.digests import save_digest_state

ALL_PROFILES = "*"  # an unsubscribe from every profile
_COLUMNS = (
    "profile_id, day, subscriber, transport, state, attempts, message_id, last_error, "
    "possible_duplicate, note, created_at, updated_at, sent_at, period"
)
_WHERE_KEY = "profile_id = ? AND day = ? AND period = ? AND subscriber = ?"
_ATTEMPT_OUTCOMES = (DeliveryState.PENDING, DeliveryState.FAILED, DeliveryState.SKIPPED)


def subscriber_key(address: str) -> str:
    """How unsubscribes match addresses: trimmed and lower-cased."""
    return address.strip().lower()


class LedgerMixin(StoreBase):
    """The delivery ledger and the unsubscribes (see the module docstring)."""

    def add_deliveries(
        self,
        keys: Iterable[DeliveryKey],
        message_id: Callable[[DeliveryKey], str],
        transport: TransportKind,
        at: datetime,
    ) -> int:
        """Create a 'pending' ledger row for each key that has none; return how many were new."""
        created = 0
        with self.transaction() as db:
            for key in map(_key, keys):
                cursor = db.execute(
                    "INSERT OR IGNORE INTO deliveries (profile_id, day, subscriber, transport, message_id, "
                    "created_at, updated_at, period) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        key.profile_id,
                        key.day.isoformat(),
                        key.subscriber,
                        transport,
                        message_id(key),
                        at.isoformat(),
                        at.isoformat(),
                        key.period,
                    ),
                )
                created += cursor.rowcount
        return created

    def get_delivery(self, key: DeliveryKey) -> Delivery | None:
        """The ledger row as it is now."""
        key = _key(key)
        row = self._db.execute(f"SELECT {_COLUMNS} FROM deliveries WHERE {_WHERE_KEY}", _key_values(key)).fetchone()
        return _delivery(row) if row else None

    def deliveries(
        self, *, day: date | None = None, profile_id: str | None = None, period: str | None = None
    ) -> list[Delivery]:
        """Ledger rows, oldest day first, optionally of one day, one profile and/or one period
        ('' for the emails of daily digests only)."""
        where, params = [], []
        if day is not None:
            where.append("day = ?")
            params.append(day.isoformat())
        if profile_id is not None:
            where.append("profile_id = ?")
            params.append(profile_id)
        if period is not None:
            where.append("period = ?")
            params.append(period)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        query = f"SELECT {_COLUMNS} FROM deliveries {clause} ORDER BY day, profile_id, subscriber, period"
        return [_delivery(row) for row in self._db.execute(query, params)]

    def reopen_outbox_delivery(self, key: DeliveryKey, at: datetime) -> None:
        """A message only written to the outbox becomes 'pending' over SMTP, keeping its Message-ID."""
        note = f"written to the outbox on {at.date().isoformat()} before SMTP was configured; sent over SMTP"
        self._update(
            key,
            "state = 'pending', transport = 'smtp', sent_at = NULL, note = ?, updated_at = ?",
            (note, at.isoformat()),
        )

    def mark_delivery_sending(self, key: DeliveryKey, at: datetime, *, batch: str | None = None) -> bool:
        """Take the row to hand its message over: 'pending' becomes 'sending' (the attempt
        counts from here), taken by `batch` (the sending run). False, changing nothing, when
        the row is no longer 'pending': another sender took it, and this one must not hand
        the message over. One short transaction: of two senders, one takes the row."""
        key = _key(key)
        with self.transaction() as db:
            # The whole key, period included: a roll-up's row has its period's last day, and took
            # the daily row of that day with it (two rows changed read as "another sender").
            cursor = db.execute(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ?, taken_by = ? "
                f"WHERE {_WHERE_KEY} AND state = 'pending'",
                (at.isoformat(), batch, *_key_values(key)),
            )
            return cursor.rowcount == 1

    def mark_delivery_sent(
        self, key: DeliveryKey, at: datetime, *, counted: bool = True, delivers: bool = True
    ) -> None:
        """Record acceptance, and what it makes of the digest (`lifecycle.state_after_acceptance`;
        `delivers` is False for an outbox preview while SMTP is configured)."""
        self.mark_deliveries_sent([Accepted(key, at, counted)], delivers=delivers)

    def mark_deliveries_sent(self, accepted: Iterable[Accepted], *, delivers: bool = True) -> list[bool]:
        """`mark_delivery_sent` for each of `accepted`, in one transaction (one disk flush).
        For each, in order: whether it changed the row; a row 'sent' already (the same
        outbox file written twice in one batch) is left as it is."""
        with self.transaction() as db:
            return [
                _record_acceptance(db, _key(key), at, counted=counted, delivers=delivers)
                for key, at, counted in accepted
            ]

    def record_delivery_attempt(
        self,
        key: DeliveryKey,
        state: DeliveryState,
        at: datetime,
        *,
        error: str | None,
        counted: bool = False,
        possible_duplicate: bool = False,
        note: str | None = None,
    ) -> None:
        """Record a try that did not end in 'sent': 'pending' (retry later), 'failed' or 'skipped'.

        `counted` says the attempt was already counted by `mark_delivery_sending`; a `note`
        (kept once the row is sent) explains a possible duplicate.
        """
        if state not in _ATTEMPT_OUTCOMES:
            raise ValueError(f"not an outcome of an attempt: {state!r}")
        self._update(
            key,
            "state = ?, attempts = attempts + ?, last_error = ?, updated_at = ?, "
            "possible_duplicate = MAX(possible_duplicate, ?), note = COALESCE(?, note)",
            (state, 0 if counted else 1, error, at.isoformat(), int(possible_duplicate), note),
        )

    def resume_interrupted_delivery(
        self, key: DeliveryKey, at: datetime, note: str, *, batch: str | None = None
    ) -> bool:
        """A row left 'sending' by a process that died: pending again, flagged as a possible
        duplicate. A row that `batch` itself took is being sent by another of its senders:
        it is left alone, and the answer is False."""
        key = _key(key)
        with self.transaction() as db:
            cursor = db.execute(
                "UPDATE deliveries SET state = 'pending', possible_duplicate = 1, note = ?, updated_at = ? "
                f"WHERE {_WHERE_KEY} AND state = 'sending' AND (taken_by IS NULL OR taken_by IS NOT ?)",
                (note, at.isoformat(), *_key_values(key), batch),
            )
            return cursor.rowcount == 1

    def _update(
        self, key: DeliveryKey, assignments: str, values: tuple[Any, ...], *, db: sqlite3.Connection | None = None
    ) -> None:
        key = _key(key)
        statement = f"UPDATE deliveries SET {assignments} WHERE {_WHERE_KEY}"
        params = (*values, *_key_values(key))
        if db is not None:
            db.execute(statement, params)
            return
        with self.transaction() as own:
            own.execute(statement, params)

    # -- unsubscribes -------------------------------------------------------------

    def unsubscribe(self, address: str, profile_id: str | None, at: datetime) -> bool:
        """Stop sending to `address` (for one profile, or all with None); False if it already was."""
        with self.transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO unsubscribes (address, profile_id, at) VALUES (?, ?, ?)",
                (subscriber_key(address), profile_id or ALL_PROFILES, at.isoformat()),
            )
            return cursor.rowcount > 0

    def ledger_spellings(self, profile_id: str, addresses: Iterable[str]) -> dict[str, str]:
        """How the profile's ledger first spelled each address that differs from its lower
        case there or in `addresses`, by lower-cased address. Addresses match without regard
        to case: a digest sent to 'Ada@example.org' was sent to 'ada@example.org'."""
        capitals = sorted({a.lower() for a in addresses if a != a.lower()})
        marks = ", ".join("?" for _ in capitals)
        rows = self._db.execute(
            "SELECT subscriber, MIN(created_at) AS first FROM deliveries WHERE profile_id = ? AND subscriber IN ("
            "SELECT subscriber FROM deliveries WHERE profile_id = ? AND subscriber != lower(subscriber) "
            f"UNION SELECT subscriber FROM deliveries WHERE profile_id = ? AND lower(subscriber) IN ({marks})"
            ") GROUP BY subscriber ORDER BY first, subscriber",
            (profile_id, profile_id, profile_id, *capitals),
        ).fetchall()
        first: dict[str, str] = {}
        for subscriber, _ in rows:
            first.setdefault(subscriber.lower(), subscriber)
        return first

    def resubscribe(self, address: str, profile_id: str | None) -> bool:
        """Undo `unsubscribe` for one profile, or (`profile_id` None) every unsubscribe of the
        address, from all profiles and from each; False if there was nothing to undo."""
        with self.transaction() as db:
            if profile_id is None:
                cursor = db.execute("DELETE FROM unsubscribes WHERE address = ?", (subscriber_key(address),))
            else:
                cursor = db.execute(
                    "DELETE FROM unsubscribes WHERE address = ? AND profile_id = ?",
                    (subscriber_key(address), profile_id),
                )
            return cursor.rowcount > 0

    def is_unsubscribed(self, address: str, profile_id: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM unsubscribes WHERE address = ? AND profile_id IN (?, ?)",
            (subscriber_key(address), profile_id, ALL_PROFILES),
        ).fetchone()
        return row is not None

    def unsubscribed(self, addresses: Iterable[str], profile_id: str) -> set[str]:
        """Those of `addresses` that asked to stop receiving `profile_id` (or everything)."""
        return {address for address in addresses if self.is_unsubscribed(address, profile_id)}

    def unsubscribes(self) -> list[Unsubscription]:
        """Every unsubscribe, by address."""
        rows = self._db.execute("SELECT address, profile_id, at FROM unsubscribes ORDER BY address, profile_id")
        return [Unsubscription(a, None if p == ALL_PROFILES else p, moment(at)) for a, p, at in rows]


def _record_acceptance(
    db: sqlite3.Connection, key: DeliveryKey, at: datetime, *, counted: bool, delivers: bool
) -> bool:
    cursor = db.execute(
        "UPDATE deliveries SET state = 'sent', attempts = attempts + ?, last_error = NULL, updated_at = ?, "
        f"sent_at = ? WHERE {_WHERE_KEY} AND state != 'sent'",
        (0 if counted else 1, at.isoformat(), at.isoformat(), *_key_values(key)),
    )
    if cursor.rowcount == 0:
        return False
    if key.period:
        return True  # a roll-up's email: no daily digest's state depends on it
    row = db.execute(
        "SELECT state FROM digests WHERE profile_id = ? AND day = ?", (key.profile_id, key.day.isoformat())
    ).fetchone()
    if row is not None:
        state = DigestState(row[0])
        after = state_after_acceptance(state, delivers=delivers)
        if after != state:
            save_digest_state(db, key.profile_id, key.day, after, at)
    return True


def _key(key: tuple[str, date, str] | tuple[str, date, str, str]) -> DeliveryKey:
    # Any (profile, day, subscriber[, period]) tuple names a row; the named tuple reads better.
    return key if isinstance(key, DeliveryKey) else DeliveryKey(*key)


def _key_values(key: DeliveryKey) -> tuple[str, str, str, str]:
    """The key in the order of `_WHERE_KEY`."""
    return key.profile_id, key.day.isoformat(), key.period, key.subscriber


def _delivery(row: tuple[Any, ...]) -> Delivery:
    profile_id, day, subscriber, transport, state, attempts, mid, error, dup, note, created, updated, sent, period = row
    return Delivery(
        profile_id=profile_id,
        day=date.fromisoformat(day),
        subscriber=subscriber,
        transport=TransportKind(transport),
        state=DeliveryState(state),
        attempts=attempts,
        message_id=mid,
        last_error=error,
        possible_duplicate=bool(dup),
        note=note,
        created_at=datetime.fromisoformat(created),
        updated_at=datetime.fromisoformat(updated),
        sent_at=datetime.fromisoformat(sent) if sent else None,
        period=period,
    )
