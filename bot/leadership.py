"""Leader election among replicas on one PostgreSQL database: lead, renew, stand by, take over.

A lease row renewed by compare-and-set with a growing epoch (`bot/store/sql/lease.py`): the
leader renews every third of the lease and steps down when no renewal succeeded within two
thirds of it, so it has stopped before a standby may take over; the store refuses a deposed
leader's late writes by their epoch (docs/architecture.md, "High availability").
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from bot.store import Leases

log = logging.getLogger(__name__)
LEASE = "leader"
"""The one lease every replica of a database competes for."""
STOPPING = "stopping"


class Leadership:
    """Runs the election loop and calls `lead(epoch)` / `lose(reason)` as the role changes."""

    def __init__(
        self,
        store: Leases,
        holder: str,
        lease: timedelta,
        lead: Callable[[int], Awaitable[None]],
        lose: Callable[[str], Awaitable[None]],
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.holder = holder
        self.ttl = lease.total_seconds()
        self.renew_every = self.ttl / 3
        """A leader renews this often: two tries fit before the deadline."""
        self.deadline = self.ttl * 2 / 3
        """A leader that has not renewed within this long steps down (before the lease lapses)."""
        self.standby_every = self.ttl / 6
        """A standby (or a leader retrying a failed renewal) tries this often."""
        self._lead = lead
        self._lose = lose
        self._monotonic = monotonic
        self.epoch: int | None = None
        """Our term while leading, None while standing by."""
        self.store_ok = True
        self._renewed = 0.0
        self._failures = 0

    @property
    def leading(self) -> bool:
        """Whether this replica leads now."""
        return self.epoch is not None

    def trusted(self) -> bool:
        """Leading, and renewed within the deadline: safe to act (checked right before a send)."""
        return self.leading and self._monotonic() - self._renewed < self.deadline

    async def run(self) -> None:
        """Hold elections until cancelled; never raises."""
        while True:
            try:
                await self.step()
            except Exception:  # a bug here must not leave the replica silently leaderless
                log.exception("leader: election step failed; trying again")
            pause = self.renew_every if self.leading and self.store_ok else self.standby_every
            if not self.store_ok:  # back off while the store is down, up to one lease apart
                pause = min(self.ttl, self.standby_every * 2 ** min(self._failures - 1, 8))
                pause *= 0.5 + random.random() / 2
            if self.leading:  # wake in time to step down if renewals keep failing
                pause = min(pause, max(0.0, self._renewed + self.deadline - self._monotonic()))
            await asyncio.sleep(pause)

    async def step(self) -> None:
        """One try: renew our term, or take a lapsed lease, or notice we lost it."""
        started = self._monotonic()
        budget = self.standby_every
        if self.leading:
            budget = max(0.05, self._renewed + self.deadline - started)
        try:
            got = await asyncio.wait_for(
                self.store.hold_lease(LEASE, self.holder, self.epoch, self.ttl), timeout=budget
            )
        except Exception as exc:  # store unreachable, or too slow to trust
            slow = isinstance(exc, TimeoutError)
            self._store_down(f"no answer within {budget:.1f} s" if slow else exc)
            if self.leading and self._monotonic() - self._renewed >= self.deadline:
                await self._step_down("cannot renew the lease: the store does not answer")
            return
        self._store_up()
        if got is not None and got == self.epoch:
            self._renewed = started
            return
        if self.leading:
            why = "another replica holds the lease" if got is None else "the lease lapsed"
            await self._step_down(why)
        if got is not None:
            await self._take(got, started)

    async def _take(self, epoch: int, started: float) -> None:
        """Become leader for `epoch`: fence the store's writes to it, then start the work."""
        self.store.fence(LEASE, epoch)
        self.epoch, self._renewed = epoch, started
        log.info("leader: this replica leads now (epoch %d)", epoch)
        try:
            await self._lead(epoch)
        except Exception as exc:
            log.error("leader: could not start leading, handing the lease back: %s", exc)
            await self._step_down(f"could not start: {exc}")
            await self._release(epoch)

    async def _step_down(self, reason: str) -> None:
        """Stop the leader's work at once; the store stays fenced to the old epoch."""
        if self.epoch is None:
            return
        self.epoch = None
        (log.info if reason == STOPPING else log.warning)("leader: standing by: %s", reason)
        try:
            await self._lose(reason)
        except Exception:
            log.exception("leader: error while stopping the leader's work")

    async def resign(self) -> None:
        """Stop leading and let the lease lapse now, so a standby takes over without waiting."""
        epoch = self.epoch
        await self._step_down(STOPPING)
        if epoch is not None:
            await self._release(epoch)

    async def _release(self, epoch: int) -> None:
        try:
            await asyncio.wait_for(self.store.release_lease(LEASE, self.holder, epoch), 5)
        except Exception as exc:
            log.warning("leader: could not hand the lease back (it lapses by itself): %s", exc)

    def _store_down(self, exc: BaseException | str) -> None:
        """Say once that the store stopped answering."""
        self._failures += 1
        if self.store_ok:
            self.store_ok = False
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.error("store: unreachable, retrying with backoff: %s", reason)

    def _store_up(self) -> None:
        """Say once that the store answers again."""
        self._failures = 0
        if not self.store_ok:
            self.store_ok = True
            log.warning("store: reachable again")
