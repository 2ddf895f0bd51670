"""Derived series: OI-weighted funding and total OI over the venues whose readings are fresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.keys import VENUES
from bot.model import Observation
from bot.sources.derived import derive, inputs

NOW = datetime(2025, 11, 1, 12, 0, 41, tzinfo=UTC)
MINUTE = datetime(2025, 11, 1, 12, 0, tzinfo=UTC)
FRESH = NOW - timedelta(minutes=3)
MAX_AGE = timedelta(minutes=30)


def venue(
    asset: str,
    name: str,
    rate: float,
    oi: float,
    at: datetime = FRESH,
    oi_at: datetime | None = None,
) -> dict[str, Observation]:
    return {
        f"funding.{asset}.{name}": Observation(f"funding.{asset}.{name}", at, rate),
        f"oi.{asset}.{name}": Observation(f"oi.{asset}.{name}", oi_at or at, oi),
    }


def values(points: list[Observation]) -> dict[str, float]:
    return {p.series: p.value for p in points}


def test_funding_is_weighted_by_each_venue_open_interest() -> None:
    latest = venue("btc", "binance", 0.0001, 10e9) | venue("btc", "bybit", -0.00005, 5e9)
    points = derive(latest, ["btc"], ["binance", "bybit"], NOW, MAX_AGE)
    assert values(points) == pytest.approx(
        {"funding.btc.oi_weighted": 0.00005, "oi.btc.total": 15e9}
    )
    assert {p.ts for p in points} == {MINUTE}


def test_a_stale_venue_takes_no_part_and_withholds_the_total() -> None:
    """A venue dropping out must not look like an open-interest flush."""
    latest = venue("btc", "binance", 0.0001, 10e9) | venue(
        "btc", "okx", -0.001, 3e9, at=NOW - timedelta(hours=2)
    )
    assert values(derive(latest, ["btc"], ["binance", "okx"], NOW, MAX_AGE)) == {
        "funding.btc.oi_weighted": 0.0001,
    }


def test_a_venue_with_fresh_funding_but_stale_oi_takes_no_part() -> None:
    latest = venue("btc", "binance", 0.0001, 10e9) | venue(
        "btc", "bybit", -0.001, 5e9, oi_at=NOW - timedelta(hours=1)
    )
    result = values(derive(latest, ["btc"], ["binance", "bybit"], NOW, MAX_AGE))
    assert result == {"funding.btc.oi_weighted": 0.0001}


def test_a_point_exactly_max_age_old_is_stale() -> None:
    latest = venue("btc", "binance", 0.0001, 10e9, at=NOW - MAX_AGE)
    assert derive(latest, ["btc"], VENUES, NOW, MAX_AGE) == []


def test_no_fresh_venue_means_no_point_rather_than_zero() -> None:
    assert derive({}, ["btc", "eth"], VENUES, NOW, MAX_AGE) == []


@pytest.mark.parametrize("oi", [0.0, -1.0, float("nan"), float("inf")])
def test_unusable_open_interest_excludes_the_venue(oi: float) -> None:
    latest = venue("btc", "binance", 0.0001, 10e9) | venue("btc", "okx", 0.003, oi)
    assert (
        values(derive(latest, ["btc"], VENUES, NOW, MAX_AGE))["funding.btc.oi_weighted"] == 0.0001
    )


def test_a_venue_not_listed_is_ignored() -> None:
    latest = venue("btc", "binance", 0.0001, 10e9) | venue("btc", "deribit", 0.01, 90e9)
    assert values(derive(latest, ["btc"], ["binance"], NOW, MAX_AGE))["oi.btc.total"] == 10e9


def test_assets_are_derived_independently() -> None:
    latest = venue("btc", "binance", 0.0001, 10e9) | venue("eth", "hyperliquid", -0.0002, 2e9)
    assert values(derive(latest, ["btc", "eth"], ["binance", "hyperliquid"], NOW, MAX_AGE)) == {
        "funding.btc.oi_weighted": 0.0001,
        "funding.eth.oi_weighted": -0.0002,
    }
    both = latest | venue("btc", "hyperliquid", 0.0, 1e9) | venue("eth", "binance", 0.0, 1e9)
    totals = values(derive(both, ["btc", "eth"], ["binance", "hyperliquid"], NOW, MAX_AGE))
    assert totals["oi.btc.total"] == 11e9
    assert totals["oi.eth.total"] == 3e9


def test_inputs_name_every_funding_and_oi_series() -> None:
    assert inputs(["btc"], ["binance", "okx"]) == [
        "funding.btc.binance",
        "oi.btc.binance",
        "funding.btc.okx",
        "oi.btc.okx",
    ]


_rates = st.floats(min_value=-0.01, max_value=0.01, allow_nan=False)
_ois = st.floats(min_value=1e3, max_value=1e11, allow_nan=False)
_ages = st.integers(min_value=0, max_value=3600)


@settings(deadline=None, max_examples=150)
@given(readings=st.lists(st.tuples(_rates, _ois, _ages), min_size=1, max_size=4))
def test_weighted_funding_lies_between_the_fresh_rates(
    readings: list[tuple[float, float, int]],
) -> None:
    latest: dict[str, Observation] = {}
    for name, (rate, oi, age) in zip(VENUES, readings, strict=False):
        latest |= venue("btc", name, rate, oi, at=NOW - timedelta(seconds=age))
    fresh = [(r, o) for r, o, age in readings if timedelta(seconds=age) < MAX_AGE]
    listed = VENUES[: len(readings)]
    result = values(derive(latest, ["btc"], listed, NOW, MAX_AGE))
    if not fresh:
        assert result == {}
        return
    low, high = min(r for r, _ in fresh), max(r for r, _ in fresh)
    assert low - 1e-15 <= result["funding.btc.oi_weighted"] <= high + 1e-15
    if len(fresh) == len(listed):
        assert result["oi.btc.total"] == pytest.approx(sum(o for _, o in fresh))
    else:
        assert "oi.btc.total" not in result
