"""The store's roles: one small protocol per kind of memory, so a consumer asks for what it uses.

See docs/architecture.md, "Store roles".
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from bot.model import (
    AlertState,
    ChatKind,
    Delivery,
    DigestSchedule,
    Observation,
    OutboxItem,
    SourceHealth,
    Subscription,
    Transition,
)


class Deposed(RuntimeError):
    """A write carried a lease epoch that is no longer current: another replica leads now."""


@dataclass(frozen=True, slots=True)
class LeaseView:
    """A lease as the database sees it: holder, epoch, seconds left (negative once lapsed)."""

    holder: str
    epoch: int
    left: float


@dataclass(frozen=True, slots=True)
class SeriesSpan:
    """One stored series: its first and last point's time and how many points it holds."""

    series: str
    first: datetime
    last: datetime
    points: int


class Leases(Protocol):
    """Leader election by compare-and-set on a lease row, with an epoch as the fencing token."""

    async def hold_lease(self, name: str, holder: str, epoch: int | None, ttl: float) -> int | None:
        """Renew our term or take a lapsed lease; the epoch we hold, or None if another does."""
        ...

    async def release_lease(self, name: str, holder: str, epoch: int) -> bool:
        """Let our lease lapse now so a standby need not wait out the term."""
        ...

    async def lease(self, name: str) -> LeaseView | None:
        """Read a lease: holder, epoch and seconds left."""
        ...

    def fence(self, lease: str, epoch: int | None) -> None:
        """Refuse every later write unless `lease` is still at `epoch` (None: stop checking)."""
        ...


class UpdateLog(Protocol):
    """Telegram updates already handled, so a new leader does not handle them twice."""

    async def first_sight(self, update_id: int, now: datetime) -> bool:
        """Record an update as handled; False when it already was."""
        ...

    async def forget_updates(self, before: datetime) -> int:
        """Drop ids recorded before `before`."""
        ...


class Observations(Protocol):
    """The time series: points written by polls and imports, read by rules, digests and charts."""

    async def upsert_observations(self, observations: Sequence[Observation]) -> int:
        """Insert points; a revision (same series and ts) replaces the stored value."""
        ...

    async def observations(
        self, series: str, since: datetime | None = None, until: datetime | None = None
    ) -> list[Observation]:
        """Return one series' points in time order, optionally within [since, until]."""
        ...

    async def series_arrays(
        self, series: str, since: datetime | None = None
    ) -> tuple[list[int], list[float]]:
        """One series as (epoch seconds, values) lists in time order, for evaluation."""
        ...

    async def latest(self, series: str) -> Observation | None:
        """Return the newest point of a series."""
        ...

    async def series_names(self) -> list[str]:
        """Every series with at least one point, sorted (to suggest names in `/chart`)."""
        ...

    async def series_spans(self) -> list[SeriesSpan]:
        """Every stored series with its first and last timestamp and point count, sorted."""
        ...

    def iter_observations(self) -> AsyncIterator[Observation]:
        """Stream every point ordered by series then time, for export."""
        ...


class AlertLog(Protocol):
    """Each rule's persisted state and the log of its transitions."""

    async def alert_states(self, rule_ids: Collection[str] | None = None) -> dict[str, AlertState]:
        """Return the persisted state of every rule that has one, or of the rules named."""
        ...

    async def firing_rules(self) -> set[str]:
        """The rules whose persisted state is firing."""
        ...

    async def record_evaluation(
        self,
        states: Sequence[AlertState],
        transitions: Sequence[Transition],
        deliveries: Sequence[Delivery],
        now: datetime,
    ) -> int:
        """In one transaction: save states, log transitions, enqueue outbox rows.

        Each delivery names its transition by index and carries its own due time; returns the
        rows enqueued.
        """
        ...

    async def newest_due(self, chats: Collection[str], since: datetime) -> dict[str, datetime]:
        """The newest `not_before` of each chat's messages due after `since`, in one query.

        The grouping window starts from it. Resolves are left out: they edit the message they
        resolve rather than add one. Rows of every status count; chats without one are absent.
        """
        ...

    async def transitions(self, limit: int = 50) -> list[Transition]:
        """Return the most recent transitions, newest first."""
        ...


class OutboxQueue(Protocol):
    """Messages owed to chats, claimed by senders so a crash loses nothing and none goes twice."""

    async def claim_outbox(self, worker: str, now: datetime, limit: int = 50) -> list[OutboxItem]:
        """Claim due, unsent rows by compare-and-set so two senders never take the same row."""
        ...

    async def mark_sent(self, item_id: int, message_id: int | None, now: datetime) -> None:
        """Record a delivery and its Telegram message id in the notification log."""
        ...

    async def mark_failed(
        self, item_id: int, error: str, now: datetime, retry_at: datetime | None
    ) -> None:
        """Release a claimed row for a retry at `retry_at`, or give it up when that is None."""
        ...

    async def release_claims(self, worker: str) -> int:
        """Put rows a worker claimed but never finished back in the queue (after a crash)."""
        ...

    async def pending_count(self) -> int:
        """Rows neither sent nor given up, due or not (the `outbox_pending` metric)."""
        ...


class Audience(Protocol):
    """Who hears what: subscriptions, mutes, filters, and what each chat was already sent."""

    async def subscriptions(self, active_only: bool = True) -> list[Subscription]:
        """Return subscriptions, ordered by chat id."""
        ...

    async def subscriber_ids(self) -> list[int]:
        """The active subscriptions' chat ids, ordered: the same chats, without their details."""
        ...

    async def subscribe(self, chat_id: int, kind: ChatKind, title: str, now: datetime) -> bool:
        """Activate a chat's subscription; return True if it was not active before."""
        ...

    async def unsubscribe(self, chat_id: int) -> bool:
        """Deactivate a chat's subscription; return True if it was active."""
        ...

    async def move_subscription(self, old_chat_id: int, new_chat_id: int) -> bool:
        """Follow a chat migrated to a supergroup: subscription, mutes and pending rows move."""
        ...

    async def mute(self, chat_id: str, target: str, until: datetime, reason: str = "") -> None:
        """Mute a rule id, `tag:<tag>` or `all` for a chat until a moment."""
        ...

    async def unmute(self, chat_id: str, target: str | None = None) -> int:
        """Lift one mute, or all of a chat's mutes."""
        ...

    async def mutes(self, now: datetime) -> dict[str, dict[str, datetime]]:
        """Active mutes: chat id → target → until."""
        ...

    async def set_filter(self, chat_id: str, targets: Sequence[str]) -> None:
        """Replace a chat's filter (rule ids, `tag:<tag>`); empty means every alert."""
        ...

    async def filters(self) -> dict[str, set[str]]:
        """Chats with a filter: chat id → the rule ids and `tag:<tag>` it receives."""
        ...

    async def sent_counts(self, rule_id: str, since: datetime) -> dict[str, int]:
        """Messages enqueued per chat for a rule since a moment (storm breaker)."""
        ...

    async def notified(self, rule_id: str) -> dict[str, datetime]:
        """When each chat was last told about a rule."""
        ...


class DigestSchedules(Protocol):
    """Each chat's daily digest time and next due moment, changed only by compare-and-set.

    The store computes no moment: the digest's policy (bot.digest.schedule) hands them in.
    """

    async def digest_schedule(self, chat_id: int) -> DigestSchedule | None:
        """A chat's digest time, zone and next due moment; None if it never subscribed."""
        ...

    async def set_digest(
        self, chat_id: int, time: str | None, timezone: str | None, next_at: datetime | None
    ) -> bool:
        """Store a chat's digest settings and next due moment; False if the chat has no row."""
        ...

    async def unscheduled_digests(self) -> list[DigestSchedule]:
        """Active chats, and the channels' row, that want a digest but have no due moment yet."""
        ...

    async def schedule_digests(self, schedules: Sequence[DigestSchedule]) -> int:
        """In one transaction, give each still-unscheduled chat its time, zone and `next_at`.

        Compare-and-set on what `unscheduled_digests` selects, so a chat another worker
        scheduled, or one turned off or gone meanwhile, is left alone; returns how many were set.
        """
        ...

    async def keep_channels_row(
        self, time: str, timezone: str, next_at: datetime, now: datetime
    ) -> None:
        """Create the channels' schedule row (at `now`), or move it when time or zone changed."""
        ...

    async def claim_due_digests(
        self, now: datetime, until: datetime, limit: int = 200
    ) -> list[DigestSchedule]:
        """Take digests due at `now` by moving their `next_at` to `until`, compare-and-set.

        Two workers never both win a digest; one missed for days is returned once; one whose
        sender died is due again at `until`. The returned schedules carry `until` as `next_at`
        and the zone as stored (the policy decides what a vanished zone means).
        """
        ...

    async def finish_digest(self, claimed: DigestSchedule, next_at: datetime) -> bool:
        """A claimed digest went out: due next at `next_at`, unless the row changed since."""
        ...

    async def release_digest(self, claimed: DigestSchedule, retry_at: datetime) -> bool:
        """Make a claimed digest due again at `retry_at` (delivery failed), unless it changed."""
        ...


class SourceHealthLog(Protocol):
    """The last known health of every source, for logging changes once and for `status`."""

    async def source_health(self) -> dict[str, SourceHealth]:
        """Return the last known health of every source."""
        ...

    async def save_source_health(self, health: SourceHealth) -> None:
        """Persist a source's health after each poll; `down_notified_at` is left as stored."""
        ...

    async def mark_down_notified(self, name: str, at: datetime) -> bool:
        """Note that the admins are told a source is down; False if someone already did."""
        ...

    async def clear_down_notified(self, name: str) -> bool:
        """Forget the down notice of a recovered source; False if there was none (or taken)."""
        ...
