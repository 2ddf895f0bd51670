"""The `Leases` role in SQL: one lease row per name, taken and renewed by compare-and-set.

Times come from the database's clock only, so replicas' clocks never have to agree; the epoch
grows with every change of hands and is the fencing token the store checks on every write once
`fence` is set (docs/architecture.md, "High availability").
"""

from __future__ import annotations

from sqlalchemy import text

from bot.store.roles import LeaseView
from bot.store.sql.base import SqlBase

_NOW = {
    "postgresql": "extract(epoch from clock_timestamp())",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}


class SqlLeases(SqlBase):
    """Take, renew, release and read leases; fence the store's writes to an epoch."""

    def _now_sql(self) -> str:
        return _NOW[self._dialect]

    async def hold_lease(self, name: str, holder: str, epoch: int | None, ttl: float) -> int | None:
        """Renew our term or take a lapsed lease; return the epoch we hold, None if another does.

        Renewing keeps the epoch; taking a lapsed lease (ours included, after a stall) starts a
        new term with epoch + 1, so writes fenced to the old term are refused.
        """
        now = self._now_sql()
        ours = (
            "(leader_lease.holder = :holder AND leader_lease.epoch = :mine "
            f"AND leader_lease.expires_at > {now})"
        )
        stmt = text(
            "INSERT INTO leader_lease (name, holder, epoch, expires_at) "
            f"VALUES (:name, :holder, 1, {now} + :ttl) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, "
            f"epoch = CASE WHEN {ours} THEN leader_lease.epoch ELSE leader_lease.epoch + 1 END, "
            "expires_at = excluded.expires_at "
            f"WHERE {ours} OR leader_lease.expires_at <= {now} "
            "RETURNING epoch"
        )
        params = {"name": name, "holder": holder, "mine": epoch if epoch is not None else -1}
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt, params | {"ttl": float(ttl)})).first()
        return None if row is None else int(row[0])

    async def release_lease(self, name: str, holder: str, epoch: int) -> bool:
        """Let the lease lapse now, so a standby takes over without waiting out the term."""
        stmt = text(
            f"UPDATE leader_lease SET expires_at = {self._now_sql()} "
            "WHERE name = :name AND holder = :holder AND epoch = :epoch"
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(stmt, {"name": name, "holder": holder, "epoch": epoch})
        return bool(result.rowcount)

    async def lease(self, name: str) -> LeaseView | None:
        """Who holds a lease, in which epoch, and for how many more seconds (negative: lapsed)."""
        stmt = text(
            f"SELECT holder, epoch, expires_at - {self._now_sql()} AS left "
            "FROM leader_lease WHERE name = :name"
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(stmt, {"name": name})).first()
        return None if row is None else LeaseView(row.holder, int(row.epoch), float(row.left))
