"""What the deployment's health and upkeep read and delete: `digest status` and `digest prune`.

Reads across the digests and the ledger for one profile, and deletes finished records
past the retention period. Which records a feed still needs is the caller's to say
(`keep_from`); papers, digests and unsubscribes are never deleted. Nothing here decides
whether a deployment is healthy (`digest.health` does).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from digest.models import TransportKind
from digest.rows import LastBuilt, LastEvent, LastMailed, ProfileActivity, PruneCounts
from digest.store.base import StoreBase, day_or_none, moment

_FINISHED = "state IN ('sent', 'failed', 'skipped')"


class UpkeepMixin(StoreBase):
    """Status reads and pruning (see the module docstring)."""

    def profile_activity(
        self, profile_id: str, *, failed_since: date, transport: TransportKind = TransportKind.OUTBOX
    ) -> ProfileActivity:
        """What the store knows of a profile's last digest, publication and email, and its
        emails still to go (pending) or refused (failed, for digest days from `failed_since`).
        With `transport` SMTP, an email only written to the outbox (a preview) is still to go,
        and is not the last one mailed."""
        smtp = transport == TransportKind.SMTP
        # `lifecycle.is_preview`, of the days a send still takes (older ones are given up).
        previewed = "(state = 'sent' AND transport = 'outbox' AND day >= :since)" if smtp else "0"
        mailed_by = "AND transport = 'smtp'" if smtp else ""
        built = self._db.execute(
            "SELECT g.day, g.built_at, (SELECT COUNT(*) FROM digest_items i WHERE i.profile_id = g.profile_id "
            "AND i.day = g.day AND i.kind = 'item') FROM digests g WHERE g.profile_id = ? ORDER BY g.day DESC LIMIT 1",
            (profile_id,),
        ).fetchone()
        published = self._db.execute(
            "SELECT day, COALESCE(delivered_at, built_at) FROM digests WHERE profile_id = ? AND state = 'delivered' "
            "ORDER BY day DESC LIMIT 1",
            (profile_id,),
        ).fetchone()
        mailed = self._db.execute(
            f"SELECT day, sent_at, transport FROM deliveries WHERE profile_id = ? AND state = 'sent' {mailed_by} "
            "ORDER BY sent_at DESC, day DESC LIMIT 1",
            (profile_id,),
        ).fetchone()
        pending, failed = self._db.execute(
            f"SELECT COALESCE(SUM(state IN ('pending', 'sending') OR {previewed}), 0), "
            "COALESCE(SUM(state = 'failed' AND day >= :since), 0) FROM deliveries WHERE profile_id = :p",
            {"since": failed_since.isoformat(), "p": profile_id},
        ).fetchone()
        return ProfileActivity(
            profile_id=profile_id,
            built=LastBuilt(date.fromisoformat(built[0]), moment(built[1]), built[2]) if built else None,
            published=LastEvent(date.fromisoformat(published[0]), moment(published[1])) if published else None,
            mailed=(
                LastMailed(date.fromisoformat(mailed[0]), moment(mailed[1]), TransportKind(mailed[2]))
                if mailed
                else None
            ),
            emails_pending=pending,
            emails_failed=failed,
        )

    def prune(
        self, before: date, keep_from: Mapping[str, date], now: datetime, *, dry_run: bool = False
    ) -> PruneCounts:
        """Delete the finished ledger rows and the fetch records of days before `before`.

        A ledger row still to go (pending, sending) is never deleted; nor are a profile's
        rows from `keep_from[profile]` on (the digests its feed still shows). Papers,
        digests and unsubscribes are never deleted. With `dry_run`, only counts; otherwise
        `before` is recorded (`pruned_before`), at `now`.
        """
        stamp = now.isoformat()
        with self.transaction() as db:
            profiles = [
                row[0]
                for row in db.execute("SELECT DISTINCT profile_id FROM deliveries WHERE day < ?", (before.isoformat(),))
            ]
            deliveries = 0
            for profile_id in profiles:
                limit = min(before, keep_from.get(profile_id, before)).isoformat()
                where = f"profile_id = ? AND day < ? AND {_FINISHED}"
                deliveries += db.execute(
                    f"SELECT COUNT(*) FROM deliveries WHERE {where}", (profile_id, limit)
                ).fetchone()[0]
                if not dry_run:
                    db.execute(f"DELETE FROM deliveries WHERE {where}", (profile_id, limit))
            fetches = db.execute("SELECT COUNT(*) FROM fetches WHERE day < ?", (before.isoformat(),)).fetchone()[0]
            if not dry_run:
                db.execute("DELETE FROM fetches WHERE day < ?", (before.isoformat(),))
                db.execute("INSERT INTO prunes (pruned_before, pruned_at) VALUES (?, ?)", (before.isoformat(), stamp))
        return PruneCounts(deliveries=deliveries, fetches=fetches)

    def pruned_before(self) -> date | None:
        """The latest day before which `prune` may have deleted ledger rows, or None if it never ran."""
        return day_or_none(self._db.execute("SELECT MAX(pruned_before) FROM prunes").fetchone()[0])
