"""Value types shared by every layer: observations, alert states, transitions, subscriptions."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current time as an aware UTC datetime; injected so tests and backtests own time."""


def system_clock() -> datetime:
    """Read the wall clock in UTC; the only place production code asks the OS for the time."""
    return datetime.now(UTC)


def to_epoch(ts: datetime) -> int:
    """Store timestamps as whole UTC seconds so both SQL backends sort and compare them alike."""
    if ts.tzinfo is None:
        raise ValueError(f"naive datetime {ts!r}: timestamps must be timezone-aware")
    return int(ts.timestamp())


def from_epoch(seconds: float) -> datetime:
    """Turn stored epoch seconds back into an aware UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(frozen=True, slots=True)
class Observation:
    """One point of one series: a value at a UTC instant, in the series' unit."""

    series: str
    ts: datetime
    value: float


class AlertStatus(enum.StrEnum):
    """Where an alert is in its lifecycle (docs/architecture.md, "Alert lifecycle")."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True, slots=True)
class AlertState:
    """The persisted state of one rule; `last_ts` is the newest data point already evaluated."""

    rule_id: str
    status: AlertStatus = AlertStatus.INACTIVE
    since: datetime | None = None
    value: float | None = None
    last_ts: datetime | None = None
    fingerprint: str = ""
    pending_count: int = 0
    cleared_at: datetime | None = None
    last_fired_at: datetime | None = None
    notified_at: datetime | None = None
    reminders: int = 0


class TransitionKind(enum.StrEnum):
    """The state changes that users hear about."""

    FIRING = "firing"
    RESOLVED = "resolved"
    REMINDER = "reminder"
    """Still firing after the rule's `repeat`: told again, only to chats that were told it fired."""

    @property
    def state(self) -> str:
        """The alert's state after the change, as templates, logs and /history name it."""
        return (TransitionKind.FIRING if self is TransitionKind.REMINDER else self).value


@dataclass(frozen=True, slots=True)
class Transition:
    """A state change of one rule at one data point; the unit of delivery."""

    rule_id: str
    kind: TransitionKind
    at: datetime
    value: float | None
    message: str
    severity: str = "warning"
    reason: str = ""
    fired_at: datetime | None = None


class ChatKind(enum.StrEnum):
    """Telegram chat types we deliver to."""

    PRIVATE = "private"
    GROUP = "group"
    SUPERGROUP = "supergroup"
    CHANNEL = "channel"


@dataclass(frozen=True, slots=True)
class Subscription:
    """A chat that receives alerts; inactive ones are kept so a re-/start restores settings."""

    chat_id: int
    kind: ChatKind
    title: str = ""
    active: bool = True
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message owed by an evaluation: which transition, to which chat, due when.

    `not_before` comes from the delivery policy (the grouping window), never from the store.
    """

    transition_index: int
    """Index into the evaluation's transitions, whose ids exist only once they are written."""
    chat_id: str
    text: str
    not_before: datetime


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One message owed to one chat, written before anything is sent so a crash loses nothing."""

    id: int
    key: str
    chat_id: str
    text: str
    rule_id: str
    kind: TransitionKind
    attempts: int = 0
    created_at: datetime | None = None
    reply_to: int | None = None


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """The last known health of one source, for logging transitions once and for `status`."""

    name: str
    up: bool
    last_success: datetime | None = None
    last_error: str = ""
    last_error_at: datetime | None = None
    failures: int = 0
    down_notified_at: datetime | None = None
    """When the admins were told the source is down; None while up or not told yet."""


OFF = "off"
"""Stored as a chat's digest time when it turned its digest off (NULL means "the default")."""
CHANNELS_ROW = 0
"""Telegram never uses chat id 0: an inactive row with it holds the channels' digest schedule."""


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """One chat's digest settings as stored; `next_at` None means not scheduled yet (or off)."""

    chat_id: int
    digest_time: str | None
    timezone: str | None
    next_at: datetime | None
    active: bool = True
