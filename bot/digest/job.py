"""The daily digest job: claim due digests, compose each zone's digest once, send text and chart.

Claims are leases in the store (docs/architecture.md, "Digest"): a digest is finished (next
local day) only after it went out, released for a retry when Telegram could not take it, and due
again after the lease if the bot died while sending — never twice by design, never skipped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from bot.alerts.policy import wanted
from bot.config import DigestSettings, SourcesSettings
from bot.delivery.notifier import (
    Gone,
    Message,
    Notifier,
    Photo,
    Retry,
    Sent,
    Text,
    Verdict,
    outcome,
)
from bot.delivery.pacer import Lane
from bot.delivery.split import message_chunks
from bot.delivery.stage import MAX_RETRY_WAIT, Stage
from bot.digest.chart import render_chart
from bot.digest.schedule import claim_due, schedule_new_digests, schedule_next_day
from bot.digest.scorecard import DigestData, build_digest, load_digest_data, render_digest
from bot.digest.staleness import Staleness
from bot.engine.ruleset import RuleSet
from bot.metrics import Metrics
from bot.model import CHANNELS_ROW, Clock, DigestSchedule
from bot.store import Store

log = logging.getLogger(__name__)
RETRY_LATER = timedelta(minutes=5)
"""A digest Telegram could not take (network, 5xx, long flood wait) is tried again after this."""
BATCH = 100
"""Digests claimed at a time: a batch goes out well within one claim lease."""


@dataclass(frozen=True, slots=True)
class Composed:
    """One digest ready to send: HTML text, the chart as PNG, and the chart's caption."""

    text: str
    chart: bytes
    caption: str


class Composer:
    """Loads the data once and renders the chart once; the text is built per time zone.

    `sources` gives each series' polling interval, so a stale line says "as of" its date.
    """

    def __init__(
        self,
        store: Store,
        assets: Sequence[str],
        now: datetime,
        sources: SourcesSettings | None = None,
    ) -> None:
        self._store, self._assets, self._now = store, tuple(assets), now
        self._staleness = Staleness(sources)
        self._data: DigestData | None = None
        self._chart: bytes | None = None
        self._texts: dict[str, str] = {}
        self._lock = asyncio.Lock()

    async def compose(
        self,
        tz: str,
        title: str = "Stablewatch daily digest",
        chat_filter: frozenset[str] = frozenset(),
        rules: RuleSet | None = None,
    ) -> Composed:
        """The digest for one zone, its alerts narrowed to a chat's /subscribe choice if any.

        The chart is drawn in a thread so chats keep being served meanwhile.
        """
        async with self._lock:
            if self._data is None:
                self._data = await load_digest_data(self._store, self._assets, self._now)
            if self._chart is None:
                self._chart = await asyncio.to_thread(render_chart, self._data, self._now)
            key = "\n".join([tz, title, *sorted(chat_filter)])
            if key not in self._texts:
                data = self._data
                if chat_filter:
                    known = rules or RuleSet()
                    kept = [
                        t
                        for t in data.transitions
                        if wanted(set(chat_filter), known.get(t.rule_id), t.rule_id)
                    ]
                    data = replace(data, transitions=tuple(kept))
                digest = build_digest(data, self._now, tz, self._staleness)
                self._texts[key] = render_digest(digest, title)
        caption = f"📈 {title} · {self._now:%d %b %Y %H:%M} UTC"
        return Composed(self._texts[key], self._chart, caption)


@dataclass
class DigestRun:
    """What one run of the job did, for logs and tests."""

    claimed: int = 0
    sent: int = 0
    retrying: int = 0
    dropped: int = 0
    errors: list[str] = field(default_factory=list)


class _Retry(Exception):
    """Nothing reached the chat and Telegram may take it later: release the claim."""


class DigestJob:
    """Sends every due digest through the delivery stage, paced like every other message."""

    def __init__(
        self,
        store: Store,
        notifier: Notifier,
        clock: Clock,
        assets: Sequence[str],
        settings: DigestSettings,
        channels: Callable[[], Sequence[str]],
        rules: Callable[[], RuleSet] = RuleSet,
        *,
        max_retry_wait: float = MAX_RETRY_WAIT,
        metrics: Metrics | None = None,
        sources: SourcesSettings | None = None,
    ) -> None:
        self.store, self.clock = store, clock
        self.metrics = metrics
        """Where each chat's digest outcome is counted (None: nowhere)."""
        self.assets, self.settings, self.channels = tuple(assets), settings, channels
        self.rules = rules
        self.sources = sources
        """The sources' polling intervals, which say when a digest line is stale."""
        self.stage = Stage(notifier, store, max_retry_wait=max_retry_wait)

    async def run(self) -> DigestRun:
        """Schedule new chats, then claim and send due digests batch by batch."""
        now = self.clock()
        channels = list(self.channels())
        result = DigestRun()
        await schedule_new_digests(
            self.store,
            self.settings.time,
            self.settings.timezone,
            now,
            with_channels=bool(channels),
        )
        composer = Composer(self.store, self.assets, now, self.sources)
        filters: dict[str, set[str]] | None = None
        rules = self.rules()
        while claimed := await claim_due(self.store, now, limit=BATCH):
            result.claimed += len(claimed)
            if filters is None:  # read only when something is due: this job runs every 30 s
                filters = await self.store.filters()
            async with asyncio.TaskGroup() as group:
                for schedule in claimed:
                    only = frozenset(filters.get(str(schedule.chat_id), ()))
                    compose = partial(composer.compose, chat_filter=only, rules=rules)
                    group.create_task(self._one(schedule, compose, channels, result))
            if len(claimed) < BATCH:
                break
        if result.claimed:
            log.info(
                "digests: %d due, %d sent, %d to retry, %d dropped",
                result.claimed,
                result.sent,
                result.retrying,
                result.dropped,
            )
        return result

    async def _one(
        self,
        schedule: DigestSchedule,
        compose: Callable[[str], Awaitable[Composed]],
        channels: list[str],
        result: DigestRun,
    ) -> None:
        """Deliver one claimed digest and settle its claim; no error escapes to the others."""
        # The channels' row covers several chats: retrying it would repeat the ones that got it.
        shared = schedule.chat_id == CHANNELS_ROW
        targets = channels if shared else [str(schedule.chat_id)]
        try:
            composed = await compose(schedule.timezone or self.settings.timezone)
            delivered = [
                await self._deliver(chat, composed, result, may_retry=not shared)
                for chat in targets
            ]
        except Exception as exc:  # a bug must not stop the other chats' digests either
            if not isinstance(exc, _Retry):
                log.exception("digest for chat %s failed", schedule.chat_id)
                result.errors.append(f"{schedule.chat_id}: {exc}")
            await self.store.release_digest(schedule, self.clock() + RETRY_LATER)
            result.retrying += 1
            return
        await schedule_next_day(self.store, schedule, self.clock())
        if any(delivered):
            result.sent += 1
        else:
            result.dropped += 1

    async def _deliver(
        self, chat: str, composed: Composed, result: DigestRun, *, may_retry: bool
    ) -> bool:
        """Text (split if long) then chart through the stage; False if nothing reached the chat."""
        messages: list[Message] = [
            *(Text(chunk) for chunk in message_chunks(composed.text)),
            Photo(composed.chart, composed.caption),
        ]
        for delivered, message in enumerate(messages):
            done = await self.stage.deliver(chat, message, Lane.BROADCAST)
            chat = done.chat  # a moved group is followed for the rest of the digest
            if not isinstance(done.verdict, Sent):
                self._count(outcome(done.verdict))
                return self._settle(chat, done.verdict, delivered, result, may_retry=may_retry)
        self._count("sent")
        return True

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.sent("digest", result)

    def _settle(
        self, chat: str, verdict: Verdict, delivered: int, result: DigestRun, *, may_retry: bool
    ) -> bool:
        """What a verdict means for the digest: retry later, drop, or keep what went out."""
        reason = getattr(verdict, "reason", str(verdict))
        result.errors.append(f"{chat}: {reason}")
        if isinstance(verdict, Retry) and delivered == 0 and may_retry:
            log.info("digest to %s deferred: %s", chat, reason)
            raise _Retry
        if isinstance(verdict, Retry):
            log.warning("digest to %s partly delivered (%d part(s)): %s", chat, delivered, reason)
        elif not isinstance(verdict, Gone):  # a closed chat was unsubscribed by the stage
            log.warning("digest to %s refused: %s", chat, reason)
        return delivered > 0
