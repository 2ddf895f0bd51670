"""The `Store` on SQLAlchemy Core: one mixin per role over one shared engine (see `base`)."""

from __future__ import annotations

from bot.store.sql.alerts import SqlAlertLog
from bot.store.sql.audience import SqlAudience
from bot.store.sql.digests import SqlDigestSchedules
from bot.store.sql.health import SqlSourceHealthLog
from bot.store.sql.lease import SqlLeases
from bot.store.sql.observations import SqlObservations
from bot.store.sql.outbox import SqlOutboxQueue
from bot.store.sql.updates import SqlUpdateLog

__all__ = ["SqlStore"]


class SqlStore(
    SqlObservations,
    SqlAlertLog,
    SqlOutboxQueue,
    SqlAudience,
    SqlDigestSchedules,
    SqlSourceHealthLog,
    SqlLeases,
    SqlUpdateLog,
):
    """The one `Store` implementation, for SQLite and PostgreSQL alike."""
