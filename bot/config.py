"""Settings: `settings/stablewatch.toml`, then `.env`, then `STABLEWATCH_*` variables."""

from __future__ import annotations

import re
import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from bot.durations import Duration, Wait
from bot.timezones import parse_hhmm, zone

DEFAULT_CONFIG = Path("settings/stablewatch.toml")


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line naming the key."""


class _Section(BaseModel):
    """Every settings table rejects unknown keys, so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid")


class StoreSettings(_Section):
    """Where observations, subscriptions and alert state live."""

    url: str = "sqlite+aiosqlite:///var/stablewatch.db"

    @field_validator("url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "expected a sqlite+aiosqlite:// or postgresql+asyncpg:// URL, "
                f"found {value.split('://')[0]!r}"
            )
        return value


class RulesSettings(_Section):
    """Where the rule files are."""

    dir: Path = Path("rules")


class TelegramSettings(_Section):
    """The bot token and who may talk to the bot; an empty token sends everything to the console."""

    token: SecretStr = SecretStr("")
    api_url: str = "https://api.telegram.org"
    admin_ids: list[int] = Field(default_factory=list)
    access: Literal["open", "allowlist"] = "open"
    allowed_chat_ids: list[int] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    mode: Literal["polling", "webhook"] = "polling"
    """Long-poll `getUpdates` (the default) or receive updates on the HTTP server's webhook."""
    webhook_url: str = ""
    """The public HTTPS address Telegram posts to; it must reach `/telegram/webhook`."""
    webhook_secret: SecretStr = SecretStr("")
    """Sent by Telegram in `X-Telegram-Bot-Api-Secret-Token`; 1-256 of A-Z a-z 0-9 _ -."""

    @field_validator("webhook_secret")
    @classmethod
    def _secret_shape(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value()
        if secret and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ValueError("expected 1-256 characters from A-Z, a-z, 0-9, _ and -")
        return value

    @model_validator(mode="after")
    def _webhook_complete(self) -> TelegramSettings:
        if self.mode == "webhook" and self.token.get_secret_value():
            if not self.webhook_url.startswith("https://"):
                raise ValueError("webhook mode needs telegram.webhook_url, an https:// address")
            if not self.webhook_secret.get_secret_value():
                raise ValueError("webhook mode needs telegram.webhook_secret")
        return self

    @field_validator("api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
            raise ValueError(f"expected an http(s) URL, found {value!r}")
        return value.rstrip("/")

    @field_validator("token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        secret = value.get_secret_value().strip()
        if secret and not re.fullmatch(r"\d+:[A-Za-z0-9_-]+", secret):
            raise ValueError(
                "expected a BotFather token like 123456:ABC-DEF…, found something else"
            )
        return SecretStr(secret)

    @field_validator("channels", mode="before")
    @classmethod
    def _channel_ids_as_text(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [str(item) for item in value]
        return value


class DigestSettings(_Section):
    """The default daily digest time for new subscribers."""

    time: str = "08:00"
    timezone: str = "UTC"

    @field_validator("time")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        hhmm = parse_hhmm(value)
        if hhmm is None:
            raise ValueError(f"expected HH:MM on a 24-hour clock, found {value!r}")
        return hhmm

    @field_validator("timezone")
    @classmethod
    def _iana_zone(cls, value: str) -> str:
        if zone(value) is None:
            raise ValueError(f"expected an IANA time zone like Europe/Berlin, found {value!r}")
        return value


class SourceSettings(_Section):
    """Per-source switches; `base_url` is scheme and host only, the source appends its path."""

    enabled: bool = True
    interval: Duration = timedelta(hours=1)
    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    timeout: Duration = timedelta(seconds=10)
    retries: int = Field(default=3, ge=0, le=10)
    backfill: bool = True

    @field_validator("base_url")
    @classmethod
    def _scheme_and_host(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[^\s/]+/?", value):
            raise ValueError(
                f"expected scheme and host only, like https://example.com, found {value!r}"
            )
        return value.rstrip("/")


class HttpJsonEndpoint(_Section):
    """One request of the generic JSON source and the series it yields, configured, not coded."""

    name: str
    url: str
    method: Literal["GET", "POST"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | list[Any] | None = None
    series: dict[str, str] = Field(default_factory=dict)
    """Series key → JMESPath expression giving the value (or a list of values)."""
    timestamp: str = ""
    """JMESPath to the timestamp (or list of them); empty: the poll time."""
    timestamp_format: Literal["epoch_s", "epoch_ms", "iso", "date"] = "epoch_s"
    scale: float = 1.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.fullmatch(r"https?://\S+", value):
            raise ValueError(f"expected an http(s) URL, found {value!r}")
        return value


class HttpJsonSettings(SourceSettings):
    """The generic source: a user adds a metric by configuration alone."""

    endpoints: list[HttpJsonEndpoint] = Field(default_factory=list)


def _source(base_url: str, *, enabled: bool = True, minutes: int = 5) -> Any:
    """A default factory for one source's table."""
    return lambda: SourceSettings(
        enabled=enabled, base_url=base_url, interval=timedelta(minutes=minutes)
    )


class SourcesSettings(_Section):
    """One table per source (docs/architecture.md, "Sources")."""

    fear_greed: SourceSettings = Field(
        default_factory=_source("https://api.alternative.me", minutes=60)
    )
    farside: SourceSettings = Field(default_factory=_source("https://farside.co.uk", minutes=30))
    sosovalue: SourceSettings = Field(
        default_factory=_source("https://api.sosovalue.xyz", enabled=False, minutes=60)
    )
    coinglass: SourceSettings = Field(
        default_factory=_source("https://open-api-v4.coinglass.com", enabled=False, minutes=60)
    )
    binance: SourceSettings = Field(default_factory=_source("https://fapi.binance.com"))
    bybit: SourceSettings = Field(default_factory=_source("https://api.bybit.com"))
    okx: SourceSettings = Field(default_factory=_source("https://www.okx.com"))
    hyperliquid: SourceSettings = Field(default_factory=_source("https://api.hyperliquid.xyz"))
    http_json: HttpJsonSettings = Field(
        default_factory=lambda: HttpJsonSettings(enabled=False, interval=timedelta(minutes=15))
    )

    @model_validator(mode="before")
    @classmethod
    def _keep_source_defaults(cls, data: Any) -> Any:
        """A partial table (`[sources.binance] enabled = true`) keeps that source's own defaults."""
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for name, field in cls.model_fields.items():
            given = data.get(name)
            if isinstance(given, dict) and field.default_factory is not None:
                default = field.default_factory()  # type: ignore[call-arg]
                merged[name] = {**dict(default), **given}
        return merged

    def enabled(self) -> dict[str, SourceSettings]:
        """Return the enabled sources by name."""
        return {
            name: value
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SourceSettings) and value.enabled
        }


class MarketsSettings(_Section):
    """Which assets the futures sources watch (lower case, as in series keys)."""

    assets: list[str] = Field(default_factory=lambda: ["btc", "eth"])

    @field_validator("assets")
    @classmethod
    def _lower_symbols(cls, value: list[str]) -> list[str]:
        for asset in value:
            if not re.fullmatch(r"[a-z0-9]{2,10}", asset):
                raise ValueError(f"expected lower-case symbols like btc, found {asset!r}")
        return value


class EtfSettings(_Section):
    """Which provider writes `etf.<asset>.net_flow`; the others write their own series."""

    provider: Literal["farside", "sosovalue", "coinglass"] = "farside"


class DeliverySettings(_Section):
    """How alerts reach chats: grouping, the storm breaker and Telegram's rate limits."""

    grouping_window: Wait = timedelta(seconds=30)
    storm_limit: int = Field(default=10, ge=1, le=1000)
    global_rate: float = Field(default=29.4, gt=0, le=1000)
    """Messages a second overall, evenly spaced. Telegram allows 30 in any second. At 29.4 (0.98
    of that) sends go 34 ms apart and 31 of them span at least 1.015 s (30 intervals less the
    pacer's 5 ms catch-up), which leaves 15 ms of network and event-loop jitter before any second
    holds 31; a fan-out measured 0.98 of a strict 30/s window. Lower costs throughput (29.1 is
    0.97), higher leaves too little for jitter (29.7 keeps 5 ms)."""
    private_rate: float = Field(default=1.0, gt=0, le=100)
    group_per_minute: float = Field(default=20.0, gt=0, le=600)
    max_retry_wait: Duration = timedelta(seconds=60)
    """A flood wait up to this long is slept through for that chat; a longer one requeues."""
    paid_broadcast: bool = False
    """Send broadcasts with `allow_paid_broadcast` (Telegram charges Stars per message)."""
    paid_broadcast_rate: float = Field(default=1000.0, gt=0, le=1000)
    """Messages a second overall for paid broadcasts; Telegram allows up to 1000."""


class HttpSettings(_Section):
    """The bot's own HTTP server: health, readiness, metrics, and later the webhook and Mini App."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9108, ge=0, le=65535)
    """0 picks a free port (tests); the log line says which."""
    public_url: str = ""
    """The HTTPS address the server is reachable at from outside (Mini App)."""


class HaSettings(_Section):
    """Leader lease on PostgreSQL: one replica polls, evaluates and sends; the others stand by."""

    lease: Duration = timedelta(seconds=15)

    @field_validator("lease")
    @classmethod
    def _long_enough(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=3):
            raise ValueError("expected at least 3s (the leader renews every third of it)")
        return value


class HeartbeatSettings(_Section):
    """Dead man's switch: a URL fetched while the bot is healthy (healthchecks.io, Uptime Kuma)."""

    url: str = ""
    interval: Duration = timedelta(minutes=5)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", value):
            raise ValueError("expected an http(s) URL")
        return value


class LogSettings(_Section):
    """How much the bot says on the console."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(BaseSettings):
    """The whole configuration; built by `load_settings`, never read from globals."""

    model_config = SettingsConfigDict(
        env_prefix="STABLEWATCH_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",  # .env may hold other tools' variables; TOML tables are checked below
    )

    store: StoreSettings = Field(default_factory=StoreSettings)
    rules: RulesSettings = Field(default_factory=RulesSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    digest: DigestSettings = Field(default_factory=DigestSettings)
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    markets: MarketsSettings = Field(default_factory=MarketsSettings)
    etf: EtfSettings = Field(default_factory=EtfSettings)
    delivery: DeliverySettings = Field(default_factory=DeliverySettings)
    log: LogSettings = Field(default_factory=LogSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    ha: HaSettings = Field(default_factory=HaSettings)
    heartbeat: HeartbeatSettings = Field(default_factory=HeartbeatSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Give the TOML file (passed as init values) the lowest priority, env the highest."""
        return env_settings, dotenv_settings, init_settings


def _describe(error: Any) -> str:
    """Turn one pydantic error into `key: expected …, found …`."""
    key = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"{key}: unknown setting (check the spelling against {DEFAULT_CONFIG})"
    if "found" not in message and "input" in error:
        found = error["input"]
        shown = "***" if any(w in key for w in ("token", "api_key", "secret")) else repr(found)
        return f"{key}: {message}, found {shown}"
    return f"{key}: {message}"


def load_settings(config: Path | None = None, *, env_file: Path | None = Path(".env")) -> Settings:
    """Read the TOML file (if present), `.env` and the environment; ConfigError on bad values."""
    path = config or DEFAULT_CONFIG
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif config is not None:
        raise ConfigError(f"{path}: settings file not found")
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise ConfigError(
            f"bad setting {unknown[0]}: unknown setting "
            f"(check the spelling against {DEFAULT_CONFIG})"
        )
    try:
        return Settings(_env_file=env_file, **data)
    except ValidationError as exc:
        errors = exc.errors()
        first = _describe(errors[0])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"bad setting {first}{more}") from None
