"""What the bot exports to Prometheus: one registry per running bot, typed methods for callers.

Callers never touch prometheus objects: they say what happened (`polled`, `transitioned`,
`sent` …) and `render` answers a scrape (docs/architecture.md, "Operations: HTTP server and
metrics"). Labels are bounded: source names, rule ids, transition kinds, message kinds and
outcomes; never a chat or user id.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import choose_encoder

OUTCOMES: frozenset[str] = frozenset({"sent", "retry", "gone", "moved", "refused"})
"""What became of a message: the delivery verdicts, one label value each."""
KINDS: frozenset[str] = frozenset({"firing", "resolved", "reminder", "digest", "notice"})
"""The kinds of message counted; any other kind or outcome is counted as `other`."""

DELIVERY_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
"""Outbox row written → accepted by Telegram: grouping windows and flood waits last minutes."""
EVALUATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""One evaluation pass: milliseconds for one series' rules, seconds for every rule."""


class Metrics:
    """The bot's metrics in a registry of its own, so two bots (or two tests) never collide."""

    def __init__(self, *, process: bool = True) -> None:
        # `_created` series double every counter for a timestamp Prometheus does not need;
        # the switch is process-wide in prometheus-client and we never want them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True, target_info=None)
        if process:  # resident memory, CPU seconds, open fds: from /proc, on Linux only
            ProcessCollector(registry=self.registry)
        r = self.registry
        self._up = Gauge(
            "stablewatch_source_up",
            "1 if the last poll of the source succeeded",
            ["source"],
            registry=r,
        )
        self._last_success = Gauge(
            "stablewatch_source_last_success_timestamp_seconds",
            "When the source last answered with data (Unix time)",
            ["source"],
            registry=r,
        )
        self._polls = Counter(
            "stablewatch_polls", "Polls by outcome (ok, error)", ["source", "outcome"], registry=r
        )
        self._firing = Gauge(
            "stablewatch_alerts_firing", "1 while the rule's alert fires", ["rule"], registry=r
        )
        self._transitions = Counter(
            "stablewatch_transitions",
            "Alert transitions (firing, resolved, reminder)",
            ["rule", "state"],
            registry=r,
        )
        self._messages = Counter(
            "stablewatch_messages_sent",
            "Messages settled, by kind and outcome (alerts count per outbox row)",
            ["kind", "outcome"],
            registry=r,
        )
        self._pending = Gauge(
            "stablewatch_outbox_pending", "Outbox rows not sent nor given up", registry=r
        )
        self._delivery = Histogram(
            "stablewatch_delivery_seconds",
            "From the outbox row's creation to Telegram accepting it",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self._evaluation = Histogram(
            "stablewatch_rule_evaluation_seconds",
            "One evaluation pass: the rules reading new data, or every rule on a tick",
            buckets=EVALUATION_BUCKETS,
            registry=r,
        )
        self._rules = Gauge("stablewatch_rules_loaded", "Rules running now", registry=r)
        self._reloads = Counter(
            "stablewatch_rule_reloads",
            "Rule file reloads (accepted, refused)",
            ["outcome"],
            registry=r,
        )
        self._leader = Gauge(
            "stablewatch_leader", "1 while this replica holds the leader lease", registry=r
        )
        self._firing_rules: set[str] = set()

    def polled(self, source: str, ok: bool, last_success: datetime | None) -> None:
        """One poll finished: up or down, and when the source last answered with data."""
        self._up.labels(source).set(1 if ok else 0)
        self._polls.labels(source, "ok" if ok else "error").inc()
        if last_success is not None:
            self._last_success.labels(source).set(last_success.timestamp())

    def transitioned(self, rule: str, state: str) -> None:
        """An alert changed: `firing`, `resolved` or `reminder`."""
        self._transitions.labels(rule, state).inc()

    def firing(self, rules: Collection[str], firing: Collection[str]) -> None:
        """Every loaded rule's gauge after an evaluation; a rule no longer loaded is dropped."""
        for rule in self._firing_rules - set(rules):
            self._firing.remove(rule)
        for rule in rules:
            self._firing.labels(rule).set(1 if rule in firing else 0)
        self._firing_rules = set(rules)

    def sent(self, kind: str, outcome: str, count: int = 1) -> None:
        """`count` messages of a kind were settled with an outcome (`sent`, `retry` …)."""
        if count > 0:
            label = kind if kind in KINDS else "other"
            self._messages.labels(label, outcome if outcome in OUTCOMES else "other").inc(count)

    def delivered_after(self, seconds: float) -> None:
        """One outbox row reached Telegram this long after it was written."""
        self._delivery.observe(max(0.0, seconds))

    def outbox_pending(self, rows: int) -> None:
        """Rows still owed after a drain."""
        self._pending.set(rows)

    def evaluated(self, seconds: float) -> None:
        """One evaluation pass took this long."""
        self._evaluation.observe(seconds)

    def rules_loaded(self, count: int) -> None:
        """The rule set running now has this many rules."""
        self._rules.set(count)

    def reloaded(self, accepted: bool) -> None:
        """A changed rule set was taken, or refused for its problems."""
        self._reloads.labels("accepted" if accepted else "refused").inc()

    def set_leader(self, leader: bool) -> None:
        """Whether this replica is the leader now (sum over replicas should be 1)."""
        self._leader.set(1 if leader else 0)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The scrape body and its Content-Type, in the format the `Accept` header asks for."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type
