"""Table definitions of the SQL store, one MetaData shared by the store and its migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY (the rowid alias), not a BIGINT one.
IdType = BigInteger().with_variant(Integer(), "sqlite")

# Timestamps are epoch seconds UTC in BIGINT columns so both backends sort and compare them alike.
Epoch = BigInteger

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, nullable=False),
)

observations = Table(
    "observations",
    metadata,
    Column("series", Text, primary_key=True),
    Column("ts", Epoch, primary_key=True),
    Column("value", Float(precision=53), nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("chat_id", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", Text, nullable=False),
    Column("title", Text, nullable=False, default=""),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", Epoch, nullable=False),
    Column("updated_at", Epoch, nullable=False),
    Column("digest_time", Text, nullable=True),
    Column("timezone", Text, nullable=True),
    Column("next_digest_at", Epoch, nullable=True),
    Index("ix_subscriptions_next_digest_at", "next_digest_at"),
)

alert_states = Table(
    "alert_states",
    metadata,
    Column("rule_id", Text, primary_key=True),
    Column("status", Text, nullable=False),
    Column("since", Epoch, nullable=True),
    Column("value", Float(precision=53), nullable=True),
    Column("last_ts", Epoch, nullable=True),
    Column("fingerprint", Text, nullable=False, default=""),
    Column("updated_at", Epoch, nullable=False),
    Column("detail", Text, nullable=False, default="{}", server_default="{}"),
)

transitions = Table(
    "transitions",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("rule_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("at", Epoch, nullable=False),
    Column("value", Float(precision=53), nullable=True),
    Column("message", Text, nullable=False),
    Column("severity", Text, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("fired_at", Epoch, nullable=True),
    Column("created_at", Epoch, nullable=False),
    Index("ix_transitions_rule_at", "rule_id", "at"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("key", Text, nullable=False, unique=True),
    Column("transition_id", BigInteger, nullable=False),
    Column("chat_id", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", Epoch, nullable=False),
    Column("claimed_by", Text, nullable=True),
    Column("claimed_at", Epoch, nullable=True),
    Column("error", Text, nullable=False, default=""),
    Column("created_at", Epoch, nullable=False),
    Column("sent_at", Epoch, nullable=True),
    Column("message_id", BigInteger, nullable=True),
    Index("ix_outbox_due", "status", "not_before"),
    Index("ix_outbox_not_before", "not_before"),  # each chat's newest message (grouping window)
)

notification_log = Table(
    "notification_log",
    metadata,
    Column("rule_id", Text, primary_key=True),
    Column("chat_id", Text, primary_key=True),
    Column("message_id", BigInteger, nullable=True),
    Column("kind", Text, nullable=False),
    Column("sent_at", Epoch, nullable=False),
)

mutes = Table(
    "mutes",
    metadata,
    Column("chat_id", Text, primary_key=True),
    Column("target", Text, primary_key=True),  # a rule id, "tag:<tag>", or "all"
    Column("until", Epoch, nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

chat_filters = Table(
    "chat_filters",
    metadata,
    Column("chat_id", Text, primary_key=True),
    Column("target", Text, primary_key=True),  # a rule id or "tag:<tag>"; no rows = everything
)

source_health = Table(
    "source_health",
    metadata,
    Column("name", Text, primary_key=True),
    Column("up", Boolean, nullable=False),
    Column("last_success", Epoch, nullable=True),
    Column("last_error", Text, nullable=False, default=""),
    Column("last_error_at", Epoch, nullable=True),
    Column("failures", Integer, nullable=False, default=0),
    Column("down_notified_at", Epoch, nullable=True),  # admins told it is down; NULL once back
)

leader_lease = Table(
    "leader_lease",
    metadata,
    Column("name", Text, primary_key=True),
    Column("holder", Text, nullable=False),
    Column("epoch", BigInteger, nullable=False),  # grows with every takeover: the fencing token
    Column("expires_at", Float(precision=53), nullable=False),  # the database's clock, seconds
)

telegram_updates = Table(
    "telegram_updates",
    metadata,
    Column("update_id", BigInteger, primary_key=True, autoincrement=False),
    Column("seen_at", Epoch, nullable=False),
)
