"""Roll-ups (what each profile's roll-up of a period holds) and roll-up emails (what each
subscriber's copy holds), and the papers each subscriber's ledger rows carry.

A roll-up is saved once, with its whole pool in order (`rollups.Pool`), so that it renders
the same every time; a subscriber's copy is saved once too, when it is first made, with
the papers it shows, so that a resend is the same message. Rolling daily emails up into a
"what you missed" message is one transaction: the emails rolled up, the message's ledger
row and its copy are saved together, or nothing is. Nothing here ranks, decides which
papers a copy shows (`digest.rollups`) or which rows count as sent (`lifecycle`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from digest.lifecycle import nobody_got
from digest.models import DeliveryState, Paper, Profile, Rollup, ScoredPaper, TransportKind
from digest.periods import Period, PeriodKind, parse_period
from digest.reason_records import dump_reasons, load_reasons
from digest.rollups import ALSO_SHOWN, Pool
from digest.rows import CarriedPaper, DeliveryKey, RollupRecord
from digest.store.base import StoreBase, moment, version_of
from digest.store.ledger import subscriber_key
from digest.store.papers import FIRST_SIGHTING, PAPER_COLUMNS, paper_of, paper_version, read_papers

ITEM = "item"
RUNNER_UP = "runner-up"
ALSO = "also"

# A roll-up's papers: those first listed in its period; those the profile's digests of its
# days gave that were listed earlier (late or back-filled listings), except papers an
# earlier roll-up of the same kind had in its pool; and those listed in the period before
# but stored after its roll-up read its papers (built before that period ended, or a day of
# it came late: a dump after its watermark, or for a roll-up saved without one, stored
# after it was built), which that roll-up never considered.
_CANDIDATES = f"""
    SELECT {PAPER_COLUMNS} FROM papers p
    WHERE p.first_seen BETWEEN :first AND :last
       OR (p.first_seen < :first
           AND p.id IN (SELECT i.paper_id FROM digest_items i WHERE i.profile_id = :p AND i.kind = 'item'
                        AND i.day BETWEEN :first AND :last)
           AND p.id NOT IN (SELECT r.paper_id FROM rollup_items r JOIN rollups g
                            ON g.profile_id = r.profile_id AND g.period = r.period
                            WHERE r.profile_id = :p AND g.kind = :kind AND g.first_day < :first))
       OR (p.first_seen >= :prior AND p.first_seen < :first
           AND EXISTS (SELECT 1 FROM rollups g JOIN dumps u ON u.id = p.first_dump
                       WHERE g.profile_id = :p AND g.kind = :kind AND g.last_day = :before
                       AND p.first_seen BETWEEN g.first_day AND g.last_day
                       AND CASE WHEN g.watermark IS NULL THEN julianday(u.ingested_at) > julianday(g.built_at)
                                ELSE p.first_dump > g.watermark END
                       AND NOT EXISTS (SELECT 1 FROM rollup_items r WHERE r.profile_id = g.profile_id
                                       AND r.period = g.period AND r.paper_id = p.id)))
    ORDER BY {FIRST_SIGHTING}
"""
# Every pool of a profile's roll-ups of some kinds, with each paper's version.
_POOLS = f"""
    SELECT r.period, r.paper_id, r.kind, r.rank, r.score, r.reasons, {paper_version("r.paper_id")}
    FROM rollup_items r JOIN rollups g ON g.profile_id = r.profile_id AND g.period = r.period
    WHERE r.profile_id = ? AND g.kind IN ({{marks}}) ORDER BY r.period, r.kind, r.rank
"""
# The papers a subscriber's ledger rows of one profile carry: a daily digest's items (their
# own digest's, when their votes or number of papers gave them one: reader :r), or what
# their copy of a roll-up listed.
_CARRIED = """
    SELECT i.paper_id, p.first_seen, d.day, d.period, d.state, d.possible_duplicate
    FROM deliveries d
    JOIN digest_items i ON i.profile_id = d.profile_id AND i.day = d.day AND i.kind = 'item'
    JOIN papers p ON p.id = i.paper_id
    WHERE d.profile_id = :p AND d.subscriber = :s AND d.period = '' AND NOT EXISTS (
        SELECT 1 FROM personal_digests g WHERE g.profile_id = d.profile_id AND g.day = d.day AND g.reader_id = :r
    )
    UNION ALL
    SELECT i.paper_id, p.first_seen, d.day, d.period, d.state, d.possible_duplicate
    FROM deliveries d
    JOIN personal_items i ON i.profile_id = d.profile_id AND i.day = d.day AND i.reader_id = :r
    JOIN papers p ON p.id = i.paper_id
    WHERE d.profile_id = :p AND d.subscriber = :s AND d.period = ''
    UNION ALL
    SELECT m.paper_id, p.first_seen, d.day, d.period, d.state, d.possible_duplicate
    FROM deliveries d
    JOIN rollup_mail_items m ON m.profile_id = d.profile_id AND m.period = d.period AND m.subscriber = d.subscriber
    JOIN papers p ON p.id = m.paper_id
    WHERE d.profile_id = :p AND d.subscriber = :s AND d.period != ''
"""


class _Moved(Exception):
    """An email to roll up is no longer pending: another process got to it first."""


class RollupsMixin(StoreBase):
    """Roll-ups, roll-up emails and what ledger rows carry (see the module docstring)."""

    def rollup_candidates(self, profile_id: str, period: Period) -> list[Paper]:
        """The papers the roll-up of `profile_id` for `period` considers, in order of first sighting."""
        missed = period.kind is PeriodKind.MISSED
        kind = "" if missed else period.kind
        # The period before (its papers stored after its roll-up read them come here): none for
        # the days a reader missed.
        prior = period.first if missed else period.previous().first
        parameters = {
            "p": profile_id,
            "first": period.first.isoformat(),
            "last": period.last.isoformat(),
            "kind": kind,
            "prior": prior.isoformat(),
            "before": (period.first - timedelta(days=1)).isoformat(),
        }
        return [paper_of(row) for row in self._db.execute(_CANDIDATES, parameters)]

    def save_rollup(self, rollup: Rollup, pool: Pool) -> bool:
        """Record a roll-up and its pool; False (and nothing written) if the profile has one for that period."""
        return self.save_rollups([(rollup, pool)])[0]

    def save_rollups(self, built: Sequence[tuple[Rollup, Pool]], *, watermark: int | None = None) -> list[bool]:
        """Record roll-ups and their pools, in one transaction (one write to disk for a
        thousand profiles); each is False, and not written, when its profile has one for
        that period already. `watermark`: the newest dump when their papers were read (papers
        of later dumps were not considered: the next roll-up takes them)."""
        saved = []
        with self.transaction() as db:
            for rollup, pool in built:
                key = (rollup.profile.id, rollup.period.key)
                if db.execute("SELECT 1 FROM rollups WHERE profile_id = ? AND period = ?", key).fetchone():
                    saved.append(False)
                    continue
                _insert_rollup(db, rollup, pool, watermark)
                saved.append(True)
        return saved

    def rollup_pool(self, profile_id: str, period: Period) -> Pool | None:
        """The saved pool of a roll-up, or None when there is no such roll-up."""
        if not self._has_rollup(profile_id, period):
            return None
        picked = self._scored(
            "SELECT paper_id, kind, score, reasons FROM rollup_items WHERE profile_id = ? AND period = ? "
            "ORDER BY kind, rank",
            (profile_id, period.key),
        )
        return Pool(tuple(picked[ITEM]), tuple(picked[RUNNER_UP]))

    def load_rollup(self, profile: Profile, period: Period) -> Rollup | None:
        """Everyone's roll-up of `period` (feeds, site, Markdown), as it was built, or None."""
        head = self._db.execute(
            "SELECT built_at, considered, above, shown FROM rollups WHERE profile_id = ? AND period = ?",
            (profile.id, period.key),
        ).fetchone()
        pool = self.rollup_pool(profile.id, period)
        if head is None or pool is None:
            return None
        built_at, considered, above, shown = head
        return Rollup(
            profile=profile,
            period=period,
            items=pool.eligible[:shown],
            also=pool.eligible[shown : shown + ALSO_SHOWN],
            built_at=moment(built_at),
            considered=considered,
            above=above,
            runners_up=() if pool.eligible else pool.runners_up,
        )

    def rollup_records(self, profile_id: str, kinds: Sequence[PeriodKind]) -> list[RollupRecord]:
        """The profile's roll-ups of `kinds`, newest first, as its archive lists them, with
        their versions (see `digest_records`)."""
        marks = ",".join("?" * len(kinds))
        heads = self._db.execute(
            "SELECT period, built_at, considered, above, shown FROM rollups "
            f"WHERE profile_id = ? AND kind IN ({marks}) ORDER BY first_day DESC, period",
            (profile_id, *kinds),
        ).fetchall()
        pools: dict[str, list[tuple[Any, ...]]] = {}
        for row in self._db.execute(_POOLS.format(marks=marks), (profile_id, *kinds)):
            pools.setdefault(row[0], []).append(row)
        found = []
        for head in heads:
            pool = pools.get(head[0], [])
            eligible = sum(row[2] == ITEM for row in pool)
            found.append(RollupRecord(parse_period(head[0]), version_of((head, pool)), min(head[4], eligible), head[2]))
        return found

    def rollup_periods(self, profile_id: str, kind: PeriodKind, limit: int | None = None) -> list[Period]:
        """The periods of `kind` the profile has a roll-up of, newest first (at most `limit`)."""
        rows = self._db.execute(
            "SELECT period FROM rollups WHERE profile_id = ? AND kind = ? ORDER BY first_day DESC LIMIT ?",
            (profile_id, kind, -1 if limit is None else limit),
        )
        return [parse_period(row[0]) for row in rows]

    def rollup_mail(self, profile: Profile, period: Period, subscriber: str) -> Rollup | None:
        """One subscriber's copy of a roll-up, as it was first made, or None if it was not."""
        head = self._db.execute(
            "SELECT m.considered, m.above, g.built_at FROM rollup_mails m JOIN rollups g "
            "ON g.profile_id = m.profile_id AND g.period = m.period "
            "WHERE m.profile_id = ? AND m.period = ? AND m.subscriber = ?",
            (profile.id, period.key, subscriber),
        ).fetchone()
        if head is None:
            return None
        picked = self._scored(
            "SELECT m.paper_id, m.kind, r.score, r.reasons FROM rollup_mail_items m JOIN rollup_items r "
            "ON r.profile_id = m.profile_id AND r.period = m.period AND r.paper_id = m.paper_id "
            "WHERE m.profile_id = ? AND m.period = ? AND m.subscriber = ? ORDER BY m.kind, m.rank",
            (profile.id, period.key, subscriber),
        )
        considered, above, built_at = head
        return Rollup(
            profile=profile,
            period=period,
            items=tuple(picked[ITEM]),
            also=tuple(picked[ALSO]),
            built_at=moment(built_at),
            considered=considered,
            above=above,
        )

    def rollup_mail_sizes(self, profile_id: str, period: Period) -> dict[str, int]:
        """For each subscriber whose copy of a roll-up was made, how many papers it shows in full."""
        rows = self._db.execute(
            "SELECT m.subscriber, (SELECT COUNT(*) FROM rollup_mail_items i WHERE i.profile_id = m.profile_id "
            "AND i.period = m.period AND i.subscriber = m.subscriber AND i.kind = 'item') "
            "FROM rollup_mails m WHERE m.profile_id = ? AND m.period = ?",
            (profile_id, period.key),
        )
        return dict(rows.fetchall())

    def save_rollup_mail(self, subscriber: str, copy: Rollup, at: datetime) -> bool:
        """Record a subscriber's copy of a roll-up; False (and nothing written) if one was made before."""
        with self.transaction() as db:
            return _insert_mail(db, subscriber, copy, at)

    def carried_papers(self, profile_id: str, subscriber: str) -> list[CarriedPaper]:
        """Every paper the subscriber's ledger rows of this profile carry (see `CarriedPaper`)."""
        reader = self._db.execute("SELECT id FROM readers WHERE address = ?", (subscriber_key(subscriber),)).fetchone()
        rows = self._db.execute(_CARRIED, {"p": profile_id, "s": subscriber, "r": reader[0] if reader else None})
        return [
            CarriedPaper(
                pid, date.fromisoformat(first), date.fromisoformat(day), period, DeliveryState(state), bool(dup)
            )
            for pid, first, day, period, state, dup in rows
        ]

    def roll_up(
        self,
        rolled: Sequence[DeliveryKey],
        into: DeliveryKey,
        copy: Rollup,
        *,
        message_id: Callable[[DeliveryKey], str],
        transport: TransportKind,
        at: datetime,
    ) -> bool:
        """Roll the emails `rolled` up into the "what you missed" message `into`, in one
        transaction: each becomes 'rolled-up' (made so when it had no ledger row yet), and the
        message's row (pending) and the subscriber's `copy` are saved. False, and nothing
        changed, when one of them may have reached its reader meanwhile (another process sent
        it): only a row nobody got (`lifecycle.nobody_got`) is rolled up."""
        note = f"not sent on its own: in the message of what they missed, {into.period}"
        try:
            with self.transaction() as db:
                self._roll_up(db, rolled, into, copy, note, message_id, transport, at)
        except _Moved:
            return False
        return True

    def _roll_up(
        self,
        db: sqlite3.Connection,
        rolled: Sequence[DeliveryKey],
        into: DeliveryKey,
        copy: Rollup,
        note: str,
        message_id: Callable[[DeliveryKey], str],
        transport: TransportKind,
        at: datetime,
    ) -> None:
        for key in rolled:
            row = db.execute(
                "SELECT state, possible_duplicate, transport FROM deliveries WHERE profile_id = ? AND day = ? "
                "AND period = ? AND subscriber = ?",
                (key.profile_id, key.day.isoformat(), key.period, key.subscriber),
            ).fetchone()
            if row is not None and not nobody_got(
                DeliveryState(row[0]), bool(row[1]), TransportKind(row[2]), transport
            ):
                raise _Moved
            values = (key.profile_id, key.day.isoformat(), key.period, key.subscriber)
            db.execute(
                "INSERT OR IGNORE INTO deliveries (profile_id, day, period, subscriber, transport, message_id, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, transport, message_id(key), at.isoformat(), at.isoformat()),
            )
            db.execute(
                "UPDATE deliveries SET state = 'rolled-up', note = ?, updated_at = ? WHERE profile_id = ? "
                "AND day = ? AND period = ? AND subscriber = ?",
                (note, at.isoformat(), *values),
            )
        _insert_mail(db, into.subscriber, copy, at)
        db.execute(
            "INSERT OR IGNORE INTO deliveries (profile_id, day, period, subscriber, transport, message_id, "
            "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                into.profile_id,
                into.day.isoformat(),
                into.period,
                into.subscriber,
                transport,
                message_id(into),
                at.isoformat(),
                at.isoformat(),
            ),
        )

    def _has_rollup(self, profile_id: str, period: Period) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM rollups WHERE profile_id = ? AND period = ?", (profile_id, period.key)
        ).fetchone()
        return row is not None

    def _scored(self, query: str, parameters: tuple[Any, ...]) -> dict[str, list[ScoredPaper]]:
        """Rows of (paper id, kind, score, reasons) as scored papers by kind, in the query's order."""
        rows = self._db.execute(query, parameters).fetchall()
        papers = {p.id: p for p in read_papers(self._db, [r[0] for r in rows])}
        picked: dict[str, list[ScoredPaper]] = {ITEM: [], RUNNER_UP: [], ALSO: []}
        for pid, kind, score, reasons in rows:
            picked[kind].append(ScoredPaper(papers[pid], score, load_reasons(reasons)))
        return picked


def _insert_rollup(db: sqlite3.Connection, rollup: Rollup, pool: Pool, watermark: int | None = None) -> None:
    key = (rollup.profile.id, rollup.period.key)
    db.execute(
        "INSERT INTO rollups (profile_id, period, kind, first_day, last_day, built_at, considered, above, shown, "
        "watermark) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            *key,
            rollup.period.kind,
            rollup.period.first.isoformat(),
            rollup.period.last.isoformat(),
            rollup.built_at.isoformat(),
            rollup.considered,
            rollup.above,
            len(rollup.items),
            watermark,
        ),
    )
    db.executemany(
        "INSERT INTO rollup_items (profile_id, period, paper_id, kind, rank, score, reasons) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (*key, s.paper.id, kind, rank, s.score, dump_reasons(s.reasons))
            for kind, papers in ((ITEM, pool.eligible), (RUNNER_UP, pool.runners_up))
            for rank, s in enumerate(papers)
        ],
    )


def _insert_mail(db: sqlite3.Connection, subscriber: str, copy: Rollup, at: datetime) -> bool:
    key = (copy.profile.id, copy.period.key, subscriber)
    cursor = db.execute(
        "INSERT OR IGNORE INTO rollup_mails (profile_id, period, subscriber, considered, above, made_at) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (*key, copy.considered, copy.above, at.isoformat()),
    )
    if cursor.rowcount == 0:
        return False
    db.executemany(
        "INSERT INTO rollup_mail_items (profile_id, period, subscriber, paper_id, kind, rank) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [
            (*key, s.paper.id, kind, rank)
            for kind, papers in ((ITEM, copy.items), (ALSO, copy.also))
            for rank, s in enumerate(papers)
        ],
    )
    return True
