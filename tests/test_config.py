"""Settings: file, .env and environment priority; bad values name the key."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from tests.harness.files import ROOT


def test_shipped_toml_lists_every_key_with_a_comment() -> None:
    text = (ROOT / "settings" / "stablewatch.toml").read_text()
    data = tomllib.loads(text)
    defaults = Settings.model_fields  # top-level tables
    assert set(data) == set(defaults)
    for table, model in ((name, getattr(Settings(), name)) for name in defaults):
        if table == "sources":
            for source, cfg in data["sources"].items():
                assert set(cfg) == set(type(getattr(model, source)).model_fields), source
        else:
            assert set(data[table]) == set(type(model).model_fields), table
    for key in ("url", "token", "api_url", "admin_ids", "access", "channels", "level"):
        line = next(i for i, ln in enumerate(text.splitlines()) if ln.startswith(f"{key} ="))
        assert text.splitlines()[line - 1].startswith("#"), f"{key} has no comment above it"


def test_shipped_toml_matches_the_built_in_defaults(clean_env: Path) -> None:
    from_file = load_settings(ROOT / "settings" / "stablewatch.toml", env_file=None)
    assert from_file.model_dump_json() == Settings(_env_file=None).model_dump_json()


def test_environment_beats_dotenv_beats_file(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = clean_env / "s.toml"
    config.write_text(
        '[digest]\ntime = "07:00"\ntimezone = "Europe/Berlin"\n[log]\nlevel = "DEBUG"\n'
    )
    dotenv = clean_env / ".env"
    dotenv.write_text("STABLEWATCH_DIGEST__TIME=06:30\nSTABLEWATCH_LOG__LEVEL=WARNING\nOTHER=1\n")
    monkeypatch.setenv("STABLEWATCH_LOG__LEVEL", "ERROR")
    settings = load_settings(config, env_file=dotenv)
    assert settings.digest.timezone == "Europe/Berlin"  # file only
    assert settings.digest.time == "06:30"  # .env over file
    assert settings.log.level == "ERROR"  # environment over .env


def test_nested_env_and_json_lists(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STABLEWATCH_TELEGRAM__ADMIN_IDS", "[1, 2]")
    monkeypatch.setenv("STABLEWATCH_SOURCES__FEAR_GREED__INTERVAL", "15m")
    settings = load_settings(env_file=None)
    assert settings.telegram.admin_ids == [1, 2]
    assert settings.sources.fear_greed.interval == timedelta(minutes=15)


@pytest.mark.parametrize(
    ("toml", "key", "expected"),
    [
        ('[sources.fear_greed]\ninterval = "soon"', "sources.fear_greed.interval", "duration"),
        ('[digest]\ntime = "25:00"', "digest.time", "HH:MM"),
        ('[digest]\ntimezone = "Mars/Base"', "digest.timezone", "IANA"),
        ('[telegram]\naccess = "closed"', "telegram.access", "'open' or 'allowlist'"),
        ('[store]\nurl = "mysql://x"', "store.url", "sqlite+aiosqlite"),
        ('[telegram]\ntokn = "1:a"', "telegram.tokn", "unknown setting"),
        (
            '[sources.fear_greed]\nbase_url = "https://x.io/fng/"',
            "sources.fear_greed.base_url",
            "scheme and host",
        ),
    ],
)
def test_bad_value_is_one_line_naming_key_and_expectation(
    clean_env: Path, toml: str, key: str, expected: str
) -> None:
    config = clean_env / "bad.toml"
    config.write_text(toml + "\n")
    with pytest.raises(ConfigError) as info:
        load_settings(config, env_file=None)
    message = str(info.value)
    assert "\n" not in message
    assert key in message
    assert expected in message


def test_token_is_never_shown(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STABLEWATCH_TELEGRAM__TOKEN", "12345:SECRET-token")
    settings = load_settings(env_file=None)
    assert "SECRET" not in repr(settings)
    assert "SECRET" not in settings.model_dump_json()
    monkeypatch.setenv("STABLEWATCH_TELEGRAM__TOKEN", "not a token SECRET")
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert "SECRET" not in str(info.value)
    assert "telegram.token" in str(info.value)


def test_missing_explicit_config_file_is_an_error(clean_env: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(clean_env / "nope.toml", env_file=None)


def test_unknown_table_is_rejected(clean_env: Path) -> None:
    config = clean_env / "typo.toml"
    config.write_text('[telegarm]\ntoken = ""\n')
    with pytest.raises(ConfigError, match="telegarm: unknown setting"):
        load_settings(config, env_file=None)


def test_partial_source_table_keeps_that_sources_defaults(clean_env: Path) -> None:
    config = clean_env / "partial.toml"
    config.write_text('[sources.binance]\nenabled = false\n[sources.farside]\ntimeout = "20s"\n')
    settings = load_settings(config, env_file=None)
    assert settings.sources.binance.base_url == "https://fapi.binance.com"
    assert settings.sources.binance.interval == timedelta(minutes=5)
    assert not settings.sources.binance.enabled
    assert settings.sources.farside.interval == timedelta(minutes=30)
    assert settings.sources.farside.timeout == timedelta(seconds=20)
